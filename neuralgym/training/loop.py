"""Training a world: the loop that ties data, model, loss, checkpoints and calibration together.

One trainer serves a single process and ``torchrun`` alike: under torchrun it joins
the process group (:mod:`neuralgym.training.distributed`), wraps the model in DDP and
takes its slice of every global batch (see :mod:`neuralgym.training.windows`); only
rank 0 writes logs, checkpoints and weights. The loss is
:func:`~neuralgym.training.losses.rollout_loss`; every setting is a field of
:class:`~neuralgym.training.config.TrainConfig`.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from neuralgym.common.device import resolve_device
from neuralgym.common.files import remove_stale_temporaries
from neuralgym.training.calibration import calibrate_drift, validate
from neuralgym.training.checkpoints import HEAD_PREFIXES, init_from_world, load_checkpoint, save_checkpoint
from neuralgym.training.config import ETA_AFTER_STEPS, ETA_WARMUP, TrainConfig, model_config
from neuralgym.training.data import Episode, load_dataset
from neuralgym.training.decoder_pretrain import pretrain_decoder
from neuralgym.training.distributed import Dist, check_same_on_all_ranks, global_mean, init_distributed
from neuralgym.training.eta import duration, eta_line, eta_seconds
from neuralgym.training.hard_windows import epoch_population
from neuralgym.training.losses import reward_class_values, reward_class_weights, rollout_loss
from neuralgym.training.windows import Batch, EpochSampler, WindowDataset, draw_weights
from neuralgym.world.frameindex import RealFrameIndex
from neuralgym.world.model import WorldModel, WorldModelConfig, count_flops
from neuralgym.world.object_cells import object_cell_locator
from neuralgym.world.spaces import encode_actions
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import read_metadata, save_world


def train(
    spec: WorldSpec,
    data_dir: Path | Sequence[Path],
    out: Path,
    run_dir: Path,
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a world on the episodes in ``data_dir`` (one folder or several); write ``out`` (safetensors) at the end."""
    from tqdm import tqdm

    device, ddp = _setup(cfg)
    folders = [Path(data_dir)] if isinstance(data_dir, str | Path) else [Path(d) for d in data_dir]
    episodes = [ep for folder in folders for ep in load_dataset(folder, spec)]
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    train_ds = WindowDataset(train_eps, spec)
    val_ds = WindowDataset(val_eps, spec) if val_eps else None
    resuming = resume and (Path(run_dir) / "checkpoint.pt").is_file()  # its weights replace the fresh ones
    model, mcfg, reward_weights = _build_model(spec, cfg, train_eps, ddp, device, pretrain=not resuming)
    bank = _manifold_bank(train_eps, cfg)
    if cfg.steps == 0 and not cfg.init_from:
        raise ValueError("steps=0 only rebuilds the banks of an --init-from world; a new world needs steps >= 1")
    if cfg.heads_only:
        if not cfg.init_from:
            raise ValueError("heads_only needs init_from: a trained world whose frame model stays as it is")
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(HEAD_PREFIXES))
    model = model.to(device)
    opt = torch.optim.AdamW(
        [q for q in model.parameters() if q.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if ddp.main:  # temporaries of checkpoint writes that a kill interrupted
        remove_stale_temporaries(run_dir, ckpt_path.name)
    state = _load_state(ckpt_path, resume, ddp)
    if len(train_ds) < cfg.batch_size:
        raise ValueError(
            f"the training split has {len(train_ds)} windows, fewer than the global batch "
            f"{cfg.batch_size}: collect more data or lower --batch-size"
        )
    _check_ranks(ddp, spec, episodes, len(train_ds), cfg)
    population = epoch_population(train_ds, cfg, model, device, progress and ddp.main)  # before _resume
    step, sampler_state = _resume(state, model, opt)
    if state is None and resume and ddp.main:
        print(f"no checkpoint at {ckpt_path}; starting from scratch", file=sys.stderr)
    sampler = EpochSampler(population, cfg.seed, ddp.rank, ddp.world_size, **sampler_state)
    head_weights = draw_weights(population, len(train_ds))
    net: torch.nn.Module = model
    if ddp.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    writer = None
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    flops = count_flops(WorldModel(mcfg))
    locate = object_cell_locator(spec.key) if mcfg.object_cells else None
    t0, samples, loss_value = time.time(), 0, None
    bar = tqdm(
        total=cfg.steps, initial=step, disable=not (progress and ddp.main), desc=f"train {spec.key}", unit="step"
    )
    last_val: dict[str, float] = {}
    model.train()
    eta_from, eta_after, t_eta = step + ETA_WARMUP, step + ETA_AFTER_STEPS, t0
    while step < cfg.steps:
        rollout = cfg.rollout(step)
        ids = sampler.next(cfg.batch_size)
        batch, burn, noise_std = _draw(cfg, step, train_ds, ids, rollout, device)
        batch.weight = torch.as_tensor(head_weights[ids], dtype=torch.float32, device=device)
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        # each rank's loss is the mean over its slice; DDP averages the slices' gradients
        loss, stats = rollout_loss(
            net,
            batch,
            rollout,
            spec.context_length,
            cfg,
            cfg.batch_size // ddp.world_size,
            burn=burn,
            noise_std=noise_std,
            reward_weights=reward_weights,
            bank=bank,
            free_heads=cfg.heads_only,
            locate=locate,
        )
        loss_value, stats = global_mean(ddp, loss, stats, device)  # the same numbers on every rank
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}; lower --lr or check the data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.decoder_pretrain and mcfg.bottleneck and step < cfg.decoder_hold:
            for p in model.decoder.parameters():  # no gradient: AdamW leaves it exactly as it is
                p.grad = None
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        samples += len(ids) * rollout * ddp.world_size
        bar.update(1)
        if not ddp.main:
            continue
        if step == eta_from:
            t_eta = time.time()
        if step == eta_after and step < cfg.steps:  # also without a progress bar
            bar.write(eta_line(cfg, eta_from, step, time.time() - t_eta), file=sys.stderr)
        bar.set_postfix(loss=f"{loss_value:.3f}", R=rollout, burn=burn)
        if step % cfg.log_every == 0:
            scalars = {"loss/total": loss_value, **{f"loss/{k}": v for k, v in stats.items()}, "train/rollout": rollout}
            for tag, value in {**scalars, "train/samples_per_s": samples / (time.time() - t0)}.items():
                writer.add_scalar(tag, value, step)
        if val_ds is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            model.eval()
            last_val = validate(model, val_ds, n=cfg.val_samples, device=device)
            model.train()
            for k, v in last_val.items():
                writer.add_scalar(f"val/{k}", v, step)
            left = (
                f"; ETA {duration(eta_seconds(cfg, eta_from, step, time.time() - t_eta))}"
                if eta_after < step < cfg.steps
                else ""
            )
            bar.write(
                f"step {step} ({time.time() - t0:.0f} s{left}): "
                + " ".join(f"{k}={v:.2f}" for k, v in last_val.items()),
                file=sys.stderr,
            )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt_path, model, opt, step, sampler, cfg, {"world": spec.key})
    bar.close()
    elapsed = time.time() - t0
    result: dict[str, Any] = {
        "steps": step,
        "seconds": elapsed,
        "samples_per_s": samples / max(elapsed, 1e-9),
        "flops_per_frame": flops,
        "world_size": ddp.world_size,
        "loss": loss_value,
        **last_val,
    }
    if ddp.main:
        _save(spec, cfg, model, episodes, val_ds, result, Path(out), device)
        writer.close()
    if ddp.world_size > 1:
        dist.barrier()  # no rank exits (ending the job) before rank 0 has written the world
    if ddp.owns_group:
        dist.destroy_process_group()
    return result


