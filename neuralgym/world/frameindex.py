"""Nearest real frames: a :class:`RealFrameIndex` finds, for any frame, the most similar of
a set of real frames and the PSNR between them.

A dreamt frame is *plausible* when some real frame looks like it: its plausibility is the
PSNR (dB, uint8) to the nearest frame of an index. Training scores free-running
predictions against the nearest of its real frames the same way. The search is exact
where it matters: a coarse pass on 4x4-averaged frames keeps the ``candidates`` nearest
entries, which are then ranked by the exact full-resolution MSE. Which real frames an
index holds is :mod:`neuralgym.metrics.realframes`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from neuralgym.common.images import psnr_from_mse


@dataclass
class RealFrameIndex:
    """Real frames (M, H, W, C) uint8 and optional per-frame labels (M, D)."""

    frames: np.ndarray
    labels: np.ndarray | None = None
    exact: bool = False  # True: the frames cover everything the real env can show
    description: str = ""
    candidates: int = 256

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.dtype != np.uint8 or len(self.frames) == 0:
            raise ValueError(
                f"an index needs uint8 frames (M, H, W, C) with M >= 1, got {self.frames.dtype} {self.frames.shape}"
            )
        self._coarse = self._pool(self.frames)  # (M, D) float32
        self._coarse_sq = (self._coarse**2).sum(dim=1)

    @staticmethod
    def _pool(frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        parts = [F.avg_pool2d(x[i : i + 4096], 4).flatten(1) for i in range(0, len(x), 4096)]
        return torch.cat(parts)

    def nearest(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (n, H, W, C) uint8 -> (index of the nearest real frame (n,), its PSNR in dB (n,))."""
        if frames.shape[1:] != self.frames.shape[1:]:
            raise ValueError(f"frames of shape {frames.shape[1:]} against an index of {self.frames.shape[1:]}")
        q = self._pool(frames)
        coarse = (q**2).sum(dim=1, keepdim=True) + self._coarse_sq[None] - 2.0 * q @ self._coarse.t()  # (n, M)
        k = min(self.candidates, len(self.frames))
        cand = torch.topk(coarse, k, dim=1, largest=False).indices.numpy()  # (n, k)
        best = np.empty(len(frames), np.int64)
        mse = np.empty(len(frames), np.float64)
        for i, c in enumerate(cand):
            diff = self.frames[c].astype(np.int32) - frames[i].astype(np.int32)[None]
            m = (diff * diff).reshape(k, -1).mean(axis=1)
            j = int(np.argmin(m))
            best[i], mse[i] = c[j], m[j]
        return best, psnr_from_mse(mse)
