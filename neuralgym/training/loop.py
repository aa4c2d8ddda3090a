"""Training a world: rollouts on the model's own predictions, checkpoints, resume, DDP.

One trainer serves a single process and ``torchrun`` alike: under torchrun it joins
the process group (gloo on CPU, nccl on CUDA), wraps the model in DDP and takes its
slice of every global batch (see :mod:`neuralgym.training.windows`); only rank 0 writes logs,
checkpoints and weights.

The loss follows the anchors: the model is rolled out on its own 8-bit-rounded
predictions for ``rollout`` steps (growing during training) with gradients through
the whole rollout, so it learns to live with its own errors; the frame loss is the
log of each sample's MSE, i.e. minus its PSNR, the quantity the fidelity metric
averages; termination is up-weighted because in tasks like CartPole the whole
return is decided by it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from neuralgym.training.data import Episode, atomic_write_bytes, load_dataset, remove_stale_temporaries
from neuralgym.world.model import WorldModel, WorldModelConfig, count_flops, quantize
from neuralgym.metrics.realframes import RealFrameIndex
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import WeightsError, save_world
from neuralgym.training.windows import Batch, EpochSampler, WindowDataset


@dataclass
class TrainConfig:
    steps: int = 6000
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
    # predict well from the contexts it makes itself many steps into a dream
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
    # pixels that change between the newest context frame and the target (a moving ball, a
    # paddle's edge) weigh 1 + change_weight in the frame loss: a one-pixel object is then
    # no longer too cheap to drop (0: every pixel the same)
    change_weight: float = 0.0
    model: WorldModelConfig = field(default_factory=lambda: WorldModelConfig(background=1))

    def rollout(self, step: int) -> int:
        frac = min(1.0, step / max(1.0, self.rollout_ramp * self.steps))
        return int(round(self.rollout_start + frac * (self.rollout_max - self.rollout_start)))


#: after this many steps ``train`` prints its speed and an ETA on stderr (also with --no-progress)
ETA_AFTER_STEPS = 10


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; an unknown name is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(device)
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


#: the parameters of the reward, termination and error heads
HEAD_PREFIXES = ("heads.", "reward_head.")


def init_from_world(model: WorldModel, path: str | Path) -> list[str]:
    """Copy into ``model`` every tensor of the world file ``path`` whose name and shape fit;
    return the names of the parameters left as initialised. The model configs must agree
    on the frame and action sizes; a world with a shorter context is widened
    (:func:`widen_context`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"--init-from: {path} is a folder, not a file: expected a .safetensors world file")
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no world file at {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"--init-from: {path} is not a readable safetensors world file ({e})") from e
    ours = model.state_dict()
    theirs = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    theirs = widen_context(theirs, ours, model.config)
    fitting = {k: v for k, v in theirs.items() if k in ours and v.shape == ours[k].shape}
    if not any(k.startswith(("inp.", "out.")) for k in fitting):
        raise ValueError(f"--init-from {path}: its model does not fit this world's (no input/output layer matches)")
    model.load_state_dict(fitting, strict=False)
    return sorted(k for k in ours if k not in fitting)


def widen_context(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor],
                  config: WorldModelConfig) -> dict[str, torch.Tensor]:
    """Fit a shorter-context world's input layers into a model with a longer context.

    The input conv sees [newest frame, K-1 frame differences oldest first] and the action
    embedding the K action codes oldest first, so the old world's tensors become the
    newest slots of the wider ones and the older slots start at zero: the widened model
    computes exactly what the old one did until training teaches it to use the extra
    history."""
    c, p = config, config.patch
    w_in, w_act = theirs.get("inp.weight"), theirs.get("action_embed.0.weight")
    if w_in is None or w_act is None or w_in.shape == ours["inp.weight"].shape:
        return theirs
    per_frame = c.channels * p * p
    old_k = w_in.shape[1] // per_frame
    if w_in.shape[1] % per_frame or w_in.shape[0] != ours["inp.weight"].shape[0] or not 2 <= old_k < c.context \
            or w_act.shape[1] != old_k * c.action_dim:
        return theirs  # not a narrower context of the same model: left to the shape check
    out = dict(theirs)
    inp = torch.zeros_like(ours["inp.weight"]).view(c.fine_width, c.context, per_frame)
    old = w_in.view(c.fine_width, old_k, per_frame)
    inp[:, 0] = old[:, 0]  # the newest frame
    inp[:, c.context - old_k + 1:] = old[:, 1:]  # the newest old_k - 1 differences
    out["inp.weight"] = inp.view_as(ours["inp.weight"])
    act = torch.zeros_like(ours["action_embed.0.weight"]).view(-1, c.context, c.action_dim)
    act[:, c.context - old_k:] = w_act.view(-1, old_k, c.action_dim)
    out["action_embed.0.weight"] = act.view_as(ours["action_embed.0.weight"])
    return out


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we created the process group, so we destroy it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_timeout() -> timedelta:
    """How long a collective waits for a silent rank before the job fails: env
    ``NEURALGYM_DIST_TIMEOUT`` (seconds, default 300)."""
    text = os.environ.get("NEURALGYM_DIST_TIMEOUT", "300")
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"NEURALGYM_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return timedelta(seconds=seconds)


