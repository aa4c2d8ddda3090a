"""What a training run is set by: :class:`TrainConfig`, stored in every checkpoint and world file."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from neuralgym.world.model import WorldModelConfig
from neuralgym.world.spec import WorldSpec, spec_table


@dataclass
class TrainConfig:
    """Everything a training run is set by (the CLI sets some of it; the rest keeps these defaults)."""

    steps: int = 3000  # ~12 min for a small world on a 2-core CPU (docs/making-a-world.md)
    batch_size: int = 32  # global, across all ranks
    lr: float = 1.5e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    rollout_start: int = 1  # rollout length at step 0 ...
    rollout_max: int = 8  # ... growing linearly to this by ``rollout_ramp`` of the run
    rollout_ramp: float = 0.5
    term_pos_weight: float = 10.0  # rare termination events weigh this much more ...
    term_weight: float = 1.0  # ... and the termination loss this much against the frame loss
    terminal_oversample: int = 6  # windows within terminal_window steps of a termination are drawn this often
    terminal_window: int = 40
    head_weight: float = 0.1  # reward and error heads
    log_eps: float = 1e-6  # the frame loss flattens out below this MSE (60 dB PSNR)
    seed: int = 0
    val_fraction: float = 0.05  # 0: no validation
    val_samples: int = 128  # held-out windows per validation
    checkpoint_every: int = 250
    eval_every: int = 500
    bank_starts: int = 256
    bank_anchors: int = 256
    device: str = "auto"
    threads: int = 0  # 0: torch's default
    init_from: str | None = None  # a world file whose tensors start the model (those that fit)
    heads_only: bool = False  # train only the heads (HEAD_PREFIXES): frame predictions stay exactly as they are
    # long dreams: before the rollout whose frames are scored, the model runs free (no
    # gradient) for up to ``burn_in`` steps on its own rounded predictions, so it learns to
    # predict well from the contexts it makes itself many steps into a dream; with
    # heads_only, the reward head learns to pay what the recording paid from those contexts
    burn_in: int = 0
    # after a burn-in the dream no longer tracks the recorded episode (CartPole is chaotic), so
    # its frames are not scored against the recording (that teaches averaging: a fading pole)
    # but against the nearest of ``manifold_bank`` real training frames: "look like something
    # real", whatever the dream went on to show. Half the batches have no burn-in.
    manifold_bank: int = 50_000
    context_noise: float = 0.0  # Gaussian noise (std drawn per sample up to this) on the context frames
    reward_classes: int = 0  # >0: reward as a classifier over up to this many values from the data (0: regressed)
    reward_balance: float = 0.5  # class weights frequency ** -reward_balance
    reward_oversample: int = 1  # windows with a reward event among their first targets are drawn this often
    reward_window: int = 8  # ... searched for among this many of their first targets
    # ... and, with S > 0, those whose first targets hold the step S after one (what a point
    # sets off after a fixed pause: Pong serves its next ball 18-19 steps later)
    reward_after: int = 0
    # the hardest ``hard_share`` of the windows, as the starting world predicts them (their
    # first target's weighted error, teacher-forced; training/hard_windows.py), are drawn
    # ``hard_oversample`` times per epoch (1: not): a rare decisive frame it averages away
    hard_oversample: int = 1
    hard_share: float = 0.05
    # pixels that change between the newest context frame and the target (a moving ball, a
    # paddle's edge) weigh 1 + change_weight in the frame loss: a one-pixel object is then
    # no longer too cheap to drop (0: every pixel the same)
    change_weight: float = 0.0
    # a world with several futures (model.futures > 1): the share of the frame loss spread over
    # every future; the rest scores only the future closest to reality (winner takes all)
    futures_relax: float = 0.05
    # a world with object cells (model.object_cells): the weight of its object head's loss
    # (the cross-entropy of the true cell) against the frame loss
    object_weight: float = 0.2
    # ... and the share of the frames it is scored on that are drawn around a cell next to the
    # true one (the object head often names a neighbour of the right cell; the frame then still
    # places the object by its motion, and takes from the cell which way it went)
    object_jitter: float = 0.0
    # a bottleneck world whose decoder starts fresh first learns to draw real frames, as the
    # decoder of a frame autoencoder, for this many steps (training/decoder_pretrain.py; 0: not)
    decoder_pretrain: int = 0
    # ... and then stays fixed for this many steps while the fresh trunk learns to make codes it
    # draws: trained together from the start, a decoder fed a fresh trunk's uninformative codes
    # learns to draw their average and stops listening to them (measured on Acrobot: every
    # prediction the same frame, for good)
    decoder_hold: int = 500
    lr_floor: float = 0.05  # the cosine schedule ends at this fraction of ``lr``
    grad_clip: float = 1.0  # the gradient's global norm is clipped to this
    log_every: int = 20  # steps between TensorBoard points of the training loss
    model: WorldModelConfig = field(default_factory=lambda: WorldModelConfig(background=1))

    def rollout(self, step: int) -> int:
        """The rollout length at ``step``: ``rollout_start`` growing linearly to ``rollout_max``."""
        frac = min(1.0, step / max(1.0, self.rollout_ramp * self.steps))
        return int(round(self.rollout_start + frac * (self.rollout_max - self.rollout_start)))

    def lr_at(self, step: int) -> float:
        """The learning rate at ``step``: a linear warm-up over ``warmup`` steps, then a cosine
        from ``lr`` down to ``lr_floor * lr`` at the last step."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        p = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.lr_floor + (1.0 - self.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


