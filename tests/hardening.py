"""Shared by the ``test_hardening_*`` files: what counts as a clear rejection, bad inputs of
every kind, and broken model outputs."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuralgym.world.catalog import all_specs
from neuralgym.world.spaces import action_space_for
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import load_world, save_world

from worlds import WORLDS

HYPO = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


REJECT = (ValueError, TypeError)


def rejected(
    fn: Callable[..., Any], *args: Any, types: tuple[type[BaseException], ...] = REJECT, **kwargs: Any
) -> BaseException:
    """Call ``fn``; it must raise one of ``types`` with a message that says something."""
    with pytest.raises(types) as info:
        fn(*args, **kwargs)
    assert len(str(info.value).strip()) >= 10, f"error without a useful message: {info.value!r}"
    return info.value


@functools.cache
def shared_dream(key: str, role: str) -> gym.Env:
    """One cached env per (world, role) for the hypothesis tests, which reset it as needed."""
    return gym.make(all_specs()[key].dream_id)


def noop_batch(spec: WorldSpec, n: int) -> np.ndarray:
    """A valid batch of ``n`` no-op actions of ``spec``'s world, discrete or box."""
    if spec.actions.kind == "discrete":
        return np.full(n, int(spec.actions.noop), np.int64)
    return np.tile(np.asarray(spec.actions.noop, np.float32), (n, 1))


def valid_actions(space: gym.spaces.Space, n: int, seed: int) -> list[Any]:
    space = (
        gym.spaces.Discrete(space.n)
        if isinstance(space, gym.spaces.Discrete)
        else gym.spaces.Box(space.low, space.high, dtype=space.dtype)
    )
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def twin_step(a: gym.Env, b: gym.Env, action: Any, seed: int = 0) -> None:
    """Step two envs that must be in the same state; compare; reset both alike when done."""
    ra, rb = a.step(action), b.step(action)
    np.testing.assert_array_equal(ra[0], rb[0])
    assert ra[1:4] == rb[1:4]
    if ra[2] or ra[3]:
        np.testing.assert_array_equal(a.reset(seed=seed)[0], b.reset(seed=seed)[0])


def step_on(env: gym.Env, action: Any) -> np.ndarray:
    """One step; reset if the episode ended (so the next step is legal whatever the model does)."""
    obs, _, terminated, truncated, _ = env.step(action)
    if terminated or truncated:
        env.reset()
    return obs


def bad_actions(space: gym.spaces.Space) -> list[tuple[str, Any]]:
    """Actions a ``space`` env must refuse."""
    common = [
        ("None", None),
        ("str", "left"),
        ("bytes", b"\x00"),
        ("dict", {}),
        ("object", object()),
        ("complex", 1 + 0j),
    ]
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return common + [
            ("float 1.5", 1.5),
            ("list [0, 1]", [0, 1]),
            ("array [[0]]", np.array([[0]])),
            ("array [0, 1]", np.array([0, 1])),
            ("2**63", 2**63),
            ("-1", -1),
            ("n", n),
            ("np.int64 n", np.int64(n)),
            ("nan", float("nan")),
            ("inf", float("inf")),
            ("-inf", -float("inf")),
            ("np.nan", np.float32("nan")),
            ("True", True),
            ("False", False),
            ("np.bool_", np.bool_(True)),
            ("array(True)", np.array(True)),
            ("array 0.5", np.array(0.5)),
            ("array '1'", np.array("1")),
            ("empty array", np.array([], np.int64)),
            ("str digit", "1"),
        ]
    shape = space.shape
    return common + [
        ("wrong shape", np.zeros((*shape, 2), np.float32)),
        ("scalar", 0.0),
        ("nan", np.full(shape, np.nan, np.float32)),
        ("inf", np.full(shape, np.inf, np.float32)),
        ("above high", np.asarray(space.high, np.float32) + 1),
        ("below low", np.asarray(space.low, np.float32) - 1),
        ("bools", np.ones(shape, bool)),
        ("strings", np.full(shape, "1")),
    ]


def bad_action_cases() -> list:
    out = []
    for p in WORLDS:
        spec = p.values[0]
        for name, action in bad_actions(action_space_for(spec)):
            out.append(pytest.param(spec, action, id=f"{spec.key}-{name}", marks=p.marks))
    return out


small = st.integers(-1, 3)