def init_distributed(device: torch.device) -> Dist:
    """Join torchrun's process group when launched by it; otherwise a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)  # before NCCL starts: each rank owns one GPU
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=dist_timeout())
        # also on an error exit: a process group left to interpreter teardown can abort
        # the process ("terminate called without an active exception") over its message
        atexit.register(lambda: dist.destroy_process_group() if dist.is_initialized() else None)
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def check_same_on_all_ranks(ddp: Dist, what: dict[str, Any]) -> None:
    """Every rank must train the same thing: the same config and the same data. A mismatch
    (another --steps on one node, a stale dataset copy on another) would otherwise
    desynchronise the collectives and hang, or silently train on another global batch;
    here it is one clear error on every rank."""
    if ddp.world_size <= 1:
        return

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": repr(v)})
        return out

    everyone: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(everyone, flat(what))
    bad = [r for r, theirs in enumerate(everyone) if theirs != everyone[0]]
    if bad:
        ours, theirs = everyone[0], everyone[bad[0]]
        diff = ", ".join(f"{k}: {ours.get(k)} vs {theirs.get(k)}" for k in sorted(ours.keys() | theirs.keys())
                         if ours.get(k) != theirs.get(k))
        raise ValueError(f"ranks disagree on the training setup: rank 0 vs rank {bad[0]}: {diff}; "
                         f"every node needs the same command line and the same data")


def reward_class_values(rewards: np.ndarray, max_classes: int, gap_fraction: float = 0.1) -> np.ndarray:
    """The reward values a classifier head chooses from: the distinct rewards of the data
    (to 1e-3) if there are at most ``max_classes``; else the mean reward of each group of
    values that lie closer together than ``gap_fraction`` of the rewards' 5-95% range
    (CarRacing: the time penalty, a tile's reward, which varies a little from track to
    track, two tiles, leaving the map); and
    if those are still too many, the means of ``max_classes`` 1-D k-means clusters."""
    r = np.asarray(rewards, np.float64).ravel()
    if len(r) == 0:
        return np.zeros(1, np.float32)
    distinct = np.unique(np.round(r, 3))
    if len(distinct) <= max_classes:
        return distinct.astype(np.float32)
    lo, hi = np.quantile(r, [0.05, 0.95])
    splits = np.flatnonzero(np.diff(distinct) > gap_fraction * max(hi - lo, 1e-6))
    edges = np.r_[-np.inf, 0.5 * (distinct[splits] + distinct[splits + 1]), np.inf]
    if len(edges) - 1 <= max_classes:
        group = np.searchsorted(edges, r, side="right") - 1
        return np.array([r[group == g].mean() for g in range(len(edges) - 1)], np.float32)
    centres = np.unique(np.quantile(r, (np.arange(max_classes) + 0.5) / max_classes))
    for _ in range(20):
        assign = np.abs(r[:, None] - centres[None]).argmin(axis=1)
        centres = np.array([r[assign == i].mean() if (assign == i).any() else centres[i] for i in range(len(centres))])
    return np.unique(np.round(centres, 4)).astype(np.float32)


def reward_class_weights(rewards: np.ndarray, values: np.ndarray, balance: float = 0.5) -> np.ndarray:
    """Class weights ``frequency ** -balance`` (normalised to mean 1 over the data): rare
    rewards, such as a point won, count more (balance 1: every class weighs the same in all)."""
    assign = np.abs(np.asarray(rewards, np.float64).ravel()[:, None] - values[None]).argmin(axis=1)
    freq = np.bincount(assign, minlength=len(values)).astype(np.float64) + 1.0
    w = freq ** -balance
    return (w / (w[assign].mean() if len(assign) else 1.0)).astype(np.float32)


def nearest_real(bank: RealFrameIndex, frames: torch.Tensor) -> torch.Tensor:
    """The nearest bank frame of each frame (B, C, H, W) in [0, 1], as a tensor like it."""
    u8 = torch.round(frames.detach() * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    idx, _ = bank.nearest(u8)
    return torch.from_numpy(bank.frames[idx]).to(frames.device).permute(0, 3, 1, 2).float() / 255.0


def rollout_loss(model: torch.nn.Module, batch: Batch, rollout: int, k: int, cfg: TrainConfig,
                 rank_batch: int, burn: int = 0, noise_std: torch.Tensor | None = None,
                 reward_weights: torch.Tensor | None = None,
                 bank: RealFrameIndex | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Roll the model out on its own predictions for ``burn`` steps without gradient, then
    for ``rollout`` scored steps, and sum the losses of the scored steps. After a burn-in
    (with a ``bank``) a frame is scored against its nearest real frame, and the heads,
    whose targets belong to the recorded episode, are not scored.

    Losses are summed and divided by constants (this rank's share of the global batch,
    i.e. global batch / world size, and the rollout), never by per-rank statistics such
    as the mask count: DDP *averages* the ranks' gradients, so the result is exactly the
    single-process gradient of the mean over the global batch."""
    ctx = batch.frames[:, :k]
    if noise_std is not None:  # noise on the real context (per-sample std), kept on the 8-bit grid
        ctx = torch.round((ctx + noise_std[:, None, None, None, None] * torch.randn_like(ctx)).clamp(0.0, 1.0) * 255.0) / 255.0
    if burn:
        with torch.no_grad():
            for r in range(burn):
                pred = torch.round(model(ctx, batch.actions[:, r : r + k])["frame"] * 255.0) / 255.0
                ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
    denom = float(rank_batch * rollout)
    pos_weight = torch.tensor(cfg.term_pos_weight, device=ctx.device)
    frame_l = term_l = rew_l = err_l = torch.zeros((), device=ctx.device)
    free = burn > 0 and bank is not None
    for r in range(burn, burn + rollout):
        out = model(ctx, batch.actions[:, r : r + k])
        pred = quantize(out["frame"])
        m = batch.mask[:, r]
        if free:
            fit = (pred - nearest_real(bank, pred)).pow(2).mean(dim=(1, 2, 3))
            frame_l = frame_l + (torch.log(fit + cfg.log_eps) * m).sum()
            ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
            continue
        target = batch.frames[:, k + r]
        se = (pred - target).pow(2).mean(dim=(1, 2, 3))  # (B,)
        if cfg.change_weight > 0:
            moved = ((target - batch.frames[:, k + r - 1]).abs() > 1.5 / 255.0).float()  # (B, C, H, W): changes in reality
            w = 1.0 + cfg.change_weight * moved
            fit = ((pred - target).pow(2) * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3))
        else:
            fit = se
        # log-MSE: each sample's loss is its PSNR up to constants, so a sample that is
        # nearly right counts as much as one that is far off (the metric is mean PSNR)
        frame_l = frame_l + (torch.log(fit + cfg.log_eps) * m).sum()
        bce = F.binary_cross_entropy_with_logits(out["term_logit"], batch.terminated[:, r], pos_weight=pos_weight, reduction="none")
        term_l = term_l + (bce * m).sum()
        if "reward_logits" in out:
            values = model.reward_values if hasattr(model, "reward_values") else model.module.reward_values
            cls = (batch.rewards[:, r, None] - values[None]).abs().argmin(dim=1)
            ce = F.cross_entropy(out["reward_logits"], cls, weight=reward_weights, reduction="none")
            rew_l = rew_l + (ce * m).sum()
        else:
            rew_l = rew_l + ((out["reward"] - batch.rewards[:, r]).pow(2) * m).sum()
        err_l = err_l + ((out["log_err"] - torch.log(se.detach() + 1e-7)).pow(2) * m).sum()
        ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
    loss = (frame_l + cfg.term_weight * term_l + cfg.head_weight * (rew_l + err_l)) / denom
    stats = {"frame": frame_l.item() / denom, "term": term_l.item() / denom, "reward": rew_l.item() / denom,
             "err": err_l.item() / denom}
    return loss, stats


