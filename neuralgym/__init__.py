"""neuralgym: learned world models as Gymnasium environments.

``import neuralgym`` registers, for every world spec in ``envs/``:

* ``neuralgym/<World>-v0``: the dream (``gym.make`` and ``gym.make_vec``);
* ``neuralgym/<World>-real-v0``: the real source env with the same preprocessing and spaces.

Specs are found in the package, in the folders of ``NEURALGYM_WORLDS`` and in the user
worlds folder (``neuralgym.world.spec.user_worlds_dir()``); ``register_world(path)`` adds a
spec file from anywhere.
"""

from __future__ import annotations

from typing import Any

from neuralgym.world.registry import register_world, register_worlds

__all__ = ["make_sb3_vec_env", "register_world", "register_worlds"]
__version__ = "0.1.0"

register_worlds()


def __getattr__(name: str) -> Any:
    # stable-baselines3 (and torch) load on first use, not on `import neuralgym`
    if name == "make_sb3_vec_env":
        from neuralgym.dream.sb3 import make_sb3_vec_env

        return make_sb3_vec_env
    raise AttributeError(f"module 'neuralgym' has no attribute {name!r}")
