"""Behaviour policies for collecting world-model training data.

A world model only learns what its data shows. Random play covers the start of
episodes; agents reach long, balanced episodes too. A spec names its default
collection policy; ``neuralgym collect --policy`` overrides it.

Every policy is a callable ``policy(obs) -> action`` built per episode by
``policy_factory(name)(env, rng, epsilon=None)``; episode-level randomness
(exploration rate, targets) comes from ``rng`` so collection is reproducible, and
``epsilon`` fixes the rate of random actions (evaluation uses 0.25).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuralgym.real import RealWorldEnv

Policy = Callable[[np.ndarray], Any]


def _random(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    space = env.action_space
    space.seed(int(rng.integers(2**31 - 1)))
    return lambda obs: space.sample()


def _cartpole_balance(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """A PD balancer on CartPole's true state with a wandering target position and
    a per-episode exploration rate, so the data spans short crashes, long balanced
    runs and the whole track. Half the episodes "give up" at a random step (random
    or constant pushes from then on), and some chase a target past the track's end,
    so falls and run-offs are seen from every kind of state: the termination head
    and the falling pole are learned from these. (It reads ``unwrapped.state``:
    data collection and evaluation only.)"""
    eps = float(rng.choice([0.0, 0.05, 0.15, 0.25, 0.4, 1.0], p=[0.15, 0.2, 0.25, 0.2, 0.1, 0.1]))
    give_up = int(rng.integers(5, 450)) if epsilon is None and rng.random() < 0.5 else 10**9
    give_up_push = int(rng.integers(3))  # 0, 1: constant push; 2: random
    reach = 2.8 if rng.random() < 0.2 else 1.8
    eps = eps if epsilon is None else epsilon
    state = {"target": float(rng.uniform(-reach, reach)), "t": 0}
    source = env.source.unwrapped

    def act(obs: np.ndarray) -> int:
        state["t"] += 1
        if state["t"] > give_up:
            return give_up_push if give_up_push < 2 else int(rng.integers(2))
        if rng.random() < 0.01:
            state["target"] = float(rng.uniform(-reach, reach))
        if rng.random() < eps:
            return int(rng.integers(2))
        x, x_dot, theta, theta_dot = (float(v) for v in source.state)
        # Lean the pole towards the target, then balance: a classic cascaded PD.
        desired_theta = np.clip(-0.05 * (x - state["target"]) - 0.1 * x_dot, -0.1, 0.1)
        u = 12.0 * (theta - desired_theta) + 2.0 * theta_dot
        return int(u > 0)

    return act


def _sb3(path: str) -> Callable[..., Policy]:
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

    def build(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
        eps = float(rng.choice([0.0, 0.1, 0.25])) if epsilon is None else epsilon
        space = env.action_space
        space.seed(int(rng.integers(2**31 - 1)))

        def act(obs: np.ndarray) -> Any:
            if rng.random() < eps:
                return space.sample()
            action, _ = model.predict(obs, deterministic=False)
            return action

        return act

    return build


BUILTIN: dict[str, Callable[..., Policy]] = {
    "random": _random,
    "cartpole-balance": _cartpole_balance,
}


def policy_factory(name: str) -> Callable[..., Policy]:
    """A built-in policy name, or the path of an SB3 ``.zip``."""
    if name in BUILTIN:
        return BUILTIN[name]
    if name.endswith(".zip") or Path(name).is_file():
        if not Path(name).is_file():
            raise ValueError(f"policy file {name} does not exist")
        return _sb3(name)
    raise ValueError(f"unknown policy {name!r}: expected one of {sorted(BUILTIN)} or a path to an SB3 .zip")
