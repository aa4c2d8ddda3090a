"""Registering every world's dream and real ids with Gymnasium."""

from __future__ import annotations

import gymnasium as gym

from neuralgym.spec import all_specs


def register_worlds() -> list[str]:
    """Register ``neuralgym/<World>-v0`` (entry point and vector entry point) and
    ``neuralgym/<World>-real-v0`` for every spec; returns the ids. Idempotent."""
    ids = []
    for key, spec in all_specs().items():
        if spec.dream_id not in gym.registry:
            gym.register(
                id=spec.dream_id,
                entry_point="neuralgym.env:WorldModelEnv",
                vector_entry_point="neuralgym.vector:DreamVectorEnv",
                kwargs={"world": key},
                disable_env_checker=True,  # we validate every input ourselves (and the passive
            )                              # checker of gymnasium 1.4 breaks after a rejected first reset)
        if spec.real_id not in gym.registry:
            gym.register(id=spec.real_id, entry_point="neuralgym.real:RealWorldEnv", kwargs={"world": key},
                         disable_env_checker=True)
        ids += [spec.dream_id, spec.real_id]
    return ids
