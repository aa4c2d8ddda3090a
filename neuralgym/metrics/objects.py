"""Small objects a game lives in, found in preprocessed frames (for object fidelity and
for frame-reading drivers).

A locator maps one (H, W, C) uint8 frame to the object's centre ``(row, col)`` on the
frame's grid, or ``None`` where the frame shows no such object. ``OBJECT_LOCATORS``
names the locator of each world that has one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# the ball's signature is defined once, for the model's object cells too
from neuralgym.world.object_cells import (
    PONG_BALL_MASS_MIN,
    PONG_OPPONENT_COLUMNS,
    PONG_PIXEL_MIN,
    PONG_PLAYER_COLUMNS,
)

Locator = Callable[[np.ndarray], "tuple[float, float] | None"]


def background(frame: np.ndarray) -> int:
    """The most common grey level of a one-channel frame."""
    return int(np.bincount(frame[..., 0].ravel(), minlength=256).argmax())


def pong_ball(frame: np.ndarray) -> tuple[float, float] | None:
    """The ball's centre in a 64x64 grey Pong frame: the deviation-weighted centroid of the
    5x5 window around the strongest non-background pixel away from the paddles' columns;
    ``None`` if that window holds less than a third of a ball."""
    f = frame[..., 0].astype(np.int32)
    d = np.abs(f - background(frame))
    d[:, PONG_OPPONENT_COLUMNS[0] - 1 : PONG_OPPONENT_COLUMNS[1] + 1] = 0
    d[:, PONG_PLAYER_COLUMNS[0] - 1 : PONG_PLAYER_COLUMNS[1] + 1] = 0
    d[d < PONG_PIXEL_MIN] = 0
    r, c = np.unravel_index(int(np.argmax(d)), d.shape)
    if d[r, c] == 0:
        return None
    r0, c0 = max(0, r - 2), max(0, c - 2)
    win = d[r0 : r + 3, c0 : c + 3].astype(np.float64)
    mass = win.sum()
    if mass < PONG_BALL_MASS_MIN:
        return None
    rows, cols = np.mgrid[r0 : r0 + win.shape[0], c0 : c0 + win.shape[1]]
    return float((rows * win).sum() / mass), float((cols * win).sum() / mass)


def pong_paddle(frame: np.ndarray) -> float | None:
    """The player's (right) paddle centre row, or ``None`` if it is not in view."""
    f = frame[..., 0].astype(np.int32)
    d = np.abs(f[:, PONG_PLAYER_COLUMNS[0] : PONG_PLAYER_COLUMNS[1]] - background(frame)).sum(axis=1)
    rows = np.flatnonzero(d >= 2 * PONG_PIXEL_MIN)
    return float(rows.mean()) if len(rows) else None


OBJECT_LOCATORS: dict[str, Locator] = {"pong": pong_ball}


def _pong_paddle_at(frame: np.ndarray) -> tuple[float, float] | None:
    row = pong_paddle(frame)
    return None if row is None else (row, float(sum(PONG_PLAYER_COLUMNS) / 2 - 0.5))


#: what a frame of the world should keep showing over a long dream (coherence reports the
#: share of frames in which each is found, beside the real env's share)
PRESENCE_CHECKS: dict[str, dict[str, Locator]] = {"pong": {"ball": pong_ball, "paddle": _pong_paddle_at}}


def within(a: tuple[float, float] | None, b: tuple[float, float] | None, pixels: float) -> bool:
    """Both found, their centres no farther apart than ``pixels`` (Euclidean)."""
    return a is not None and b is not None and float(np.hypot(a[0] - b[0], a[1] - b[1])) <= pixels
