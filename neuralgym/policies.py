"""Behaviour policies for collecting world-model training data.

A world model only learns what its data shows. Random play covers the start of
episodes; agents reach long, balanced episodes too. A spec names its default
collection policy; ``neuralgym collect --policy`` overrides it.

Every policy is a callable ``policy(obs) -> action`` built per episode by
``make_policy(name, env, rng)``; episode-level randomness (exploration rate,
targets) comes from ``rng`` so collection is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuralgym.real import RealWorldEnv

Policy = Callable[[np.ndarray], Any]


def _random(env: RealWorldEnv, rng: np.random.Generator) -> Policy:
    space = env.action_space
    space.seed(int(rng.integers(2**31 - 1)))
    return lambda obs: space.sample()


def _cartpole_balance(env: RealWorldEnv, rng: np.random.Generator) -> Policy:
    """A PD balancer on CartPole's true state with a wandering target position and
    a per-episode exploration rate, so the data spans short crashes, long balanced
    runs and the whole track. (It reads ``unwrapped.state``: data collection only.)"""
    eps = float(rng.choice([0.0, 0.05, 0.15, 0.25, 0.4, 1.0], p=[0.15, 0.2, 0.25, 0.2, 0.1, 0.1]))
    state = {"target": float(rng.uniform(-1.8, 1.8)), "t": 0}
    source = env.source.unwrapped

    def act(obs: np.ndarray) -> int:
        state["t"] += 1
        if rng.random() < 0.01:
            state["target"] = float(rng.uniform(-1.8, 1.8))
        if rng.random() < eps:
            return int(rng.integers(2))
        x, x_dot, theta, theta_dot = (float(v) for v in source.state)
        # Lean the pole towards the target, then balance: a classic cascaded PD.
        desired_theta = np.clip(-0.05 * (x - state["target"]) - 0.1 * x_dot, -0.1, 0.1)
        u = 12.0 * (theta - desired_theta) + 2.0 * theta_dot
        return int(u > 0)

    return act


def _sb3(path: str) -> Callable[[RealWorldEnv, np.random.Generator], Policy]:
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

    model = None
    for cls in (PPO, DQN, A2C, SAC, TD3):
        try:
            model = cls.load(path, device="cpu")
            break
        except Exception:  # noqa: BLE001 - try the next algorithm class
            continue
    if model is None:
        raise ValueError(f"could not load {path} as a stable-baselines3 PPO/DQN/A2C/SAC/TD3 zip")

    def build(env: RealWorldEnv, rng: np.random.Generator) -> Policy:
        eps = float(rng.choice([0.0, 0.1, 0.25]))
        space = env.action_space
        space.seed(int(rng.integers(2**31 - 1)))

        def act(obs: np.ndarray) -> Any:
            if rng.random() < eps:
                return space.sample()
            action, _ = model.predict(obs, deterministic=False)
            return action

        return act

    return build


BUILTIN: dict[str, Callable[[RealWorldEnv, np.random.Generator], Policy]] = {
    "random": _random,
    "cartpole-balance": _cartpole_balance,
}


def policy_factory(name: str) -> Callable[[RealWorldEnv, np.random.Generator], Policy]:
    """A built-in policy name, or the path of an SB3 ``.zip``."""
    if name in BUILTIN:
        return BUILTIN[name]
    if name.endswith(".zip") or Path(name).is_file():
        if not Path(name).is_file():
            raise ValueError(f"policy file {name} does not exist")
        return _sb3(name)
    raise ValueError(f"unknown policy {name!r}: expected one of {sorted(BUILTIN)} or a path to an SB3 .zip")
