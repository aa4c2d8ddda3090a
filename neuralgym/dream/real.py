"""The real source env seen through a world's preprocessing (``neuralgym/<World>-real-v0``).

Its observation and action spaces are exactly the dream's, so an agent trained in the
dream runs here unchanged, and ``neuralgym eval`` can run both in lockstep. Its info has
the dream's keys too (:mod:`neuralgym.dream.info`), those of a dream that never drifts.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Source envs (CartPole's renderer, play's window) initialise SDL, which by default
# swallows SIGINT/SIGTERM: Ctrl-C and `kill` would no longer stop a collection run.
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from neuralgym.dream.info import lane_info, start_info  # noqa: E402
from neuralgym.dream.rendering import FrameRendering  # noqa: E402
from neuralgym.world.catalog import get_spec  # noqa: E402
from neuralgym.world.preprocess import preprocess_frame  # noqa: E402
from neuralgym.world.spaces import (
    ResetNeededError,
    action_space_for,
    observation_space_for,  # noqa: E402
    to_source_action,
    validate_action,
)
from neuralgym.world.spec import WorldSpec  # noqa: E402


class RealWorldEnv(FrameRendering, gym.Env):
    """The source Gymnasium env with the world's preprocessing, frame skip and action set.

    ## Observation space
    ``Box(0, 255, (H, W, C), uint8)``: the preprocessed frame, the same as the dream's.

    ## Action space
    The world's own (``Discrete(n)`` mapped to the spec's source actions, or ``Box``).

    ## Rewards, episode end
    The source env's rewards (summed over skipped frames), its termination, and
    truncation at the spec's ``max_steps`` (or the source env's own limit).

    ## Arguments
    ``world``: spec key or name; ``render_mode``: ``"rgb_array"`` or ``"human"``.
    Extra keyword arguments (``weights``, ``device``, ``drift_policy``, ``precision``...) are accepted
    and ignored so that dream and real ids take the same arguments.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "human"], "render_fps": 30}
    _view_title = "(real)"

    def __init__(
        self,
        world: str | WorldSpec = "cartpole",
        render_mode: str | None = None,
        limit_by_wrapper: bool = False,
        **_ignored: Any,
    ):
        self.spec_world = world if isinstance(world, WorldSpec) else get_spec(world)
        # under gym.make the TimeLimit wrapper holds the limit (see neuralgym.world.registry)
        self._limit = None if limit_by_wrapper else self.spec_world.max_episode_steps
        spec = self.world_spec = self.spec_world  # world_spec: the name the dream env uses too
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": spec.play.render_fps}
        kwargs = dict(spec.source_kwargs)
        if spec.preprocess.frame_source == "render":
            kwargs["render_mode"] = "rgb_array"
        if spec.source_module:  # e.g. ale_py, which registers the ALE/ ids
            importlib.import_module(spec.source_module)
        self._source = gym.make(spec.source_id, max_episode_steps=10**9, **kwargs)
        self.source_obs: Any = None  # the source env's newest raw observation (for scripted policies)
        self.observation_space = observation_space_for(spec)
        self.action_space = action_space_for(spec)
        self.context_length = spec.context_length
        self._obs: np.ndarray | None = None
        self._t = 0

    @property
    def source(self) -> gym.Env:
        """The wrapped source env (its ``unwrapped`` holds the true state)."""
        return self._source

    def _frame(self, source_obs: Any) -> np.ndarray:
        self.source_obs = source_obs
        pp = self.spec_world.preprocess
        raw = self._source.render() if pp.frame_source == "render" else source_obs
        return preprocess_frame(np.asarray(raw), pp, str(self.spec_world.path or self.spec_world.key))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        source_seed = int(self.np_random.integers(0, 2**31 - 1))
        obs, info = self._source.reset(seed=source_seed)
        lo, hi = self.spec_world.preprocess.reset_noops
        if hi:  # the episode starts where play does, after a seeded number of no-ops
            noop = to_source_action(self.spec_world, np.asarray(self.spec_world.actions.noop))
            for _ in range(int(self.np_random.integers(lo, hi + 1))):
                obs, *_ = self._source.step(noop)
        self._t = 0
        self._obs = self._frame(obs)
        if self.render_mode == "human":
            self.render()
        return self._obs.copy(), lane_info(start_info(1))

    def step(self, action: Any):
        if self._obs is None:
            raise ResetNeededError("step() called before reset(): call env.reset() first")
        action = validate_action(self.action_space, action)
        source_action = to_source_action(self.spec_world, action)
        total = 0.0
        terminated = truncated = False
        obs = None
        for _ in range(self.spec_world.preprocess.frame_skip):
            obs, reward, terminated, truncated, _ = self._source.step(source_action)
            total += float(reward)
            if terminated or truncated:
                break
        self._t += 1
        self._obs = self._frame(obs)
        truncated = bool(truncated) or (self._limit is not None and self._t >= self._limit)
        if self.render_mode == "human":
            self.render()
        # the info of a dream that never drifts: the same keys as the dream's, so code reading them runs on both
        return self._obs.copy(), total, bool(terminated), truncated, lane_info(start_info(1))

    def close(self) -> None:
        self._close_viewer()
        self._source.close()