any_action = st.one_of(
    small,
    st.builds(np.int64, small),
    st.builds(np.array, small),
    st.builds(lambda v: np.array([v]), small),
    st.builds(lambda v: np.array([[v]]), small),
    st.sampled_from([0.0, 1.0, 0.5, np.float32(1.0), np.float16(2.0)]),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.binary(max_size=2),
    st.complex_numbers(max_magnitude=3),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-3, 3)), max_size=3),
    hnp.arrays(
        st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
    ),
)


def discrete_action_is_valid(action: Any, n: int) -> bool:
    """The reference rule (see test_discrete_action_forms_accepted)."""
    if isinstance(action, (bool, np.bool_, str, bytes, list, complex)) or action is None:
        return False
    arr = np.asarray(action)
    if arr.size != 1 or arr.ndim > 1 or arr.dtype.kind not in "iuf":
        return False
    v = arr.reshape(()).item()
    return math.isfinite(v) and float(v).is_integer() and 0 <= v < n


BAD_BATCHES = {
    "None": None,
    "str": "01",
    "scalar": 0,
    "short": [0, 0],
    "long": [0, 0, 0, 0],
    "2 columns": np.zeros((3, 2), np.int64),
    "3-D": np.zeros((3, 1, 1), np.int64),
    "non-integral floats": [0.5, 0, 1],
    "nan": [np.nan, 0, 1],
    "inf": [np.inf, 0, 1],
    "bools": np.array([True, False, True]),
    "objects": np.array([0, None, 1], dtype=object),
    "strings": np.array(["0", "1", "0"]),
    "too big": [0, "n", 1],
    "negative": [0, -1, 1],
    "huge uint64": np.array([0, 2**63, 1], np.uint64),
    "ragged": [[0], [0, 1], 0],
    "dict": {0: 0},
    "torch wrong shape": torch.zeros(2, dtype=torch.int64),
}


def discrete_batch_is_valid(arr: np.ndarray, num_envs: int, n: int) -> bool:
    if arr.shape not in ((num_envs,), (num_envs, 1)) or arr.dtype.kind not in "iuf":
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(arr >= 0) and np.all(arr < n))


@functools.cache
def _shared_vec(key: str) -> gym.vector.VectorEnv:
    env = gym.make_vec(all_specs()[key].dream_id, num_envs=3, max_episode_steps=5)
    env.reset(seed=2)
    return env


# ============================================================= reset options
def bad_options(spec: WorldSpec, vector: bool) -> dict[str, Any]:
    h, w, c = spec.obs_shape
    k = spec.context_length
    space = action_space_for(spec)
    one = np.zeros((1, h, w, c), np.uint8)
    two = np.zeros((2, h, w, c), np.uint8)
    kk = np.zeros((k, h, w, c), np.uint8)
    bad_act = int(space.n) if isinstance(space, gym.spaces.Discrete) else np.full(space.shape, np.nan, np.float32)
    good_act = valid_actions(space, 1, 0)[0]
    cases: dict[str, Any] = {
        "not a dict (list)": [("frames", one)],
        "not a dict (str)": "frames",
        "unknown key": {"frame": one},
        "unknown key beside frames": {"frames": one, "seed": 3},
        "actions without frames": {"actions": [good_act]},
        "frames float32": {"frames": one.astype(np.float32)},
        "frames int64": {"frames": one.astype(np.int64)},
        "frames float with NaN": {"frames": np.full((1, h, w, c), np.nan, np.float32)},
        "frames bool": {"frames": one.astype(bool)},
        "frames list": {"frames": one.tolist()},
        "frames None": {"frames": None},
        "frames torch": {"frames": torch.zeros(1, h, w, c, dtype=torch.uint8)},
        "one frame without the batch axis": {"frames": one[0]},
        "frames 5-D": {"frames": one[None]},
        "frames wrong height": {"frames": np.zeros((1, h + 1, w, c), np.uint8)},
        "frames wrong channels": {"frames": np.zeros((1, h, w, c + 2), np.uint8)},
        "frames channels first": {"frames": np.zeros((1, c, h, w), np.uint8)},
        "0 frames": {"frames": np.zeros((0, h, w, c), np.uint8)},
        "K+1 frames": {"frames": np.zeros((k + 1, h, w, c), np.uint8)},
        "actions too long": {"frames": two, "actions": [good_act] * 3},
        "actions out of range": {"frames": two, "actions": [bad_act]},
        "actions str": {"frames": two, "actions": "0"},
        "actions int": {"frames": two, "actions": 5},
        "actions None inside": {"frames": two, "actions": [None]},
        "actions NaN": {"frames": two, "actions": [float("nan")]},
        "actions bool": {"frames": two, "actions": [True]},
        "actions dict": {"frames": two, "actions": {0: 0}},
        "actions 0-d array": {"frames": two, "actions": np.array(0)},
    }
    if k >= 3:
        cases["actions too short"] = {"frames": kk, "actions": [good_act] * (k - 2)}
    if vector:
        cases.update(
            {
                "reset_mask wrong length": {"reset_mask": np.ones(2, bool)},
                "reset_mask ints": {"reset_mask": np.ones(3, np.int64)},
                "reset_mask str": {"reset_mask": "yes"},
                "reset_mask None": {"reset_mask": None},
            }
        )
    else:
        cases["reset_mask on a single env"] = {"reset_mask": np.ones(1, bool)}
    return cases


