"""What a trained world is measured by before it is saved: held-out open-loop PSNR, and
the drift threshold calibrated on held-out windows (stored in the world file, used by
the dream unless the spec sets one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neuralgym.common.images import psnr_from_mse
from neuralgym.common.stats import auroc, calibrate_threshold
from neuralgym.training.windows import WindowDataset
from neuralgym.world.model import WorldModel, predicted_rmse


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per sample between frames in [0, 1] (computed on the 8-bit grid), capped at 100 dB."""
    a8, b8 = torch.round(a * 255.0), torch.round(b * 255.0)
    return psnr_from_mse((a8 - b8).pow(2).flatten(1).mean(dim=1))


@torch.no_grad()
def validate(
    model: WorldModel,
    ds: WindowDataset,
    horizons: tuple[int, ...] = (1, 5, 10, 25),
    n: int = 128,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
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
def calibrate_drift(
    model: WorldModel,
    ds: WindowDataset,
    fidelity_psnr: float,
    horizon: int = 25,
    n: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The drift threshold of this world, measured as ``neuralgym eval`` would but on
    held-out training windows: open-loop rollouts from K real frames with the recorded
    actions, scored with the dream's own drift (the root of the summed squared per-step
    RMSE the error head predicts, in grey levels) against whether the frame's true PSNR is
    under ``fidelity_psnr``; the threshold best separating the two (Youden's J).

    Returns ``{"threshold": float or None, ...}``: None where every frame, or none, is
    under ``fidelity_psnr`` (nothing to separate; the dream then does not truncate on drift)."""
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
        step_err = predicted_rmse(out["log_err"])  # as the dream scores it
        drift_sq += step_err.double().pow(2)
        drifts.append(drift_sq.sqrt().cpu().numpy())
        psnrs.append(psnr(pred, b.frames[:, k + r]).cpu().numpy())
    drift, frame_psnr = np.concatenate(drifts), np.concatenate(psnrs)
    off = frame_psnr < fidelity_psnr
    report: dict[str, Any] = {
        "fidelity_psnr": fidelity_psnr,
        "windows": int(len(ids)),
        "horizon": int(h_max),
        "frames": int(len(off)),
        "off": int(off.sum()),
    }
    if not 0 < off.sum() < len(off):
        report["threshold"] = None
        report["reason"] = (
            f"every held-out frame is under {fidelity_psnr} dB"
            if off.all()
            else f"no held-out frame is under {fidelity_psnr} dB"
        )
        return report
    report["threshold"] = calibrate_threshold(drift, off)
    report["auroc"] = auroc(drift, off)
    return report