#: what a spec's ``[train]`` table may not set: where a run starts and on what it runs
NOT_SPEC_FIELDS = ("init_from", "heads_only", "device", "threads", "model")


def train_config(spec: WorldSpec, **overrides: Any) -> TrainConfig:
    """How ``spec``'s world is trained: :class:`TrainConfig`'s defaults, the spec's ``[train]``
    table on top (its ``[train.model]`` the model's shape, e.g. ``bottleneck = 32``), then
    ``overrides`` (``None`` values ignored). Unknown keys are an error naming the known ones."""
    table = dict(spec_table(spec, "train"))
    model_table = table.pop("model", {})
    known = sorted(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_SPEC_FIELDS)
    known_model = sorted(f.name for f in dataclasses.fields(WorldModelConfig))
    unknown = sorted(set(table) - set(known)) + [f"model.{k}" for k in sorted(set(model_table) - set(known_model))]
    if unknown or not isinstance(model_table, dict):
        raise ValueError(
            f"{spec.path}: [train] has unknown keys {', '.join(unknown) or 'model'}; expected "
            f"{', '.join(known)} and a [train.model] table of {', '.join(known_model)}"
        )
    settings = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    if model_table and "model" not in settings:
        settings["model"] = WorldModelConfig(**{**asdict(TrainConfig().model), **model_table})
    return TrainConfig(**settings)


#: what a run that continues a world (``learn``'s world updates) keeps from the run that made it:
#: how frames, rollouts, events and noise are weighed. Not kept: the schedule and length (steps,
#: lr, warm-up), where the run starts (init_from, heads_only, decoder_pretrain), seed, device.
CONTINUED_FIELDS = (
    "rollout_max",
    "term_pos_weight",
    "term_weight",
    "terminal_oversample",
    "terminal_window",
    "head_weight",
    "burn_in",
    "manifold_bank",
    "context_noise",
    "reward_balance",
    "reward_oversample",
    "reward_window",
    "reward_after",
    "hard_oversample",
    "hard_share",
    "change_weight",
    "futures_relax",
    "object_weight",
    "object_jitter",
)


def continued_settings(source_train: dict[str, Any]) -> dict[str, Any]:
    """The :data:`CONTINUED_FIELDS` of a world's stored training config (its ``neuralgym.info``
    ``train`` entry), as keyword arguments of :class:`TrainConfig`. A heads-only source only
    trained its heads, so its frame settings (burn-in, context noise, change weight) say nothing
    about how its frames were made and are left at the defaults."""
    frame_fields = {"rollout_max", "burn_in", "manifold_bank", "context_noise", "change_weight", "futures_relax"}
    heads_only = bool(source_train.get("heads_only"))
    return {
        k: source_train[k] for k in CONTINUED_FIELDS if k in source_train and not (heads_only and k in frame_fields)
    }


#: after this many steps ``train`` prints its speed and an ETA on stderr (also with --no-progress),
#: timed from step ``ETA_WARMUP`` on (the first steps pay one-off allocations); every
#: validation line repeats the ETA
ETA_AFTER_STEPS = 10
ETA_WARMUP = 3
#: a training step costs about its rollout length plus this many rollout steps (drawing the
#: batch, encoding the context, the optimizer step); measured on a 2-core CPU
STEP_OVERHEAD = 1.0


def model_config(cfg: TrainConfig, spec: WorldSpec, source_config: dict) -> WorldModelConfig:
    """The shape of the model a run trains: ``cfg.model`` sized to the world's frames, context
    and actions, reconciled with ``source_config`` (the config of the ``init_from`` world, or
    {}): a heads-only run keeps its background setting, futures and object cells, and a
    bottleneck world, one with several futures or one with object cells stays one."""
    mcfg = WorldModelConfig(
        **{
            **asdict(cfg.model),
            "height": spec.obs_shape[0],
            "width": spec.obs_shape[1],
            "channels": spec.obs_shape[2],
            "context": spec.context_length,
            "action_dim": spec.actions.model_dim,
        }
    )
    if cfg.heads_only and cfg.init_from and mcfg.background:
        # the frame model must stay exactly as it is: keep the source world's background setting
        mcfg.background = int(source_config.get("background", 0))
    if source_config.get("bottleneck") and not mcfg.bottleneck:
        mcfg.bottleneck = int(source_config["bottleneck"])
        mcfg.decoder_width = int(source_config.get("decoder_width", mcfg.decoder_width))
    if int(source_config.get("futures", 1)) > 1 and mcfg.futures == 1:
        mcfg.futures = int(source_config["futures"])
    if int(source_config.get("gated_futures", 0)) and not mcfg.gated_futures:
        mcfg.gated_futures = 1
    if int(source_config.get("object_cells", 0)) and not mcfg.object_cells:
        mcfg.object_cells = 1
    if cfg.heads_only and cfg.init_from:  # the frame model stays exactly as it is
        mcfg.futures = int(source_config.get("futures", 1))
        mcfg.gated_futures = int(source_config.get("gated_futures", 0))
        mcfg.object_cells = int(source_config.get("object_cells", 0))
    return mcfg
