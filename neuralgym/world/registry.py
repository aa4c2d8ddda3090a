"""Registering every world's dream and real ids with Gymnasium.

The ids are registered with the spec's episode limit as Gymnasium's own
``max_episode_steps``, and the envs leave the limit to that ``TimeLimit`` wrapper: so
``gym.make(id, max_episode_steps=N)`` sets the episode limit (N), as it does for any
Gymnasium env, instead of adding a second limit outside the dream's own.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

from neuralgym.world.catalog import all_specs, register_spec_file
from neuralgym.world.spec import WorldSpec


def _world_arg(spec: WorldSpec) -> str:
    """What the entry point gets as ``world``: a shipped world's key, else its spec file (so
    that a fresh process, a vector env or a subprocess finds it without a search path)."""
    return spec.key if spec.shipped or spec.path is None else str(spec.path)


def _register(spec: WorldSpec, replace: bool = False) -> list[str]:
    kwargs = {"world": _world_arg(spec), "limit_by_wrapper": True}
    # entry points are strings: the dream layer is imported only when an env is made
    for env_id, entry, vector in (
        (spec.dream_id, "neuralgym.dream.env:WorldModelEnv", "neuralgym.dream.vector:DreamVectorEnv"),
        (spec.real_id, "neuralgym.dream.real:RealWorldEnv", None),
    ):
        if env_id in gym.registry:
            if not replace or gym.registry[env_id].kwargs == kwargs:
                continue
            del gym.registry[env_id]  # the same world from another (or an edited) spec file
        gym.register(
            id=env_id,
            entry_point=entry,
            vector_entry_point=vector,
            kwargs=kwargs,
            max_episode_steps=spec.max_episode_steps,
            disable_env_checker=True,
        )  # we validate every input ourselves (and the passive
    return [spec.dream_id, spec.real_id]  # checker of gymnasium 1.4 breaks after a rejected first reset)


def register_worlds() -> list[str]:
    """Register ``neuralgym/<World>-v0`` (entry point and vector entry point) and
    ``neuralgym/<World>-real-v0`` for every spec found (shipped, ``NEURALGYM_WORLDS``, the
    user worlds folder); returns the ids. Idempotent."""
    ids: list[str] = []
    for spec in all_specs().values():
        ids += _register(spec)
    return ids


def register_world(path: str | Path) -> list[str]:
    """Register the world of the spec file at ``path`` (anywhere on disk); returns its ids,
    e.g. ``["neuralgym/Acrobot-v0", "neuralgym/Acrobot-real-v0"]``. Its weights file is
    read relative to the spec's folder. Registering a spec again (edited, or moved)
    replaces the earlier registration."""
    return _register(register_spec_file(path), replace=True)
