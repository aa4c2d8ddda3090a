"""Frames as people and metrics see them: grey to RGB, and PSNR on the 8-bit grid.

Every observation is an (H, W, C) uint8 frame with C = 1 (grey) or 3 (RGB); windows,
videos and ``render()`` want RGB, and every fidelity number is a PSNR of 8-bit frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: dB: the PSNR of identical frames (and the cap of every other)
PSNR_CAP = 100.0
#: the largest value of an 8-bit pixel
PEAK = 255.0
#: a smaller mean squared error counts as this one (identical frames: PSNR_CAP)
MIN_MSE = 1e-10


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """A new uint8 RGB array of ``frame``: (..., H, W, 1) or (H, W) grey repeated to three
    channels, (..., H, W, 3) copied."""
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame.copy()


def psnr_from_mse(mse: Any) -> Any:
    """PSNR in dB of mean squared errors on the 0..255 scale, capped at :data:`PSNR_CAP`.
    Takes numpy arrays and numbers, or torch tensors (which stay on their device)."""
    if hasattr(mse, "clamp"):  # a torch tensor
        return (10.0 * (PEAK**2 / mse.clamp(min=MIN_MSE)).log10()).clamp(max=PSNR_CAP)
    return np.minimum(10.0 * np.log10(PEAK**2 / np.maximum(mse, MIN_MSE)), PSNR_CAP)


def psnr_u8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB over the trailing (H, W, C) axes of uint8 frames, capped at :data:`PSNR_CAP`."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(*a.shape[:-3], -1).mean(axis=-1)
    return psnr_from_mse(mse)
