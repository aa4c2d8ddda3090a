"""Seeds: what ``reset(seed=...)`` accepts, and how a torch generator follows a numpy one.

A dream's randomness comes from one numpy generator (the face's ``np_random``) and one
torch generator on the model's device; the torch generator is seeded from the numpy one
(:func:`torch_seed`), so one ``reset(seed=...)`` pins both down.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_seed(seed: Any) -> int | None:
    """A ``reset(seed=...)`` value: None or an int >= 0 (numpy ints too; bools are not seeds)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int >= 0 or None, got {seed!r} ({type(seed).__name__})")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0 or None, got {seed}")
    return int(seed)


def fold_seeds(seeds: Sequence[Any], n: int) -> int | None:
    """Gymnasium's per-env list of ``n`` seeds (None entries allowed) folded into one seed
    (None if every entry is None): a batched dream has one generator for all its lanes."""
    if len(seeds) != n:
        raise ValueError(f"a list of seeds must hold num_envs={n} seeds, got {len(seeds)}")
    checked = [check_seed(s) for s in seeds]
    if all(s is None for s in checked):
        return None
    return int(np.random.SeedSequence([0 if s is None else s for s in checked]).generate_state(1)[0])


def torch_seed(np_random: np.random.Generator) -> int:
    """A seed for a torch generator drawn from a (seeded) numpy generator: any int
    seed a user passes (even >= 2**64) maps to one torch can take, deterministically."""
    return int(np_random.integers(2**63 - 1))
