"""``WorldModelEnv``: one dream as a ``gymnasium.Env`` (``gym.make("neuralgym/<World>-v0")``).

It is the batched :class:`~neuralgym.dream.core.DreamCore` with one lane, not a second
implementation: everything the vector env does per step happens here the same way. The
core keeps the lane's state, seeding and info; this face checks Gymnasium's arguments,
renders, and hands back lane 0 as Gymnasium's single-env API wants it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.common.seeding import check_seed
from neuralgym.dream.core import DEFAULT_TEMPERATURE, NO_LIMIT, DreamCore
from neuralgym.dream.info import lane_info
from neuralgym.dream.rendering import FrameRendering
from neuralgym.world.catalog import get_spec
from neuralgym.world.spec import WorldSpec


class WorldModelEnv(FrameRendering, gym.Env):
    """A learned world model of a real env, stepped as a Gymnasium env.

    ## Observation space
    ``Box(0, 255, (H, W, C), uint8)``: the predicted frame, identical to the
    ``-real-v0`` env's preprocessed frame (64x64 by default).

    ## Action space
    The world's own, identical to the ``-real-v0`` env's.

    ## Rewards
    The model's reward head.

    ## Starting state
    ``reset()`` draws a real start frame from the world's start bank (seeded by
    ``np_random``). ``reset(options={"frames": uint8[n, H, W, C], "actions": [...]})``
    starts from those frames instead (1 <= n <= K = ``context_length``; actions n-1 or
    n long); fewer than K frames are padded with the first one.

    ## Episode end
    ``terminated``: sampled from the termination head (``temperature`` scales it; 0
    thresholds at p = 0.5). ``truncated``: the time limit, the drift-reset policy, or a
    non-finite prediction (``info["nonfinite"]``). Every step's info holds ``drift``,
    ``dream_step`` and ``drift_reset``.

    ## Arguments
    ``world`` (key or spec), ``weights`` (path), ``device`` ("auto", "cpu", "cuda"),
    ``drift_policy`` ("default", "none", "truncate", "reanchor", dict or
    :class:`~neuralgym.world.drift.DriftResetPolicy`), ``temperature``,
    ``max_episode_steps``, ``render_mode`` ("rgb_array" or "human"), ``anchor_starts``
    (share of episodes started from a real window of the anchor bank, mid-motion).
    Under ``gym.make`` the episode limit is Gymnasium's ``TimeLimit`` (the spec's
    ``max_steps``, or ``gym.make(..., max_episode_steps=N)``) and ``limit_by_wrapper``
    (set by the registration) leaves it to that wrapper.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "human"], "render_fps": 30}
    _view_title = "(dream)"

    def __init__(
        self,
        world: str | WorldSpec = "cartpole",
        weights: str | Path | None = None,
        device: str = "auto",
        drift_policy: Any = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        precision: str = "auto",
        compile: bool = False,
        anchor_starts: float = 0.0,
        limit_by_wrapper: bool = False,
    ):
        spec = world if isinstance(world, WorldSpec) else get_spec(world)
        if limit_by_wrapper and max_episode_steps is None:
            # made by gym.make: its TimeLimit wrapper holds the episode limit (the spec's, or
            # gym.make's max_episode_steps), so the dream sets none of its own
            max_episode_steps = NO_LIMIT
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.core = DreamCore(
            spec, 1, weights, device, drift_policy, temperature, max_episode_steps, precision, compile, anchor_starts
        )
        self.world_spec = spec
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": spec.play.render_fps}
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._obs: np.ndarray | None = None  # the newest observation, for render()

    @property
    def context_length(self) -> int:
        return self.core.k

    @property
    def weights_path(self) -> Path:
        return self.core.weights_path

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = check_seed(seed)  # validate everything before anything changes
        prompt = self.core.validate_prompt(options)
        if options and "reset_mask" in options:
            raise ValueError("reset option 'reset_mask' is for vector envs only")
        super().reset(seed=seed)  # seeds self._np_random, which the core then draws from
        frames, info = self.core.reset(seed, self.np_random, prompt=prompt)
        self._obs = DreamCore.to_numpy(frames)[0]
        if self.render_mode == "human":
            self.render()
        return self._obs.copy(), lane_info(info)

    def step(self, action: Any):
        res = self.core.step(action, single=True)
        self._obs = DreamCore.to_numpy(res.frames)[0]
        if self.render_mode == "human":
            self.render()
        return (
            self._obs.copy(),
            float(res.reward[0]),
            bool(res.terminated[0]),
            bool(res.truncated[0]),
            lane_info(res.info),
        )

    def close(self) -> None:
        self._close_viewer()
