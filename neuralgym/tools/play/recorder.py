"""Recording play: mp4 video through OpenCV, and fresh file names for recordings and screenshots."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np


class RecordError(ValueError):
    """The mp4 file cannot be written."""


class Recorder:
    """mp4 through OpenCV ('mp4v'): RGB frames in, one video frame each."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RecordError(f"could not create the folder of {path}: {e}") from e
        self.path = path
        self.frames = 0
        self._size = size_wh
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size_wh)
        if not self._writer.isOpened():
            raise RecordError(f"could not open {path} for writing an mp4 video")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()


def default_path(world: str, suffix: str) -> Path:
    """A new file in the working directory: ``neuralgym-<world>-<time>[-n]<suffix>``."""
    stem = f"neuralgym-{world}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path(stem + suffix), 1
    while path.exists():
        n += 1
        path = Path(f"{stem}-{n}{suffix}")
    return path
