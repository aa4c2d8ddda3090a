"""neuralgym: learned world models as Gymnasium environments.

``import neuralgym`` registers, for every world spec in ``envs/``:

* ``neuralgym/<World>-v0``: the dream (``gym.make`` and ``gym.make_vec``);
* ``neuralgym/<World>-real-v0``: the real source env with the same preprocessing and spaces.

Specs are found in the package, in the folders of ``NEURALGYM_WORLDS`` and in the user
worlds folder (``neuralgym.world.catalog.user_worlds_dir()``); ``register_world(path)``
adds a spec file from anywhere.

The package is layered, bottom to top: :mod:`neuralgym.common` (shared helpers),
:mod:`neuralgym.world` (what a world is), :mod:`neuralgym.dream` (running one),
:mod:`neuralgym.training` (making one), :mod:`neuralgym.metrics` (measuring one) and
:mod:`neuralgym.tools` (the ``neuralgym`` command, play, bench); no module imports one
from a layer above it. The names below load on first use, so ``import neuralgym`` stays
light (no torch, no stable-baselines3).
"""

from __future__ import annotations

import importlib
from typing import Any

from neuralgym.world.registry import register_world, register_worlds

#: public names that load their module on first use: name -> module
_LAZY = {
    "make_sb3_vec_env": "neuralgym.dream.sb3",
    "WorldModelEnv": "neuralgym.dream.env",
    "DreamVectorEnv": "neuralgym.dream.vector",
    "DreamSB3VecEnv": "neuralgym.dream.sb3",
    "RealWorldEnv": "neuralgym.dream.real",
    "LatentObservation": "neuralgym.dream.latent",
    "DriftResetPolicy": "neuralgym.world.drift",
    "WorldSpec": "neuralgym.world.spec",
    "get_spec": "neuralgym.world.catalog",
}

__all__ = ["register_world", "register_worlds", *_LAZY]
__version__ = "0.1.0"

register_worlds()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuralgym' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
