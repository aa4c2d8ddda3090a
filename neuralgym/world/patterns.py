"""Blind action patterns: fixed action sequences that look at nothing.

They run unchanged in a dream and in its real env, so ``neuralgym exploit`` compares what
each pays for them, and ``neuralgym collect --policy blind`` records what reality does
under them (an agent that exploits a dream finds such patterns first).

Discrete worlds: ``cycle`` (0, 1, ..., n-1, 0, ...), ``pairs`` (each action twice in turn),
``random`` (uniform). Continuous worlds: ``random`` (uniform in the box), ``extremes`` (low
and high bounds in turn), ``noop`` (the spec's no-op) and ``high_<name>`` (the no-op with
one dimension held at its high bound, e.g. CarRacing's full gas straight ahead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.world.spaces import action_space_for
from neuralgym.world.spec import WorldSpec

Pattern = Callable[[int, np.random.Generator], Any]  # (step, rng) -> one action


def patterns_for(spec: WorldSpec) -> dict[str, Pattern]:
    """The open-loop patterns that make sense for the world's action space."""
    space = action_space_for(spec)
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return {
            "cycle": lambda t, rng: t % n,
            "pairs": lambda t, rng: (t // 2) % n,
            "random": lambda t, rng: int(rng.integers(n)),
        }
    if isinstance(space, gym.spaces.Box):
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        noop = np.asarray(spec.actions.noop, dtype=np.float32).reshape(space.shape)
        out: dict[str, Pattern] = {
            "random": lambda t, rng: rng.uniform(low, high).astype(np.float32),
            "extremes": lambda t, rng: (low if t % 2 == 0 else high).copy(),
            "noop": lambda t, rng: noop.copy(),
        }
        names = list(spec.actions.names or []) if space.shape == (len(spec.actions.names or []),) else []
        for i in range(int(np.prod(space.shape))):  # one dimension held at its high bound
            held = noop.copy().reshape(-1)
            held[i] = high.reshape(-1)[i]
            held = held.reshape(space.shape)
            out[f"high_{names[i] if names else i}"] = lambda t, rng, a=held: a.copy()
        return out
    raise TypeError(f"no open-loop patterns for action space {space}")
