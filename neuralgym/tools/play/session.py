"""The env being played: the dream or the real env of a world, its episode counters, and
switching between the two (Tab) with the dream continuing from the last real frames."""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.common.images import to_rgb
from neuralgym.dream.real import RealWorldEnv
from neuralgym.world.spec import WorldSpec


class EnvUnavailable(RuntimeError):
    """The dream or real env of a world cannot be made (not registered, no weights...)."""


def make_env(spec: WorldSpec, dream: bool, **kwargs: Any) -> gym.Env:
    """The world's dream or real env through ``gym.make`` of its registered id."""
    env_id = spec.dream_id if dream else spec.real_id
    if env_id not in gym.registry:
        if not dream:  # fallback until `import neuralgym` registers the -real-v0 ids
            return RealWorldEnv(spec, render_mode="rgb_array")
        raise EnvUnavailable(f"{env_id} is not registered")
    try:
        return gym.make(env_id, render_mode="rgb_array", **kwargs)
    except Exception as e:  # shown to the player, who can still play the other env
        raise EnvUnavailable(f"could not make {env_id}: {type(e).__name__}: {' '.join(str(e).split())}") from e


class Session:
    """The env being played (dream or real), its episode counters, and the other env for Tab.

    The last K observations and the actions between them are kept so that switching
    from real to dream prompts the dream with them: the dream continues where you were.
    """

    def __init__(self, spec: WorldSpec, dream: bool, seed: int | None, dream_kwargs: dict[str, Any]):
        self.spec = spec
        self.dream = dream
        self._seed = seed
        self._dream_kwargs = dream_kwargs
        self.drift_policy = str(dream_kwargs.get("drift_policy") or spec.drift.policy)
        self._envs: dict[bool, gym.Env] = {}
        self._seeded: set[bool] = set()
        self.episode = 0
        self.env = self._get(dream)
        k = int(getattr(self.env.unwrapped, "context_length", spec.context_length))
        self._frames: deque[np.ndarray] = deque(maxlen=k)
        self._actions: deque[Any] = deque(maxlen=k - 1)
        self.reset("start")

    def _get(self, dream: bool) -> gym.Env:
        if dream not in self._envs:
            self._envs[dream] = make_env(self.spec, dream, **(self._dream_kwargs if dream else {}))
        return self._envs[dream]

    def _after(self, obs: np.ndarray) -> None:
        self._frames.append(np.asarray(obs))
        frame = self.env.render()
        self.frame = to_rgb(frame if frame is not None else obs)

    def reset(self, reason: str, options: dict[str, Any] | None = None) -> None:
        seed = self._seed if self.dream not in self._seeded else None
        self._seeded.add(self.dream)
        self._frames.clear()
        self._actions.clear()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self.step_count = 0
        self.episode_return = 0.0
        self.last_reward: float | None = None
        self.info: dict[str, Any] = dict(info)
        self.done = False
        self.end_reason = ""
        self.last_reset = reason
        self._after(obs)

    def step(self, action: Any) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step_count += 1
        self.episode_return += float(reward)
        self.last_reward = float(reward)
        self.info = dict(info)
        self.done = bool(terminated or truncated)
        if self.done:
            self.end_reason = "drift" if info.get("drift_reset") else ("terminated" if terminated else "truncated")
        self._actions.append(action)
        self._after(obs)

    def advance(self, action: Any) -> None:
        """One displayed frame: the next step, or the reset after an episode's end."""
        if self.done:
            self.reset(self.end_reason)
        else:
            self.step(action)

    def switch(self) -> str:
        """Tab: play the other env; from real to dream, the dream starts from the last
        real frames. Returns a message for the HUD; raises :class:`EnvUnavailable`."""
        target = not self.dream
        env = self._get(target)
        options = None
        if target and self._frames:  # n frames and the n-1 actions between them
            options = {"frames": np.stack(list(self._frames)), "actions": list(self._actions)}
        self.dream, self.env = target, env
        try:
            self.reset("switch", options)
        except (ValueError, TypeError):  # the dream refused the prompt: a fresh start
            self.reset("switch")
        return f"switched to {'dream' if target else 'real'}"

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
