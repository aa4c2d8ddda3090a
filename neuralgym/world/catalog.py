"""Finding worlds: the folders searched for specs, registered spec files, and lookup by
key, name, id or path.

Specs are found, in this order: the shipped ones (package data), the folders listed in
``NEURALGYM_WORLDS`` (``os.pathsep``-separated), the per-user worlds folder
(:func:`user_worlds_dir`), and spec files registered with :func:`register_spec_file`.
Every command also takes a spec file path in place of a world name. A spec outside
the package reads its weights file relative to its own folder.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from neuralgym.world.parse import load_spec
from neuralgym.world.spec import ENVS_DIR, SpecError, WorldSpec

#: ``os.pathsep``-separated folders of ``*.toml`` specs, searched after the shipped ones
WORLDS_PATH_ENV = "NEURALGYM_WORLDS"


def user_worlds_dir() -> Path:
    """The per-user worlds folder, searched after ``NEURALGYM_WORLDS``: ``%APPDATA%\\neuralgym\\worlds``
    on Windows, ``$XDG_DATA_HOME/neuralgym/worlds`` (default ``~/.local/share/neuralgym/worlds``) elsewhere."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "neuralgym" / "worlds"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "neuralgym" / "worlds"


def search_dirs() -> list[Path]:
    """Folders of specs, in lookup order: shipped, ``NEURALGYM_WORLDS``, the user folder."""
    extra = [Path(p).expanduser() for p in os.environ.get(WORLDS_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return [ENVS_DIR, *extra, user_worlds_dir()]


#: spec files registered by :func:`register_spec_file` (key -> path), looked up last
_REGISTERED: dict[str, Path] = {}


def is_spec_path(world: str | Path) -> bool:
    """Whether ``world`` names a spec file rather than a world: it ends in ``.toml`` or is a file."""
    return isinstance(world, Path) or str(world).lower().endswith(".toml") or Path(str(world)).is_file()


def _folder_specs(folder: Path, strict: bool, skipped: dict[str, SpecError]) -> dict[str, WorldSpec]:
    """The specs of one folder; unless ``strict``, a broken one is skipped (and noted in ``skipped``)."""
    out: dict[str, WorldSpec] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.toml")):
        try:
            out[p.stem.lower()] = load_spec(p)
        except SpecError as e:
            if strict:
                raise
            skipped.setdefault(p.stem.lower(), e)
    return out


def _merge(into: dict[str, WorldSpec], new: dict[str, WorldSpec]) -> None:
    """Add ``new`` specs whose key and name are not taken yet (earlier folders win)."""
    names = {s.name.lower() for s in into.values()}
    for key, spec in new.items():
        if key not in into and spec.name.lower() not in names:
            into[key] = spec
            names.add(spec.name.lower())


def all_specs(envs_dir: Path | None = None, skipped: dict[str, SpecError] | None = None) -> dict[str, WorldSpec]:
    """Every spec in ``envs_dir`` (strictly: a broken spec raises), or, without it, every
    spec found: shipped, ``NEURALGYM_WORLDS``, the user folder, then registered files.
    A broken spec outside the package is skipped (with a warning), so one bad file in a
    user folder does not break ``import neuralgym``; ``skipped`` collects them."""
    if envs_dir is not None:
        return _folder_specs(Path(envs_dir), True, {})
    skipped = {} if skipped is None else skipped
    specs: dict[str, WorldSpec] = {}
    dirs = search_dirs()
    _merge(specs, _folder_specs(dirs[0], True, skipped))
    for folder in dirs[1:]:
        _merge(specs, _folder_specs(folder, False, skipped))
    for key, path in list(_REGISTERED.items()):
        try:
            _merge(specs, {key: load_spec(path)})
        except SpecError as e:
            skipped.setdefault(key, e)
    for key, e in skipped.items():
        if key not in specs:
            warnings.warn(f"skipped world spec: {e}", RuntimeWarning, stacklevel=2)
    return specs


def register_spec_file(path: str | Path) -> WorldSpec:
    """Load the spec at ``path`` and add it to the worlds :func:`get_spec` finds by name."""
    spec = load_spec(Path(path).expanduser().resolve())
    if not spec.shipped:
        for other in all_specs(ENVS_DIR).values():
            if other.key == spec.key or other.name.lower() == spec.name.lower():
                raise SpecError(
                    f"{spec.path}: world {spec.name!r} ({spec.key}) has the key or name of the shipped "
                    f"world {other.name!r}: rename the file and its 'name'"
                )
    _REGISTERED[spec.key] = spec.path  # type: ignore[assignment]
    return spec


def get_spec(world: str | Path) -> WorldSpec:
    """Look a world up by spec file path, key (``cartpole``), name (``CartPole``) or id."""
    if is_spec_path(world):
        return load_spec(Path(world).expanduser().resolve())
    skipped: dict[str, SpecError] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        specs = all_specs(skipped=skipped)
    w = world.split("/")[-1].removesuffix("-v0").removesuffix("-real").lower()
    if w in specs:
        return specs[w]
    for spec in specs.values():
        if spec.name.lower() == w:
            return spec
    if w in skipped:
        raise skipped[w]
    raise ValueError(f"unknown world {world!r}; expected one of {sorted(specs)}, or the path of a spec file (.toml)")
