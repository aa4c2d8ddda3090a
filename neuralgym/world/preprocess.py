"""A world's preprocessing of a source frame: crop, resize, colour.

The real env (and anything that renders real frames, such as the CartPole frame grid of
:mod:`neuralgym.metrics.realframes`) turns every source frame into an observation here,
so the dream is trained on and compared with exactly these frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from neuralgym.world.spec import PreprocessSpec, SpecError


def check_crop(frame_shape: tuple[int, ...], pp: PreprocessSpec, where: str = "spec") -> None:
    """Raise :class:`SpecError` unless ``pp.crop`` lies wholly inside a source frame of ``frame_shape``."""
    if pp.crop is None:
        return
    height, width = frame_shape[:2]
    top, bottom, left, right = pp.crop
    if bottom > height or right > width:
        raise SpecError(
            f"{where} [preprocess]: 'crop' {list(pp.crop)} (top, bottom, left, right) lies outside the "
            f"source frame of {width}x{height} (width x height): expected bottom <= {height} and "
            f"right <= {width}"
        )


def preprocess_frame(frame: np.ndarray, pp: PreprocessSpec, where: str = "spec") -> np.ndarray:
    """Crop, resize (area-averaged, so sub-pixel positions survive as edge intensities)
    and convert colour. Returns a new uint8 array of shape (H, W, C). A crop outside the
    frame is a :class:`SpecError` (``where`` names the spec)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB source frame (H, W, 3), got shape {frame.shape}")
    if pp.crop is not None:
        check_crop(frame.shape, pp, where)
        top, bottom, left, right = pp.crop
        frame = frame[top:bottom, left:right]
    h, w = pp.size
    out = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    if pp.grayscale:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.ascontiguousarray(out, dtype=np.uint8)
