"""Rendering shared by the dream and the real env: ``render()`` in either mode,
``get_keys_to_action()`` for ``gymnasium.utils.play``, and the window's cleanup.

Both envs show their newest observation (``self._obs``) as RGB; in ``"human"`` mode in a
:class:`~neuralgym.common.window.Viewer` paced to the world's ``render_fps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralgym.common.images import to_rgb
from neuralgym.common.window import Viewer
from neuralgym.world.keymap import keys_to_action
from neuralgym.world.spaces import ResetNeededError


class FrameRendering:
    """Mixin of a ``gymnasium.Env`` with ``_obs``, ``world_spec``, ``render_mode`` and ``metadata``."""

    _obs: np.ndarray | None = None
    _viewer: Viewer | None = None
    _view_title: str = ""  # e.g. "(dream)"

    def render(self) -> np.ndarray | None:
        if self._obs is None:
            raise ResetNeededError("render() called before reset(): call env.reset() first")
        frame = to_rgb(self._obs)
        if self.render_mode == "human":
            if self._viewer is None:
                self._viewer = Viewer(f"{self.world_spec.name} {self._view_title}", frame.shape[:2])
            self._viewer.show(frame, self.metadata["render_fps"])
            return None
        return frame

    def get_keys_to_action(self) -> dict[tuple[int, ...], Any]:
        return keys_to_action(self.world_spec)

    def _close_viewer(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
