"""A small pygame window for ``render_mode="human"``, and the pieces play shares with it
(nearest-neighbour upscaling, frame pacing).

pygame is imported lazily (as in gymnasium's classic_control), so neuralgym imports and
trains without it; only opening a window needs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType

import numpy as np


def require_pygame() -> ModuleType:
    """Import pygame (pygame-ce provides it) or raise naming the package to install."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        from gymnasium.error import DependencyNotInstalled

        raise DependencyNotInstalled("pygame is not installed; a window needs it: run `pip install pygame-ce`") from e
    return pygame


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W, 3) uint8 frame: pixels stay crisp squares."""
    if scale == 1:
        return np.ascontiguousarray(frame)
    import cv2  # here, not at the top: `import neuralgym` checks keymaps through this module

    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)


def default_scale(frame_hw: tuple[int, int], target: int = 512) -> int:
    """The integer scale that brings the frame's long side closest to ``target`` pixels."""
    return max(1, round(target / max(frame_hw)))


class Pacer:
    """Frame pacing on an absolute schedule (frame n is due at ``start + n / fps``).

    Sleeping to a deadline, rather than for a fixed time after each frame, keeps the
    average rate exact however long each frame's work takes; after a stall of more than
    a frame the schedule restarts from now instead of bursting to catch up.
    """

    def __init__(
        self,
        fps: float,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Block until the next frame is due."""
        now = self._clock()
        if self._next is None:
            self._next = now
        self._next += self.period
        if self._next > now:
            self._sleep(self._next - now)
        elif now - self._next > self.period:
            self._next = now


class Viewer:
    """A window showing RGB frames scaled up; used by the envs' ``render()`` in "human" mode.

    ``show(frame, fps)`` draws one frame and waits until the next is due; closing the
    window (or Esc) sets ``closed`` and later frames are ignored.
    """

    def __init__(self, title: str, frame_hw: tuple[int, int], scale: int | None = None):
        self._pg = require_pygame()
        self.scale = scale or default_scale(frame_hw)
        self.title = title
        self._size = (frame_hw[1] * self.scale, frame_hw[0] * self.scale)
        self.screen = self._open()
        self.closed = False
        self._pacer: Pacer | None = None

    def _open(self):
        """(Re)open the window: pygame has one display, and another viewer's close() shuts it."""
        self._pg.display.init()
        self._pg.display.set_caption(self.title)
        return self._pg.display.set_mode(self._size)

    def poll(self) -> None:
        """Handle window events so the window stays responsive."""
        pg = self._pg
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                self.closed = True

    def show(self, frame: np.ndarray, fps: float | None = None) -> None:
        """Draw an (H, W, 3) uint8 frame, then pace to ``fps`` (no pacing if None)."""
        if not self._pg.display.get_init() or self._pg.display.get_surface() is not self.screen:
            self.screen = self._open()
        self.poll()
        if self.closed:
            return
        img = upscale(np.asarray(frame, dtype=np.uint8), self.scale)
        surf = self._pg.surfarray.make_surface(img.swapaxes(0, 1))
        if surf.get_size() != self.screen.get_size():
            surf = self._pg.transform.scale(surf, self.screen.get_size())
        self.screen.blit(surf, (0, 0))
        self._pg.display.flip()
        if fps:
            if self._pacer is None or abs(self._pacer.period - 1.0 / fps) > 1e-12:
                self._pacer = Pacer(fps)
            self._pacer.wait()

    def close(self) -> None:
        if self.screen is not None:
            self._pg.display.quit()
            self.screen = None
            self.closed = True