def option_cases(vector: bool) -> list:
    out = []
    for p in WORLDS:
        spec = p.values[0]
        for name in sorted(bad_options(spec, vector)):
            out.append(pytest.param(spec, name, id=f"{spec.key}-{name}", marks=p.marks))
    return out


@st.composite
def reset_options(draw: st.DrawFn, spec: WorldSpec) -> tuple[Any, bool, np.ndarray | None]:
    """(options, whether they are valid for a single env, the prompt's last frame if valid)."""
    h, w, c = spec.obs_shape
    k = spec.context_length
    space = action_space_for(spec)
    if draw(st.integers(0, 9)) == 0:
        return (
            draw(st.one_of(st.none(), st.just({}), st.text(max_size=3), st.lists(st.integers(), max_size=2))),
            None,
            None,
        )
    options: dict[Any, Any] = {}
    valid = True
    last = None
    n = draw(st.integers(0, k + 1))
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([np.uint8, np.uint8, np.float32, np.int64, np.float64, np.int8]))
        shape = draw(st.sampled_from(["ok", "ok", "ok", "no batch", "tall", "channels", "extra axis"]))
        shp = {
            "ok": (n, h, w, c),
            "no batch": (h, w, c),
            "tall": (n, h + 1, w, c),
            "channels": (n, h, w, c + 1),
            "extra axis": (1, n, h, w, c),
        }[shape]
        fill = draw(st.sampled_from(["random", "zeros", "nan"]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        arr = rng.integers(0, 256, size=shp).astype(dtype) if fill == "random" else np.zeros(shp, dtype)
        if fill == "nan" and np.dtype(dtype).kind == "f":
            arr[...] = np.nan
        options["frames"] = arr
        frames_ok = dtype == np.uint8 and shape == "ok" and 1 <= n <= k
        valid &= frames_ok
        if frames_ok:
            last = arr[-1]
    else:
        frames_ok = False
    if draw(st.booleans()):
        if isinstance(space, gym.spaces.Discrete):
            elem = st.one_of(
                st.integers(-2, int(space.n) + 1), st.booleans(), st.none(), st.floats(), st.text(max_size=1)
            )
        else:
            elem = hnp.arrays(np.float32, space.shape)
        acts = draw(st.one_of(st.lists(elem, max_size=k + 1), st.none(), st.integers(), st.text(max_size=2)))
        options["actions"] = acts
        if acts is not None:
            ok_len = isinstance(acts, list) and frames_ok and len(acts) in (n - 1, n)
            ok_vals = isinstance(acts, list) and all(
                discrete_action_is_valid(a, int(space.n))
                if isinstance(space, gym.spaces.Discrete)
                else bool(np.all(np.isfinite(a)) and np.all(a >= space.low) and np.all(a <= space.high))
                for a in acts
            )
            valid &= ok_len and ok_vals
        if "frames" not in options:  # actions (even None) without frames are refused
            valid = False
    if draw(st.integers(0, 4)) == 0:
        options[draw(st.sampled_from(["reset_mask", "seed", "frame", "Frames", 0]))] = draw(st.integers(0, 3))
        valid = False
    return options, valid, (last if valid else None)


# ==================================================================== weights
def world_file(spec: WorldSpec, tmp_path: Path, name: str, tensors_edit=None, meta_edit=None) -> Path:
    """A copy of the world file with its tensors or metadata edited."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(spec.weights_path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(spec.weights_path))
    if tensors_edit:
        tensors_edit(tensors)
    if meta_edit:
        meta_edit(meta)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def edit_json(key: str, **changes: Any) -> Callable[[dict[str, str]], None]:
    def edit(meta: dict[str, str]) -> None:
        value = json.loads(meta.get(key, "{}"))
        value.update(changes)
        meta[key] = json.dumps(value)

    return edit


def bad_weight_files(spec: WorldSpec, tmp_path: Path) -> dict[str, Path]:
    data = spec.weights_path.read_bytes()
    files: dict[str, Path] = {}
    for name, content in (
        ("truncated", data[: len(data) // 2]),
        ("garbage", bytes(range(256)) * 40),
        ("empty", b""),
        ("header only", data[:64]),
    ):
        files[name] = tmp_path / f"{name}.safetensors"
        files[name].write_bytes(content)
    files["missing"] = tmp_path / "missing.safetensors"
    files["a directory"] = tmp_path / "dir.safetensors"
    files["a directory"].mkdir()
    world = load_world(spec.weights_path, spec)
    files["another world"] = tmp_path / "other.safetensors"
    save_world(
        files["another world"],
        world.model,
        dataclasses.replace(spec, key=spec.key + "other"),
        world.starts,
        world.anchor_frames,
        world.anchor_actions,
        world.info,
    )
    files["config shapes mismatch"] = world_file(
        spec,
        tmp_path,
        "shapes",
        meta_edit=edit_json("neuralgym.config", height=spec.obs_shape[0] // 2, width=spec.obs_shape[1] // 2),
    )
    files["context mismatch"] = world_file(
        spec, tmp_path, "ctx", meta_edit=edit_json("neuralgym.config", context=spec.context_length + 1)
    )
    files["config unbuildable"] = world_file(
        spec, tmp_path, "unbuildable", meta_edit=edit_json("neuralgym.config", patch=0)
    )
    files["config not json"] = world_file(
        spec, tmp_path, "cfgjson", meta_edit=lambda m: m.__setitem__("neuralgym.config", "{")
    )
    files["info not an object"] = world_file(
        spec, tmp_path, "info", meta_edit=lambda m: m.__setitem__("neuralgym.info", "[1]")
    )
    files["bad term_pos_weight"] = world_file(
        spec, tmp_path, "tpw", meta_edit=edit_json("neuralgym.info", train={"term_pos_weight": 0})
    )
    from safetensors.torch import load_file

    first = next(k for k in sorted(load_file(str(spec.weights_path))) if k.startswith("model."))

    def nan_model(t: dict) -> None:
        t[first] = torch.full_like(t[first], float("nan")) if t[first].is_floating_point() else t[first]

    files["NaN model tensor"] = world_file(spec, tmp_path, "nan", tensors_edit=nan_model)
    files["missing bank"] = world_file(spec, tmp_path, "nobank", tensors_edit=lambda t: t.pop("bank.starts"))
    files["float start bank"] = world_file(
        spec, tmp_path, "fbank", tensors_edit=lambda t: t.__setitem__("bank.starts", t["bank.starts"].float())
    )
    files["anchor frames wrong shape"] = world_file(
        spec,
        tmp_path,
        "anchors",
        tensors_edit=lambda t: t.__setitem__("bank.frames", t["bank.frames"][:, :1].contiguous()),
    )
    files["anchor actions NaN"] = world_file(
        spec,
        tmp_path,
        "anchoract",
        tensors_edit=lambda t: t.__setitem__("bank.actions", t["bank.actions"] * float("nan")),
    )
    files["extra model tensor"] = world_file(
        spec, tmp_path, "extra", tensors_edit=lambda t: t.__setitem__("model.extra", torch.zeros(1))
    )
    return files


def force_termination(env_core) -> Callable[[], None]:
    inner = env_core.model.forward

    def terminating(frames, actions, *rest):  # rest: start, and a world with futures' draw
        out = dict(inner(frames, actions, *rest))
        out["term_logit"] = torch.full_like(out["term_logit"], 60.0)
        return out

    env_core.model.forward = terminating
    return lambda: setattr(env_core.model, "forward", inner)


# ================================================================== numerics
def nan_outputs(frames: torch.Tensor, actions: torch.Tensor, *_: object) -> dict[str, torch.Tensor]:
    b, h, w = frames.shape[0], frames.shape[-2], frames.shape[-1]
    c = frames.shape[2] if frames.dim() == 5 else frames.shape[1] // actions.shape[1]  # a ring: K C channels
    nan = torch.full((b,), float("nan"))
    return {"frame": torch.full((b, c, h, w), float("nan")), "reward": nan, "term_logit": nan, "log_err": nan}