def _setup(cfg: TrainConfig) -> tuple[torch.device, Dist]:
    """The device and this process's place in the job; threads and the global torch seed set."""
    device = resolve_device(cfg.device)
    ddp = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % ddp.world_size:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of processes {ddp.world_size}")
    torch.manual_seed(cfg.seed)
    return device, ddp


def _build_model(
    spec: WorldSpec, cfg: TrainConfig, train_eps: list[Episode], ddp: Dist, device: torch.device, pretrain: bool = True
) -> tuple[WorldModel, WorldModelConfig, torch.Tensor | None]:
    """The model to train (fresh, or from ``init_from``), its config, and the reward classes'
    loss weights (None: the reward is regressed). ``pretrain``: run the decoder pretraining
    (False when a checkpoint is about to replace the weights anyway)."""
    source_config = (
        json.loads(read_metadata(Path(cfg.init_from)).get("neuralgym.config", "{}")) if cfg.init_from else {}
    )
    mcfg = model_config(cfg, spec, source_config)
    all_rewards = np.concatenate([ep.rewards for ep in train_eps]) if train_eps else np.zeros(0, np.float32)
    reward_values = reward_class_values(all_rewards, cfg.reward_classes) if cfg.reward_classes else None
    if reward_values is not None:
        mcfg.reward_classes = len(reward_values)
    if cfg.heads_only and cfg.burn_in and mcfg.reward_classes == 1:
        raise ValueError(
            "heads_only with burn_in trains the reward head on long dreams, but the data pays a single "
            f"value ({float(reward_values[0])!r}) every step: there is no reward to learn (drop burn_in)"
        )
    model = WorldModel(mcfg)
    fresh = [name for name, _ in model.state_dict().items()]
    if cfg.init_from:
        fresh = init_from_world(model, cfg.init_from)
        if ddp.main:
            print(f"initialised from {cfg.init_from}; fresh: {', '.join(fresh) or 'nothing'}", file=sys.stderr)
    with torch.no_grad():
        if "alt_out.weight" in fresh and "out.weight" not in fresh:
            # a world given more futures: each new one starts as the source's future, a little
            # perturbed, so the winner-takes-all loss can pull them apart
            n = mcfg.futures - 1
            out_w = model.get_parameter("out.weight")
            model.get_parameter("alt_out.weight").copy_(
                out_w.repeat(n, 1, 1, 1) + 0.05 * out_w.std() * torch.randn(n * out_w.shape[0], *out_w.shape[1:])
            )
            model.get_parameter("alt_out.bias").copy_(model.get_parameter("out.bias").repeat(n))
        base = "decoder.base" if mcfg.bottleneck else "background" if mcfg.background else None
        if base in fresh:  # the median frame: what the data shows where nothing moves
            rng_bg = np.random.default_rng(cfg.seed + 2)
            sample = np.concatenate([ep.frames[rng_bg.integers(0, len(ep.frames), size=8)] for ep in train_eps[:512]])
            median = torch.from_numpy(np.median(sample, axis=0)).permute(2, 0, 1).float() / 255.0
            model.get_parameter(base).copy_(median)
    if pretrain and cfg.decoder_pretrain and mcfg.bottleneck and "decoder.fc.weight" in fresh:
        frames_all = np.concatenate([ep.frames for ep in train_eps])
        psnr = pretrain_decoder(model.to(device), frames_all, cfg.decoder_pretrain, seed=cfg.seed)
        if ddp.main:
            print(
                f"decoder pretrained ({cfg.decoder_pretrain} steps): {psnr:.1f} dB on held-out frames", file=sys.stderr
            )
    reward_weights = None
    if reward_values is not None:
        weights_np = reward_class_weights(all_rewards, reward_values, cfg.reward_balance)
        reward_weights = torch.from_numpy(weights_np).to(device)
        with torch.no_grad():
            model.reward_values.copy_(torch.from_numpy(reward_values))
            model.reward_logit_offset.copy_(torch.from_numpy(np.log(weights_np)))
    return model, mcfg, reward_weights


