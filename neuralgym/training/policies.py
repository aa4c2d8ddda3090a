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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neuralgym.dream.real import RealWorldEnv
from neuralgym.world.keymap import noop_action
from neuralgym.world.patterns import patterns_for

Policy = Callable[[np.ndarray], Any]


def _random(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    space = env.action_space
    space.seed(int(rng.integers(2**31 - 1)))
    return lambda obs: space.sample()


#: mean hold lengths of :func:`_random_hold`, one drawn per episode (1: plain random play)
HOLD_MEANS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _random_hold(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """Uniform random actions, each held for a random number of steps (geometric, with a
    mean drawn per episode from :data:`HOLD_MEANS`). Actions drawn anew every step cancel
    out, so the system stays near where it started; held ones swing it far, and a world
    learns its goal only from episodes that reach it (Acrobot-v1, measured over 40
    episodes: 0 reach the goal under ``random``, 15-17 with holds of 4-8 steps)."""
    mean_hold = float(rng.choice(HOLD_MEANS))
    space = env.action_space
    space.seed(int(rng.integers(2**31 - 1)))
    state: dict[str, Any] = {"action": None, "left": 0}

    def act(obs: np.ndarray) -> Any:
        if state["left"] <= 0:
            state["action"], state["left"] = space.sample(), int(rng.geometric(1.0 / mean_hold))
        state["left"] -= 1
        return state["action"]

    return act


def _noop(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """The world's no-op (``[actions] noop``) every step: what a blind agent that does
    nothing sees, e.g. a CarRacing car that never leaves the grid. Mixed into other data,
    it teaches a world that doing nothing pays what it pays in reality."""
    spec = env.world_spec
    return lambda obs: noop_action(spec)


def _blind(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """One of the world's blind patterns (:func:`~neuralgym.world.patterns.patterns_for`:
    stand still, full gas straight ahead, ...) per episode, drawn uniformly. An agent
    trained in a dream finds such patterns first; with them in its data a world learns what
    reality pays for them (``neuralgym exploit`` compares exactly these). ``epsilon``, where
    given, is the share of uniformly random actions mixed in."""
    patterns = patterns_for(env.world_spec)
    name = sorted(patterns)[int(rng.integers(len(patterns)))]
    pattern, space, step = patterns[name], env.action_space, [0]
    space.seed(int(rng.integers(2**31 - 1)))

    def act(obs: np.ndarray) -> Any:
        t, step[0] = step[0], step[0] + 1
        if epsilon and rng.random() < epsilon:
            return space.sample()
        return pattern(t, rng)

    return act


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


# Pong's palette in the raw 210x160 RGB frame, and the rows of its playing field
PONG_BALL, PONG_PLAYER, PONG_FIELD = (236, 236, 236), (92, 186, 92), (34, 194)


def _pong_tracker(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """Moves the right (green) paddle towards where the ball will be next step, with a
    per-episode exploration rate: with none it returns nearly every ball (long rallies),
    with 25% random actions it wins and loses points alike (measured over 2,000 steps:
    5 won, 7 lost), with all-random play it loses every point. Reads the raw RGB frame
    (``env.source_obs``): data collection and evaluation only."""
    eps = float(rng.choice([0.0, 0.1, 0.25, 0.5, 1.0], p=[0.15, 0.3, 0.3, 0.15, 0.1])) if epsilon is None else epsilon
    state: dict[str, Any] = {"ball": None}

    def find(frame: np.ndarray, colour: tuple[int, int, int]) -> float | None:
        rows = np.nonzero(np.all(frame[PONG_FIELD[0] : PONG_FIELD[1]] == colour, axis=-1))[0]
        return float(rows.mean()) if len(rows) else None

    def act(obs: np.ndarray) -> int:
        frame = env.source_obs
        ball, paddle = find(frame, PONG_BALL), find(frame, PONG_PLAYER)
        previous, state["ball"] = state["ball"], ball
        if rng.random() < eps:
            return int(rng.integers(env.action_space.n))
        if ball is None or paddle is None:
            return 0
        target = ball + (ball - previous if previous is not None else 0.0)  # one step ahead
        # the paddle moves ~20 source pixels a step: a dead band of 8 stops it oscillating
        return 2 if target < paddle - 8 else 3 if target > paddle + 8 else 0

    return act


def _carracing_pursuit(env: RealWorldEnv, rng: np.random.Generator, epsilon: float | None = None) -> Policy:
    """Pure pursuit along CarRacing's track (steer towards a track point a few tiles ahead
    of the nearest one, throttle to a per-episode target speed) with per-episode noise,
    random actions and, in a third of the episodes, a lapse from a random step on (from the
    very first step in half of them, as a blind agent would): random driving, standing still
    (braking, or no input at all), or full gas straight ahead. The data holds clean laps,
    wobbly driving, spins, grass and a car that never moves, so the reward model sees what
    pays nothing as well as what pays.
    Measured without noise: 248 and 287 reward in the first 400 source steps of two
    tracks. (It reads the Box2D car and track: data collection and evaluation only.)"""
    eps = float(rng.choice([0.0, 0.1, 0.3])) if epsilon is None else epsilon
    noise = float(rng.choice([0.0, 0.15, 0.4]))
    speed_target = float(rng.uniform(20.0, 70.0))
    lookahead = int(rng.integers(4, 11))
    lapse = int(rng.integers(20, 400)) if epsilon is None and rng.random() < 1 / 3 else 10**9
    if lapse < 10**9 and rng.random() < 0.5:
        lapse = 0  # from the start: the car never drives off the grid (standing still) or never steers
    lapse_kind = int(rng.integers(3))  # 0 random driving, 1 standing still, 2 full gas straight ahead
    # standing still: braking, or no input at all (the no-op, which a car at rest stays at
    # rest under, and which a moving car rolls on under)
    # (drawn only for such a lapse: evaluation's episodes, which never lapse, keep their draws)
    brake = lapse < 10**9 and lapse_kind == 1 and rng.random() < 0.5
    still = np.array([0.0, 0.0, 0.8] if brake else [0.0, 0.0, 0.0], np.float32)
    space = env.action_space
    space.seed(int(rng.integers(2**31 - 1)))
    state = {"t": 0}
    source = env.source.unwrapped

    def act(obs: np.ndarray) -> np.ndarray:
        state["t"] += 1
        if state["t"] > lapse:
            if lapse_kind == 1:
                return still.copy()
            if lapse_kind == 2:
                return np.array([0.0, 1.0, 0.0], np.float32)
            return space.sample()
        if rng.random() < eps:
            return space.sample()
        track = np.array([t[2:4] for t in source.track])
        hull = source.car.hull
        pos, forward = np.array(hull.position), np.array(hull.GetWorldVector((0, 1)))
        nearest = int(np.argmin(((track - pos) ** 2).sum(axis=1)))
        to_target = track[(nearest + lookahead) % len(track)] - pos
        error = np.arctan2(forward[0] * to_target[1] - forward[1] * to_target[0], forward @ to_target)
        steer = np.clip(-2.0 * error + noise * rng.standard_normal(), -1.0, 1.0)
        gas = 0.3 if np.linalg.norm(hull.linearVelocity) < speed_target else 0.0
        return np.array([steer, gas, 0.0], np.float32)

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
    "random-hold": _random_hold,
    "noop": _noop,
    "blind": _blind,
    "cartpole-balance": _cartpole_balance,
    "pong-tracker": _pong_tracker,
    "carracing-pursuit": _carracing_pursuit,
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
