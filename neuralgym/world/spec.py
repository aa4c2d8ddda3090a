"""World specs: the declarative ``envs/<world>.toml`` files, loaded and validated.

A spec says everything that is world-specific: which real env to model, how its
frames are preprocessed, the action set, the context length K, play keys, drift
defaults and the weights file. Nothing else in the pipeline special-cases a world.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # neuralgym/ (this file is neuralgym/world/spec.py)


def _data_dir(name: str) -> Path:
    """``envs/`` and ``weights/`` sit at the repo root in a checkout and inside the
    package (``neuralgym/_data/``) in an installed wheel."""
    if (PACKAGE_DIR / "_data").is_dir():
        return PACKAGE_DIR / "_data" / name
    return PACKAGE_DIR.parent / name


ENVS_DIR = _data_dir("envs")
WEIGHTS_DIR = _data_dir("weights")
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


class SpecError(ValueError):
    """A world spec is missing a field or has a value of the wrong kind."""


#: the largest observation side: a frame of 1024x1024x3 is already 3 MiB a step per lane
MAX_FRAME_SIDE = 1024
#: frame skip and reset no-ops beyond these would make one step or reset run for minutes
MAX_FRAME_SKIP = 1000
MAX_RESET_NOOPS = 100_000


@dataclass(frozen=True)
class PreprocessSpec:
    """How a source frame becomes an observation: crop, resize, colour, frame skip."""

    crop: tuple[int, int, int, int] | None = None  # top, bottom, left, right (source pixels)
    size: tuple[int, int] = (64, 64)  # height, width
    grayscale: bool = False
    frame_skip: int = 1
    frame_source: str = "render"  # "render": env.render(); "observation": the obs is the frame
    # source steps with the no-op action after each reset, drawn from [lo, hi] (Atari's
    # "no-op starts"; e.g. Pong's wait for the serve)
    reset_noops: tuple[int, int] = (0, 0)

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


@dataclass(frozen=True)
class ActionSpec:
    """The world's action space: ``discrete`` (an index into ``values``) or ``box``."""

    kind: str  # "discrete" | "box"
    values: tuple[Any, ...] = ()  # discrete: source-env action for each index
    names: tuple[str, ...] = ()
    low: tuple[float, ...] = ()  # box
    high: tuple[float, ...] = ()
    noop: Any = 0  # what play sends when no key is held
    # discrete: mirror[i] is action i's mirror image when the frames are flipped left-right
    # (the world is then left-right symmetric; neuralgym.dream.mirror). None: not symmetric.
    mirror: tuple[int, ...] | None = None

    @property
    def n(self) -> int:
        """Discrete: number of actions. Box: dimension."""
        return len(self.values) if self.kind == "discrete" else len(self.low)

    @property
    def model_dim(self) -> int:
        """Width of the action vector the model sees (one-hot or the box vector)."""
        return self.n


@dataclass(frozen=True)
class DriftSpec:
    """Defaults of the drift-reset policy (see ``neuralgym.world.drift``)."""

    policy: str = "truncate"  # "none" | "truncate" | "reanchor"
    threshold: float = float("inf")
    # whether the spec sets ``threshold``; if not, the dream uses the threshold that
    # training calibrated and stored in the weights (``info["drift"]["threshold"]``)
    threshold_set: bool = False
    max_horizon: int = 0  # 0: no horizon cap
    hysteresis: int = 2  # consecutive steps above threshold before acting
    fidelity_psnr: float = 30.0  # a dream frame below this PSNR against reality counts as "off"


@dataclass(frozen=True)
class PlaySpec:
    render_fps: int = 30
    keymap: dict[str, Any] = field(default_factory=dict)  # key name (or "a+b" combo) -> action


@dataclass(frozen=True)
class WorldSpec:
    """One world, as declared in ``envs/<key>.toml``."""

    key: str  # file stem, lower case: "cartpole"
    name: str  # CamelCase id part: "CartPole"
    source_id: str
    source_kwargs: dict[str, Any]
    preprocess: PreprocessSpec
    actions: ActionSpec
    context_length: int
    max_episode_steps: int
    play: PlaySpec
    drift: DriftSpec
    weights_file: str
    collect_policy: str = "random"
    source_module: str | None = None  # imported before gym.make(source_id): the module that registers it
    path: Path | None = None

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        h, w = self.preprocess.size
        return (h, w, self.preprocess.channels)

    @property
    def dream_id(self) -> str:
        return f"neuralgym/{self.name}-v0"

    @property
    def real_id(self) -> str:
        return f"neuralgym/{self.name}-real-v0"

    @property
    def shipped(self) -> bool:
        """Whether this is one of the package's own worlds (its spec lies in ``ENVS_DIR``)."""
        return self.path is None or self.path.resolve().parent == ENVS_DIR.resolve()

    @property
    def weights_path(self) -> Path:
        """Shipped worlds: ``WEIGHTS_DIR/<file>``. Other specs: ``<file>`` relative to the
        spec's own folder (or absolute)."""
        file = Path(self.weights_file).expanduser()
        if file.is_absolute():
            return file
        if self.shipped:
            return WEIGHTS_DIR / file
        return self.path.parent / file  # type: ignore[union-attr]