def _manifold_bank(train_eps: list[Episode], cfg: TrainConfig) -> RealFrameIndex | None:
    """With a burn-in: the real training frames a free-running prediction is scored against
    (none with heads_only, which scores no frames)."""
    if not (cfg.burn_in and cfg.manifold_bank) or cfg.heads_only:
        return None
    frames_all = np.concatenate([ep.frames for ep in train_eps])
    pick = np.random.default_rng(cfg.seed + 3).choice(
        len(frames_all), size=min(cfg.manifold_bank, len(frames_all)), replace=False
    )
    return RealFrameIndex(frames_all[np.sort(pick)], candidates=64, description="training frames")


def _load_state(ckpt_path: Path, resume: bool, ddp: Dist) -> dict[str, Any] | None:
    """The checkpoint to resume from, if any. Rank 0 (the only writer) reads it and sends it
    to the others, so resume also works where the run dir is not shared between nodes."""
    state = load_checkpoint(ckpt_path) if resume and ddp.main and ckpt_path.is_file() else None
    if ddp.world_size > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    return state


def _resume(state: dict[str, Any] | None, model: WorldModel, opt: torch.optim.Optimizer) -> tuple[int, dict[str, int]]:
    """Load a checkpoint's model, optimizer and torch RNG state; the step and sampler position
    to continue from (a fresh run: step 0 of epoch 0)."""
    if state is None:
        return 0, {"epoch": 0, "position": 0}
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), state["sampler"]


