"""Reading a world spec: a TOML file (or table) checked field by field into a :class:`WorldSpec`.

Every mistake is a :class:`~neuralgym.world.spec.SpecError` naming the file, the table
and the field, and saying what was expected.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from neuralgym.world.drift import MODES, DriftSpec
from neuralgym.world.spec import (
    MAX_FRAME_SIDE,
    MAX_FRAME_SKIP,
    MAX_RESET_NOOPS,
    ActionSpec,
    PlaySpec,
    PreprocessSpec,
    SpecError,
    WorldSpec,
    is_action_mirror,
)


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
        raise SpecError(
            f"{w}: 'size' [height, width] must be at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}, got {list(size)}"
        )
    frame_skip = _get(pp, "frame_skip", int, w, 1)
    if not 1 <= frame_skip <= MAX_FRAME_SKIP:
        raise SpecError(f"{w}: 'frame_skip' must be in [1, {MAX_FRAME_SKIP}], got {frame_skip}")
    frame_source = _get(pp, "frame_source", str, w, "render")
    if frame_source not in ("render", "observation"):
        raise SpecError(f"{w}: 'frame_source' must be 'render' or 'observation', got {frame_source!r}")
    noops = pp.get("reset_noops", 0)
    reset_noops = (
        (noops, noops)
        if isinstance(noops, int) and not isinstance(noops, bool)
        else _int_tuple(noops, 2, w, "reset_noops")
    )
    if reset_noops[0] < 0 or reset_noops[1] < reset_noops[0] or reset_noops[1] > MAX_RESET_NOOPS:
        raise SpecError(
            f"{w}: 'reset_noops' must be an integer in [0, {MAX_RESET_NOOPS}] or [lo, hi] with "
            f"0 <= lo <= hi <= {MAX_RESET_NOOPS}, got {noops!r}"
        )
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
                raise SpecError(
                    f"{w}: 'mirror' must list each action's mirror image, a permutation of 0..{len(values) - 1} "
                    f"that pairs actions both ways (e.g. [1, 0]), got {mirror!r}"
                )
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
    if policy not in MODES:
        raise SpecError(f"{w}: 'policy' must be 'none', 'truncate' or 'reanchor', got {policy!r}")
    try:
        drift_spec = DriftSpec(
            mode=policy,
            threshold=_get(drift, "threshold", float, w, float("inf")),
            threshold_set="threshold" in drift,
            max_horizon=_get(drift, "max_horizon", int, w, 0),
            hysteresis=_get(drift, "hysteresis", int, w, 2),
            fidelity_psnr=_get(drift, "fidelity_psnr", float, w, 30.0),
        )
    except ValueError as e:  # a threshold < 0, hysteresis < 1...
        raise SpecError(f"{w}: {e}") from e

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

    from neuralgym.world.keymap import parse_keymap  # pygame is optional: imported only for a keymap

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