def is_action_mirror(mirror: Any, n: int) -> bool:
    """Whether ``mirror`` maps each of ``n`` discrete actions to its mirror image: a list of
    ints, a permutation of 0..n-1 that pairs actions both ways (mirror[mirror[i]] == i)."""
    return (isinstance(mirror, (list, tuple)) and all(isinstance(m, int) and not isinstance(m, bool) for m in mirror)
            and sorted(mirror) == list(range(n)) and all(mirror[m] == i for i, m in enumerate(mirror)))


def _get(table: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing required field '{key}'")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SpecError(f"{where}: field '{key}' must be {name}, got {value!r}")
    return value


def _int_tuple(value: Any, n: int, where: str, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, int) for v in value):
        raise SpecError(f"{where}: field '{key}' must be a list of {n} integers, got {value!r}")
    return tuple(value)


def parse_spec(data: dict[str, Any], key: str, path: Path | None = None) -> WorldSpec:
    """Validate a parsed TOML table and build a :class:`WorldSpec`."""
    where = str(path or key)
    name = _get(data, "name", str, where)
    if not name.isidentifier() or not name[0].isupper():
        raise SpecError(f"{where}: 'name' must be a CamelCase identifier, got {name!r}")

    src = _get(data, "source", dict, where)
    source_id = _get(src, "id", str, f"{where} [source]")
    source_kwargs = _get(src, "kwargs", dict, f"{where} [source]", {})
    source_module = _get(src, "module", str, f"{where} [source]", None)

    pp = _get(data, "preprocess", dict, where, {})
    w = f"{where} [preprocess]"
    crop = pp.get("crop")
    crop_t = _int_tuple(crop, 4, w, "crop") if crop is not None else None
    if crop_t is not None and (crop_t[0] >= crop_t[1] or crop_t[2] >= crop_t[3] or min(crop_t) < 0):
        raise SpecError(f"{w}: 'crop' must be [top, bottom, left, right] with top<bottom, left<right")
    size = _int_tuple(pp.get("size", [64, 64]), 2, w, "size")
    if min(size) < 36:
        raise SpecError(f"{w}: 'size' must be at least 36x36 (SB3's CnnPolicy minimum), got {size}")
    if max(size) > MAX_FRAME_SIDE:
        raise SpecError(f"{w}: 'size' [height, width] must be at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}, "
                        f"got {list(size)}")
    frame_skip = _get(pp, "frame_skip", int, w, 1)
    if not 1 <= frame_skip <= MAX_FRAME_SKIP:
        raise SpecError(f"{w}: 'frame_skip' must be in [1, {MAX_FRAME_SKIP}], got {frame_skip}")
    frame_source = _get(pp, "frame_source", str, w, "render")
    if frame_source not in ("render", "observation"):
        raise SpecError(f"{w}: 'frame_source' must be 'render' or 'observation', got {frame_source!r}")
    noops = pp.get("reset_noops", 0)
    reset_noops = (noops, noops) if isinstance(noops, int) and not isinstance(noops, bool) else _int_tuple(noops, 2, w, "reset_noops")
    if reset_noops[0] < 0 or reset_noops[1] < reset_noops[0] or reset_noops[1] > MAX_RESET_NOOPS:
        raise SpecError(f"{w}: 'reset_noops' must be an integer in [0, {MAX_RESET_NOOPS}] or [lo, hi] with "
                        f"0 <= lo <= hi <= {MAX_RESET_NOOPS}, got {noops!r}")
    preprocess = PreprocessSpec(
        reset_noops=reset_noops,
        crop=crop_t,
        size=(size[0], size[1]),
        grayscale=_get(pp, "grayscale", bool, w, False),
        frame_skip=frame_skip,
        frame_source=frame_source,
    )

    act = _get(data, "actions", dict, where)
    w = f"{where} [actions]"
    kind = _get(act, "kind", str, w)
    if kind == "discrete":
        values = _get(act, "values", list, w)
        if not values:
            raise SpecError(f"{w}: 'values' must list at least one source action")
        names = tuple(_get(act, "names", list, w, [str(v) for v in values]))
        if len(names) != len(values):
            raise SpecError(f"{w}: 'names' must have one entry per value ({len(values)})")
        noop = _get(act, "noop", int, w, 0)
        if not 0 <= noop < len(values):
            raise SpecError(f"{w}: 'noop' must be an index in [0, {len(values)}), got {noop}")
        mirror = act.get("mirror")
        if mirror is not None:
            if not isinstance(mirror, list) or not is_action_mirror(mirror, len(values)):
                raise SpecError(f"{w}: 'mirror' must list each action's mirror image, a permutation of 0..{len(values) - 1} "
                                f"that pairs actions both ways (e.g. [1, 0]), got {mirror!r}")
            mirror = tuple(mirror)
        actions = ActionSpec(kind="discrete", values=tuple(values), names=names, noop=noop, mirror=mirror)
    elif kind == "box":
        if "mirror" in act:
            raise SpecError(f"{w}: 'mirror' is supported for discrete actions only")
        low = tuple(float(v) for v in _get(act, "low", list, w))
        high = tuple(float(v) for v in _get(act, "high", list, w))
        if len(low) != len(high) or not low or any(lo >= hi for lo, hi in zip(low, high)):
            raise SpecError(f"{w}: 'low' and 'high' must be equal-length lists with low < high")
        noop = tuple(float(v) for v in _get(act, "noop", list, w, [0.0] * len(low)))
        if len(noop) != len(low):
            raise SpecError(f"{w}: 'noop' must have {len(low)} entries")
        names = tuple(_get(act, "names", list, w, [f"a{i}" for i in range(len(low))]))
        actions = ActionSpec(kind="box", low=low, high=high, noop=noop, names=names)
    else:
        raise SpecError(f"{w}: 'kind' must be 'discrete' or 'box', got {kind!r}")

    model = _get(data, "model", dict, where, {})
    k = _get(model, "context_length", int, f"{where} [model]", 4)
    if not 2 <= k <= 32:
        raise SpecError(f"{where} [model]: 'context_length' must be in [2, 32], got {k}")

    episode = _get(data, "episode", dict, where, {})
    max_steps = _get(episode, "max_steps", int, f"{where} [episode]", 1000)
    if max_steps < 1:
        raise SpecError(f"{where} [episode]: 'max_steps' must be >= 1")

    play = _get(data, "play", dict, where, {})
    fps = _get(play, "render_fps", int, f"{where} [play]", 30)
    if fps < 1:
        raise SpecError(f"{where} [play]: 'render_fps' must be >= 1")
    keymap = _get(play, "keymap", dict, f"{where} [play]", {})

    drift = _get(data, "drift", dict, where, {})
    w = f"{where} [drift]"
    policy = _get(drift, "policy", str, w, "truncate")
    if policy not in ("none", "truncate", "reanchor"):
        raise SpecError(f"{w}: 'policy' must be 'none', 'truncate' or 'reanchor', got {policy!r}")
    drift_spec = DriftSpec(
        policy=policy,
        threshold=_get(drift, "threshold", float, w, float("inf")),
        threshold_set="threshold" in drift,
        max_horizon=_get(drift, "max_horizon", int, w, 0),
        hysteresis=_get(drift, "hysteresis", int, w, 2),
        fidelity_psnr=_get(drift, "fidelity_psnr", float, w, 30.0),
    )

    weights = _get(data, "weights", dict, where, {})
    weights_file = _get(weights, "file", str, f"{where} [weights]", f"{key}.safetensors")
    collect = _get(data, "collect", dict, where, {})
    collect_policy = _get(collect, "policy", str, f"{where} [collect]", "random")

    spec = WorldSpec(
        key=key,
        name=name,
        source_id=source_id,
        source_kwargs=source_kwargs,
        source_module=source_module,
        preprocess=preprocess,
        actions=actions,
        context_length=k,
        max_episode_steps=max_steps,
        play=PlaySpec(render_fps=fps, keymap=keymap),
        drift=drift_spec,
        weights_file=weights_file,
        collect_policy=collect_policy,
        path=path,
    )
    _check_keymap(spec, f"{where} [play]")
    return spec


def _check_keymap(spec: WorldSpec, where: str) -> None:
    """Every keymap entry names known keys and a valid action (checked here, not only when play starts)."""
    if not spec.play.keymap:
        return
    from gymnasium.error import DependencyNotInstalled

    from neuralgym.world.keymap import parse_keymap

    try:
        parse_keymap(spec)
    except DependencyNotInstalled:  # no pygame: key names are checked when play starts (and says so)
        return
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from e


def load_spec(path: str | Path) -> WorldSpec:
    """Load one spec file; raises :class:`SpecError` naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no world spec at {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from e
    return parse_spec(data, path.stem.lower(), path)


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
                raise SpecError(f"{spec.path}: world {spec.name!r} ({spec.key}) has the key or name of the shipped "
                                f"world {other.name!r}: rename the file and its 'name'")
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