def _draw(
    cfg: TrainConfig, step: int, ds: WindowDataset, ids: np.ndarray, rollout: int, device: torch.device
) -> tuple[Batch, int, torch.Tensor | None]:
    """The batch of ``step`` (windows ``ids``, a burn-in drawn for half the steps) and the
    per-sample context noise, from a generator of (seed, step): the same draws on every rank
    and after a resume."""
    step_rng = np.random.default_rng([cfg.seed, step])
    burn = int(step_rng.integers(1, cfg.burn_in + 1)) if cfg.burn_in and step_rng.random() < 0.5 else 0
    batch = ds.batch(ids, burn + rollout).to(device)
    noise_std = None
    if cfg.context_noise > 0:
        draws = step_rng.random((2, batch.frames.shape[0]))
        noise_std = torch.from_numpy((draws[0] * cfg.context_noise * (draws[1] < 0.5)).astype(np.float32))
        noise_std = noise_std.to(device)
    return batch, burn, noise_std


def _check_ranks(ddp: Dist, spec: WorldSpec, episodes: list[Episode], windows: int, cfg: TrainConfig) -> None:
    """Under torchrun: every rank has the same data and config (one clear error otherwise)."""
    if ddp.world_size <= 1:
        return
    digest = hashlib.sha256()
    for ep in episodes:
        digest.update(np.ascontiguousarray(ep.actions).tobytes() + np.ascontiguousarray(ep.rewards).tobytes())
    check_same_on_all_ranks(
        ddp,
        {
            "world": spec.key,
            "episodes": len(episodes),
            "windows": windows,
            "data": digest.hexdigest(),
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("device", "threads")},
        },
    )


def _save(
    spec: WorldSpec,
    cfg: TrainConfig,
    model: WorldModel,
    episodes: list[Episode],
    val_ds: WindowDataset | None,
    result: dict[str, Any],
    out: Path,
    device: torch.device,
) -> None:
    """Calibrate the world's own drift threshold (used unless the spec sets one) and write the world file."""
    info: dict[str, Any] = {"train": {**asdict(cfg), "model": None}, "result": result}
    if val_ds is not None:
        model.eval()
        info["drift"] = calibrate_drift(model, val_ds, spec.drift.fidelity_psnr, seed=cfg.seed, device=device)
        if info["drift"]["threshold"] is not None:
            result["drift_threshold"] = info["drift"]["threshold"]
        else:
            print(f"drift threshold not calibrated: {info['drift']['reason']}", file=sys.stderr)
    starts, anchor_frames, anchor_actions = build_banks(episodes, spec, cfg)
    save_world(out, model, spec, starts, anchor_frames, anchor_actions, info=info)


def split_episodes(episodes: list[Episode], fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(episodes))
    n_val = (
        min(len(episodes) - 1, max(1, int(round(fraction * len(episodes)))))
        if fraction > 0 and len(episodes) > 1
        else 0
    )
    val = [episodes[i] for i in order[:n_val]]
    train = [episodes[i] for i in order[n_val:]]
    return train, val


def build_banks(
    episodes: list[Episode], spec: WorldSpec, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real reset frames (start bank) and real mid-episode K-frame windows (anchor bank)."""
    rng = np.random.default_rng(cfg.seed + 1)
    k = spec.context_length
    idx = rng.choice(len(episodes), size=min(cfg.bank_starts, len(episodes)), replace=False)
    starts = np.stack([episodes[i].frames[0] for i in idx])
    long_eps = [e for e in episodes if len(e) >= k]
    frames, actions = [], []
    for _ in range(cfg.bank_anchors if long_eps else 0):
        e = long_eps[rng.integers(len(long_eps))]
        t = int(rng.integers(0, len(e) - k + 2))
        frames.append(e.frames[t : t + k])
        actions.append(encode_actions(spec, e.actions[t : t + k - 1]))
    h, w, c = spec.obs_shape
    a = spec.actions.model_dim
    anchor_frames = np.stack(frames) if frames else np.zeros((0, k, h, w, c), np.uint8)
    anchor_actions = np.stack(actions).astype(np.float32) if actions else np.zeros((0, k - 1, a), np.float32)
    return starts, anchor_frames, anchor_actions