def global_mean(ddp: Dist, loss: torch.Tensor, stats: dict[str, float],
                device: torch.device) -> tuple[float, dict[str, float]]:
    """The loss and its parts averaged over the ranks: the global batch's numbers, which
    are what a single process with the same global batch would log."""
    if ddp.world_size <= 1:
        return loss.item(), stats
    t = torch.tensor([loss.item(), *stats.values()], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t = (t / ddp.world_size).tolist()
    return t[0], dict(zip(stats, t[1:]))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per sample between frames in [0, 1] (computed on the 8-bit grid), capped at 100 dB."""
    a8, b8 = torch.round(a * 255.0), torch.round(b * 255.0)
    mse = (a8 - b8).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(255.0**2 / mse.clamp(min=1e-10))).clamp(max=100.0)


@torch.no_grad()
def validate(model: WorldModel, ds: WindowDataset, horizons: tuple[int, ...] = (1, 5, 10, 25), n: int = 128,
             seed: int = 0, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Open-loop rollouts on held-out episodes from K real frames with the recorded
    actions: PSNR per horizon, for the model and for "nothing moves"."""
    h_max = max(horizons)
    k = ds.k
    # starts with K real frames (past the padding) and h_max real steps ahead
    ok = np.nonzero((ds.starts + k - 1 + h_max <= ds.ends) & (np.arange(len(ds)) >= 0))[0]
    ok = ok[np.isin(ds.starts[ok] - (k - 1), ds.starts)]  # the window's first frame is a real frame
    if len(ok) == 0:
        return {}
    ids = np.random.default_rng(seed).choice(ok, size=min(n, len(ok)), replace=False)
    b = ds.batch(ids, h_max).to(device)
    ctx = b.frames[:, :k]
    out: dict[str, float] = {}
    for r in range(h_max):
        pred = torch.round(model(ctx, b.actions[:, r : r + k])["frame"] * 255.0) / 255.0
        ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
        h = r + 1
        if h in horizons:
            target = b.frames[:, k - 1 + h]
            p = psnr(pred, target).mean().item()
            f = psnr(b.frames[:, k - 1], target).mean().item()
            out[f"psnr@{h}"], out[f"frozen@{h}"], out[f"gain@{h}"] = p, f, p - f
    return out


@torch.no_grad()
def calibrate_drift(model: WorldModel, ds: WindowDataset, fidelity_psnr: float, horizon: int = 25, n: int = 64,
                    seed: int = 0, device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    """The drift threshold of this world, measured as ``neuralgym eval`` would but on
    held-out training windows: open-loop rollouts from K real frames with the recorded
    actions, scored with the dream's own drift (the root of the summed squared per-step
    RMSE the error head predicts, in grey levels) against whether the frame's true PSNR is
    under ``fidelity_psnr``; the threshold best separating the two (Youden's J).

    Returns ``{"threshold": float or None, ...}``: None where every frame, or none, is
    under ``fidelity_psnr`` (nothing to separate; the dream then does not truncate on drift)."""
    from neuralgym.metrics.lockstep import auroc, calibrate_threshold

    k = ds.k
    for h_max in (horizon, 10, 5, 1):  # the longest horizon the held-out episodes allow
        ok = np.nonzero(ds.starts + k - 1 + h_max <= ds.ends)[0]
        ok = ok[np.isin(ds.starts[ok] - (k - 1), ds.starts)]  # the window's first frame is a real frame
        if len(ok):
            break
    else:
        return {"threshold": None, "reason": "no held-out window of K real frames and one step"}
    ids = np.random.default_rng(seed).choice(ok, size=min(n, len(ok)), replace=False)
    b = ds.batch(ids, h_max).to(device)
    ctx = b.frames[:, :k]
    drift_sq = torch.zeros(len(ids), dtype=torch.float64, device=device)
    drifts, psnrs = [], []
    for r in range(h_max):
        out = model(ctx, b.actions[:, r : r + k])
        pred = torch.round(out["frame"].clamp(0.0, 1.0) * 255.0) / 255.0
        ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
        step_err = torch.exp(0.5 * torch.nan_to_num(out["log_err"], nan=20.0).clamp(max=20.0)) * 255.0  # as the dream
        drift_sq += step_err.double().pow(2)
        drifts.append(drift_sq.sqrt().cpu().numpy())
        psnrs.append(psnr(pred, b.frames[:, k + r]).cpu().numpy())
    drift, frame_psnr = np.concatenate(drifts), np.concatenate(psnrs)
    off = frame_psnr < fidelity_psnr
    report: dict[str, Any] = {"fidelity_psnr": fidelity_psnr, "windows": int(len(ids)), "horizon": int(h_max),
                              "frames": int(len(off)), "off": int(off.sum())}
    if not 0 < off.sum() < len(off):
        report["threshold"] = None
        report["reason"] = (f"every held-out frame is under {fidelity_psnr} dB" if off.all()
                            else f"no held-out frame is under {fidelity_psnr} dB")
        return report
    report["threshold"] = calibrate_threshold(drift, off)
    report["auroc"] = auroc(drift, off)
    return report


def _eta_line(cfg: TrainConfig, first: int, done: int, seconds: float) -> str:
    """One line: the seconds per step so far and the time left. A step costs about its
    rollout length (plus its mean burn-in), which grows during the run, so the steps
    left are weighted by theirs."""
    def cost(s: int) -> float:
        return cfg.rollout(s) + cfg.burn_in / 2.0

    spent = sum(cost(s) for s in range(first, done))
    left = sum(cost(s) for s in range(done, cfg.steps))
    eta = seconds / max(spent, 1e-9) * left
    last = seconds / max(spent, 1e-9) * cost(cfg.steps - 1)
    return (f"~{seconds / max(1, done - first):.2f} s per step over steps {first + 1}-{done} "
            f"({(done - first) / max(seconds, 1e-9):.2f} steps/s); ETA {_duration(eta)} for {cfg.steps - done} more steps "
            f"(rollouts grow to {cfg.rollout_max}: the last steps take ~{last:.2f} s each)")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def split_episodes(episodes: list[Episode], fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(episodes))
    n_val = min(len(episodes) - 1, max(1, int(round(fraction * len(episodes))))) if fraction > 0 and len(episodes) > 1 else 0
    val = [episodes[i] for i in order[:n_val]]
    train = [episodes[i] for i in order[n_val:]]
    return train, val


def build_banks(episodes: list[Episode], spec: WorldSpec, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real reset frames (start bank) and real mid-episode K-frame windows (anchor bank)."""
    from neuralgym.world.spaces import encode_actions

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


def save_checkpoint(path: Path, model: WorldModel, opt: torch.optim.Optimizer, step: int, sampler: EpochSampler,
                    cfg: TrainConfig, extra: dict[str, Any]) -> None:
    """Atomic; loaded with ``torch.load(weights_only=True)``, so no pickled code runs."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "sampler": sampler.state(),
        "torch_rng": torch.get_rng_state(),
        "config": json.dumps(asdict(cfg)),
        "extra": json.dumps(extra),
    }
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (no pickled code runs); ValueError naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a foreign or damaged file
        raise ValueError(f"{path}: not a readable training checkpoint ({type(e).__name__}: {e}); "
                         "delete it to train from scratch") from e
    missing = [k for k in ("model", "optimizer", "step", "sampler", "torch_rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint (missing {', '.join(missing)}); delete it to train from scratch")
    return state


def train(spec: WorldSpec, data_dir: Path, out: Path, run_dir: Path, cfg: TrainConfig, resume: bool = False,
          progress: bool = True) -> dict[str, Any]:
    """Train a world on the episodes in ``data_dir``; write ``out`` (safetensors) at the end."""
    from tqdm import tqdm

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

    episodes = load_dataset(data_dir, spec)
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    train_ds = WindowDataset(train_eps, spec)
    val_ds = WindowDataset(val_eps, spec) if val_eps else None
    mcfg = WorldModelConfig(**{**asdict(cfg.model), "height": spec.obs_shape[0], "width": spec.obs_shape[1],
                               "channels": spec.obs_shape[2], "context": spec.context_length,
                               "action_dim": spec.actions.model_dim})
    if cfg.heads_only and cfg.init_from and mcfg.background:
        # the frame model must stay exactly as it is: keep the source world's background setting
        from neuralgym.world.weights import read_metadata

        source_config = json.loads(read_metadata(Path(cfg.init_from)).get("neuralgym.config", "{}"))
        mcfg.background = int(source_config.get("background", 0))
    all_rewards = np.concatenate([ep.rewards for ep in train_eps]) if train_eps else np.zeros(0, np.float32)
    reward_values = reward_class_values(all_rewards, cfg.reward_classes) if cfg.reward_classes else None
    if reward_values is not None:
        mcfg.reward_classes = len(reward_values)
    model = WorldModel(mcfg)
    fresh = [name for name, _ in model.state_dict().items()]
    if cfg.init_from:
        fresh = init_from_world(model, cfg.init_from)
        if ddp.main:
            print(f"initialised from {cfg.init_from}; fresh: {', '.join(fresh) or 'nothing'}", file=sys.stderr)
    with torch.no_grad():
        if mcfg.background and "background" in fresh:  # the median frame: what the data shows where nothing moves
            rng_bg = np.random.default_rng(cfg.seed + 2)
            sample = np.concatenate([ep.frames[rng_bg.integers(0, len(ep.frames), size=8)] for ep in train_eps[:512]])
            model.background.copy_(torch.from_numpy(np.median(sample, axis=0)).permute(2, 0, 1).float() / 255.0)
    reward_weights = None
    if reward_values is not None:
        weights_np = reward_class_weights(all_rewards, reward_values, cfg.reward_balance)
        reward_weights = torch.from_numpy(weights_np).to(device)
        with torch.no_grad():
            model.reward_values.copy_(torch.from_numpy(reward_values))
            model.reward_logit_offset.copy_(torch.from_numpy(np.log(weights_np)))
    bank = None
    if cfg.burn_in and cfg.manifold_bank:
        frames_all = np.concatenate([ep.frames for ep in train_eps])
        pick = np.random.default_rng(cfg.seed + 3).choice(len(frames_all), size=min(cfg.manifold_bank, len(frames_all)),
                                                          replace=False)
        bank = RealFrameIndex(frames_all[np.sort(pick)], candidates=64, description="training frames")
        del frames_all
    if cfg.steps == 0 and not cfg.init_from:
        raise ValueError("steps=0 only rebuilds the banks of an --init-from world; a new world needs steps >= 1")
    if cfg.heads_only:
        if not cfg.init_from:
            raise ValueError("heads_only needs init_from: a trained world whose frame model stays as it is")
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(HEAD_PREFIXES))
    model = model.to(device)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if ddp.main:  # temporaries of checkpoint writes that a kill interrupted
        remove_stale_temporaries(run_dir, ckpt_path.name)
    step, sampler_state = 0, {"epoch": 0, "position": 0}
    # Rank 0 (the only writer) reads the checkpoint and sends it to the others, so resume
    # also works where the run dir is not shared between nodes.
    state = load_checkpoint(ckpt_path) if resume and ddp.main and ckpt_path.is_file() else None
    if ddp.world_size > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    if len(train_ds) < cfg.batch_size:
        raise ValueError(f"the training split has {len(train_ds)} windows, fewer than the global batch "
                         f"{cfg.batch_size}: collect more data or lower --batch-size")
    if ddp.world_size > 1:
        digest = hashlib.sha256()
        for ep in episodes:
            digest.update(np.ascontiguousarray(ep.actions).tobytes() + np.ascontiguousarray(ep.rewards).tobytes())
        check_same_on_all_ranks(ddp, {"world": spec.key, "episodes": len(episodes), "windows": len(train_ds),
                                      "data": digest.hexdigest(),
                                      "config": {k: v for k, v in asdict(cfg).items() if k not in ("device", "threads")}})
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, sampler_state = int(state["step"]), state["sampler"]
        torch.set_rng_state(state["torch_rng"])
    elif resume and ddp.main:
        print(f"no checkpoint at {ckpt_path}; starting from scratch", file=sys.stderr)
    population = train_ds.population(cfg.terminal_oversample, cfg.terminal_window, cfg.reward_oversample)
    sampler = EpochSampler(population, cfg.seed, ddp.rank, ddp.world_size, **sampler_state)
    net: torch.nn.Module = model
    if ddp.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    writer = None
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    flops = count_flops(WorldModel(mcfg))
    t0, samples, loss_value = time.time(), 0, None
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and ddp.main), desc=f"train {spec.key}", unit="step")
    last_val: dict[str, float] = {}

    def lr_at(s: int) -> float:
        if s < cfg.warmup:
            return cfg.lr * (s + 1) / cfg.warmup
        p = (s - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    model.train()
    first_step, eta_after = step, step + ETA_AFTER_STEPS
    while step < cfg.steps:
        rollout = cfg.rollout(step)
        global_batch = cfg.batch_size
        ids = sampler.next(global_batch)
        step_rng = np.random.default_rng([cfg.seed, step])  # the same draws on every rank and after a resume
        burn = int(step_rng.integers(1, cfg.burn_in + 1)) if cfg.burn_in and step_rng.random() < 0.5 else 0
        batch = train_ds.batch(ids, burn + rollout).to(device)
        noise_std = None
        if cfg.context_noise > 0:
            n_local = batch.frames.shape[0]
            draws = step_rng.random((2, n_local))
            noise_std = torch.from_numpy((draws[0] * cfg.context_noise * (draws[1] < 0.5)).astype(np.float32)).to(device)
        for g_ in opt.param_groups:
            g_["lr"] = lr_at(step)
        # each rank's loss is the mean over its slice; DDP averages the slices' gradients
        loss, stats = rollout_loss(net, batch, rollout, spec.context_length, cfg, global_batch // ddp.world_size,
                                   burn=burn, noise_std=noise_std, reward_weights=reward_weights, bank=bank)
        loss_value, stats = global_mean(ddp, loss, stats, device)  # the same numbers on every rank
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}; lower --lr or check the data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        samples += len(ids) * rollout * ddp.world_size
        bar.update(1)
        if ddp.main and step == eta_after and step < cfg.steps:  # also without a progress bar
            bar.write(_eta_line(cfg, first_step, step, time.time() - t0), file=sys.stderr)
        if ddp.main:
            bar.set_postfix(loss=f"{loss_value:.3f}", R=rollout, burn=burn)
            if step % 20 == 0:
                writer.add_scalar("loss/total", loss_value, step)
                for k_, v in stats.items():
                    writer.add_scalar(f"loss/{k_}", v, step)
                writer.add_scalar("train/rollout", rollout, step)
                writer.add_scalar("train/samples_per_s", samples / (time.time() - t0), step)
            if val_ds is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
                model.eval()
                last_val = validate(model, val_ds, n=cfg.val_samples, device=device)
                model.train()
                for k_, v in last_val.items():
                    writer.add_scalar(f"val/{k_}", v, step)
                bar.write(f"step {step} ({time.time() - t0:.0f} s): " + " ".join(f"{k_}={v:.2f}" for k_, v in last_val.items()),
                          file=sys.stderr)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt_path, model, opt, step, sampler, cfg, {"world": spec.key})
    bar.close()
    elapsed = time.time() - t0
    result: dict[str, Any] = {"steps": step, "seconds": elapsed, "samples_per_s": samples / max(elapsed, 1e-9),
                              "flops_per_frame": flops, "world_size": ddp.world_size, "loss": loss_value, **last_val}
    info: dict[str, Any] = {"train": {**asdict(cfg), "model": None}, "result": result}
    if ddp.main and val_ds is not None:  # the world's own drift threshold (used unless the spec sets one)
        model.eval()
        info["drift"] = calibrate_drift(model, val_ds, spec.drift.fidelity_psnr, seed=cfg.seed, device=device)
        if info["drift"]["threshold"] is not None:
            result["drift_threshold"] = info["drift"]["threshold"]
        else:
            print(f"drift threshold not calibrated: {info['drift']['reason']}", file=sys.stderr)
    if ddp.main:
        starts, anchor_frames, anchor_actions = build_banks(episodes, spec, cfg)
        save_world(Path(out), model, spec, starts, anchor_frames, anchor_actions, info=info)
        writer.close()
    if ddp.world_size > 1:
        dist.barrier()  # no rank exits (ending the job) before rank 0 has written the world
    if ddp.owns_group:
        dist.destroy_process_group()
    return result
