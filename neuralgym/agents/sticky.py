"""Sticky actions while an agent trains: each lane repeats its previous action with
probability ``p`` instead of taking the agent's (the "sticky actions" of Machado et al., 2018).

A PPO agent starts as a uniform random policy, and actions drawn anew every step cancel out:
the system stays near where it started, and a goal that pays only once reached is never seen
(Acrobot-v1: none of 40 uniformly random episodes reaches it). Repeated actions swing the
system far. Only training is sticky: the saved agent acts every step as it chooses.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class VecStickyActions(VecEnvWrapper):
    """Each lane keeps its previous action with probability ``p`` (never on an episode's first step)."""

    def __init__(self, venv: VecEnv, p: float, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"sticky action probability must be in [0, 1), got {p!r}")
        super().__init__(venv)
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.last: np.ndarray | None = None
        self.fresh = np.ones(self.num_envs, dtype=bool)  # lanes whose episode has just begun

    def reset(self):
        self.fresh[:] = True
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.array(actions, copy=True)
        if self.last is not None:
            keep = (self.rng.random(self.num_envs) < self.p) & ~self.fresh
            actions[keep] = self.last[keep]
        self.last, self.fresh[:] = actions, False
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.fresh |= np.asarray(dones, dtype=bool)
        return obs, rewards, dones, infos
