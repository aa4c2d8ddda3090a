"""The training loss: rollouts on the model's own predictions, and the reward classes.

The model is rolled out on its own 8-bit-rounded predictions for ``rollout`` steps
(growing during training) with gradients through the whole rollout, so it learns to
live with its own errors; the frame loss is the log of each sample's MSE, i.e. minus its
PSNR, the quantity the fidelity metric averages; termination is up-weighted because in
tasks like CartPole the whole return is decided by it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from neuralgym.training.config import TrainConfig
from neuralgym.training.windows import Batch
from neuralgym.world.frameindex import RealFrameIndex
from neuralgym.world.model import WorldModelConfig, draw_noise, quantize
from neuralgym.world.object_cells import CellLocator


def reward_class_values(rewards: np.ndarray, max_classes: int, gap_fraction: float = 0.1) -> np.ndarray:
    """The reward values a classifier head chooses from: the distinct rewards of the data
    (to 1e-3) if there are at most ``max_classes``; else the mean reward of each group of
    values that lie closer together than ``gap_fraction`` of the rewards' 5-95% range
    (CarRacing: the time penalty, a tile's reward, which varies a little from track to
    track, two tiles, leaving the map); and if those are still too many, the two neighbouring
    groups whose merge adds the least squared error (Ward's criterion) are merged into their
    mean until ``max_classes`` are left. A rare reward far from the others (CarRacing's -100
    for leaving the map) keeps its own class."""
    r = np.asarray(rewards, np.float64).ravel()
    if len(r) == 0:
        return np.zeros(1, np.float32)
    distinct = np.unique(np.round(r, 3))
    if len(distinct) <= max_classes:
        return distinct.astype(np.float32)
    lo, hi = np.quantile(r, [0.05, 0.95])
    splits = np.flatnonzero(np.diff(distinct) > gap_fraction * max(hi - lo, 1e-6))
    edges = np.r_[-np.inf, 0.5 * (distinct[splits] + distinct[splits + 1]), np.inf]
    group = np.searchsorted(edges, r, side="right") - 1
    sums = [float(r[group == g].sum()) for g in range(len(edges) - 1)]
    counts = [int((group == g).sum()) for g in range(len(edges) - 1)]
    while len(sums) > max_classes:
        n, means = np.array(counts, np.float64), np.array(sums) / np.array(counts)
        cost = n[:-1] * n[1:] / (n[:-1] + n[1:]) * np.diff(means) ** 2  # merging groups i and i + 1
        i = int(np.argmin(cost))
        sums[i : i + 2], counts[i : i + 2] = [sums[i] + sums[i + 1]], [counts[i] + counts[i + 1]]
    return (np.array(sums) / np.array(counts)).astype(np.float32)


def reward_class_weights(rewards: np.ndarray, values: np.ndarray, balance: float = 0.5) -> np.ndarray:
    """Class weights ``frequency ** -balance`` (normalised to mean 1 over the data): rare
    rewards, such as a point won, count more (balance 1: every class weighs the same in all)."""
    assign = np.abs(np.asarray(rewards, np.float64).ravel()[:, None] - values[None]).argmin(axis=1)
    freq = np.bincount(assign, minlength=len(values)).astype(np.float64) + 1.0
    w = freq**-balance
    return (w / (w[assign].mean() if len(assign) else 1.0)).astype(np.float32)


def nearest_real(bank: RealFrameIndex, frames: torch.Tensor) -> torch.Tensor:
    """The nearest bank frame of each frame (B, C, H, W) in [0, 1], as a tensor like it."""
    u8 = torch.round(frames.detach() * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    idx, _ = bank.nearest(u8)
    return torch.from_numpy(bank.frames[idx]).to(frames.device).permute(0, 3, 1, 2).float() / 255.0


def rollout_loss(
    model: torch.nn.Module,
    batch: Batch,
    rollout: int,
    k: int,
    cfg: TrainConfig,
    rank_batch: int,
    burn: int = 0,
    noise_std: torch.Tensor | None = None,
    reward_weights: torch.Tensor | None = None,
    bank: RealFrameIndex | None = None,
    free_heads: bool = False,
    locate: CellLocator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Roll the model out on its own predictions for ``burn`` steps without gradient, then
    for ``rollout`` scored steps, and sum the losses of the scored steps. After a burn-in
    (with a ``bank``) a frame is scored against its nearest real frame, and the heads,
    whose targets belong to the recorded episode, are not scored. With ``free_heads`` (the
    frame model held fixed) it is the other way round: after a burn-in only the reward head
    is scored, against the reward the recording paid at that step, so it learns to pay what
    reality paid from what the dream shows many steps in (a still road that slowly blurs is
    not a car passing tiles); termination, whose timing is the recording's, is not scored.

    A world with object cells draws each frame it is scored on around the true cell of its
    object (found by ``locate`` in the recorded frame), and its object head is scored on
    that cell; where it runs free, it draws the cell as a dream does.

    Losses are summed and divided by constants (this rank's share of the global batch,
    i.e. global batch / world size, and the rollout), never by per-rank statistics such
    as the mask count: DDP *averages* the ranks' gradients, so the result is exactly the
    single-process gradient of the mean over the global batch."""
    ctx = batch.frames[:, :k]
    if noise_std is not None:  # noise on the real context (per-sample std), kept on the 8-bit grid
        ctx = (
            torch.round((ctx + noise_std[:, None, None, None, None] * torch.randn_like(ctx)).clamp(0.0, 1.0) * 255.0)
            / 255.0
        )
    # where a world with several futures runs free to train its heads, it follows the recording's
    # futures (the one closest to each recorded frame), so the outcome the dream shows is the
    # one whose reward the recording paid; to train frames it draws them as a dream does
    follow = burn > 0 and free_heads
    net = model.module if hasattr(model, "module") else model
    if net.config.object_cells and locate is None:
        raise ValueError("a world with object cells trains with a locator of its object (world/object_cells.py)")

    def cells(t: int) -> torch.Tensor | None:  # the true object cells of recorded frame t
        return locate(batch.frames[:, t], net.config.patch) if net.config.object_cells else None

    def drawn_around(true_cells: torch.Tensor | None) -> torch.Tensor | None:
        return None if true_cells is None else jitter_cells(true_cells, net.config, cfg.object_jitter)

    if burn:
        with torch.no_grad():
            for r in range(burn):
                if follow:
                    target = batch.frames[:, k + r]
                    out = model(ctx, batch.actions[:, r : r + k], target=target, object_target=cells(k + r))
                else:
                    out = model(ctx, batch.actions[:, r : r + k], noise=_draw(model, ctx))
                pred = torch.round(out["frame"] * 255.0) / 255.0
                ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
    denom = float(rank_batch * rollout)
    # how often things happen is learnt from the data as it is: the heads that say it (reward,
    # future) weigh each window by 1 / how often the epoch draws it (windows.draw_weights)
    hw = batch.weight
    pos_weight = torch.tensor(cfg.term_pos_weight, device=ctx.device)
    frame_l = term_l = rew_l = err_l = fut_l = obj_l = torch.zeros((), device=ctx.device)
    # after a burn-in the dream no longer tracks the recording: with the frame model held fixed
    # (free_heads) only the reward is scored; else (with a bank) only the frames, against reality
    after_burn = "heads" if burn > 0 and free_heads else "frames" if burn > 0 and bank is not None else None
    for r in range(burn, burn + rollout):
        target = batch.frames[:, k + r]
        true_cells = cells(k + r) if after_burn is None or follow else None
        if after_burn is None or follow:  # a world with several futures draws them all, keeps the closest to reality
            out = model(ctx, batch.actions[:, r : r + k], target=target, object_target=drawn_around(true_cells))
        else:
            out = model(ctx, batch.actions[:, r : r + k], noise=_draw(model, ctx))
        pred = quantize(out["frame"])
        m = batch.mask[:, r]
        if true_cells is not None and after_burn is None:
            ce = F.cross_entropy(out["object_logits"], true_cells, reduction="none")
            obj_l = obj_l + (ce * m * hw).sum()
        if after_burn == "heads":
            rew_l = rew_l + (_reward_loss(model, out, batch.rewards[:, r], reward_weights) * m * hw).sum()
        elif after_burn == "frames":
            fit = (pred - nearest_real(bank, pred)).pow(2).mean(dim=(1, 2, 3))
            frame_l = frame_l + (torch.log(fit + cfg.log_eps) * m).sum()
        else:
            se = (pred - target).pow(2).mean(dim=(1, 2, 3))  # (B,)
            moved = moved_pixels(batch, k + r)
            # log-MSE: each sample's loss is its PSNR up to constants, so a sample that is
            # nearly right counts as much as one that is far off (the metric is mean PSNR)
            if "futures" not in out:
                log_fit = torch.log(weighted_fit(pred, target, moved, cfg.change_weight) + cfg.log_eps)  # (B,)
            else:
                # winner takes all: the future closest to reality is scored, the others a little
                # (so none is left behind where it never wins), and the head learns to name it
                every = quantize(out["futures"])  # (B, M, C, H, W); ``pred`` is every[b, future[b]]
                n_fut = every.shape[1]
                log_all = torch.log(
                    weighted_fit(
                        every.flatten(0, 1),
                        target.repeat_interleave(n_fut, 0),
                        moved.repeat_interleave(n_fut, 0),
                        cfg.change_weight,
                    ).view(-1, n_fut)
                    + cfg.log_eps
                )  # (B, M)
                log_fit = log_all.gather(1, out["future"][:, None])[:, 0]
                log_fit = (1.0 - cfg.futures_relax) * log_fit + cfg.futures_relax * log_all.mean(dim=1)
                fut_l = fut_l + (F.cross_entropy(out["future_logits"], out["future"], reduction="none") * m * hw).sum()
                # the error head predicts the error of the future a dream draws, not of the one
                # closest to reality: the mean over futures weighted by the head's probabilities
                drawn = torch.softmax(out["future_logits"].detach(), dim=1)  # (B, M)
                se = (drawn * (every.detach() - target[:, None]).pow(2).mean(dim=(2, 3, 4))).sum(dim=1)
            frame_l = frame_l + (log_fit * m).sum()
            bce = F.binary_cross_entropy_with_logits(
                out["term_logit"], batch.terminated[:, r], pos_weight=pos_weight, reduction="none"
            )
            term_l = term_l + (bce * m).sum()
            rew_l = rew_l + (_reward_loss(model, out, batch.rewards[:, r], reward_weights) * m * hw).sum()
            err_l = err_l + ((out["log_err"] - torch.log(se.detach() + 1e-7)).pow(2) * m).sum()
        ctx = torch.cat([ctx[:, 1:], pred[:, None]], dim=1)
    loss = (
        frame_l + cfg.term_weight * term_l + cfg.head_weight * (rew_l + err_l + fut_l) + cfg.object_weight * obj_l
    ) / denom
    stats = {
        "frame": frame_l.item() / denom,
        "term": term_l.item() / denom,
        "reward": rew_l.item() / denom,
        "err": err_l.item() / denom,
        "future": fut_l.item() / denom,
        "object": obj_l.item() / denom,
    }
    return loss, stats


def jitter_cells(cells: torch.Tensor, config: WorldModelConfig, share: float) -> torch.Tensor:
    """``cells`` (B,) with a random ``share`` of those that hold an object moved to one of their
    up to 8 neighbouring cells (clamped at the grid's edge)."""
    rows, cols = config.height // config.patch, config.width // config.patch
    present = cells < rows * cols
    if share <= 0 or not bool(present.any()):
        return cells
    move = present & (torch.rand(cells.shape, device=cells.device) < share)
    step = torch.randint(0, 8, cells.shape, device=cells.device)
    step = step + (step >= 4).long()  # 0..8 without 4, the cell itself
    r = (cells // cols + step // 3 - 1).clamp(0, rows - 1)
    c = (cells % cols + step % 3 - 1).clamp(0, cols - 1)
    return torch.where(move, r * cols + c, cells)


def moved_pixels(batch: Batch, t: int) -> torch.Tensor:
    """(B, C, H, W): the pixels of frame ``t`` that changed in reality since frame ``t - 1``."""
    return (batch.frames[:, t] - batch.frames[:, t - 1]).abs() > 1.5 / 255.0


def weighted_fit(pred: torch.Tensor, target: torch.Tensor, moved: torch.Tensor, change_weight: float) -> torch.Tensor:
    """Per sample (B,): the mean squared error of ``pred`` against ``target`` (B, C, H, W), the
    pixels that ``moved`` in reality weighing 1 + ``change_weight``."""
    if change_weight <= 0:
        return (pred - target).pow(2).mean(dim=(1, 2, 3))
    w = 1.0 + change_weight * moved.float()
    return ((pred - target).pow(2) * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3))


def _draw(model: torch.nn.Module, ctx: torch.Tensor) -> torch.Tensor | None:
    """The noise that draws a free-running step's future and object cell as a dream does (its
    true next frame is not the recording's); None for a world that draws neither."""
    return draw_noise(model.module if hasattr(model, "module") else model, ctx.shape[0])


def _reward_loss(
    model: torch.nn.Module, out: dict[str, torch.Tensor], target: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Per sample (B,): the class-weighted cross-entropy of a reward classifier against the
    class nearest ``target`` (B,), or the squared error of a regressed reward."""
    if "reward_logits" not in out:
        return (out["reward"] - target).pow(2)
    values = model.reward_values if hasattr(model, "reward_values") else model.module.reward_values
    cls = (target[:, None] - values[None]).abs().argmin(dim=1)
    return F.cross_entropy(out["reward_logits"], cls, weight=weights, reduction="none")
