"""Issue 9, hardening: every public entry of a dream rejects bad input with a
ValueError/TypeError that says what was expected (gymnasium's own ResetNeeded where
``gym.make``'s wrappers answer first), changes nothing when it does, and keeps working;
and nothing non-finite a model may produce reaches the agent."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neuralgym
from neuralgym.dream.env import WorldModelEnv
from neuralgym.world.spaces import action_space_for, validate_action
from neuralgym.world.catalog import all_specs
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import WeightsError, load_world, save_world

from worlds import SPECS, WORLDS
HYPO = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
REJECT = (ValueError, TypeError)



def rejected(fn: Callable[..., Any], *args: Any, types: tuple[type[BaseException], ...] = REJECT, **kwargs: Any) -> BaseException:
    """Call ``fn``; it must raise one of ``types`` with a message that says something."""
    with pytest.raises(types) as info:
        fn(*args, **kwargs)
    assert len(str(info.value).strip()) >= 10, f"error without a useful message: {info.value!r}"
    return info.value


@functools.lru_cache(maxsize=None)
def shared_dream(key: str, role: str) -> gym.Env:
    """One cached env per (world, role) for the hypothesis tests, which reset it as needed."""
    return gym.make(all_specs()[key].dream_id)


def noop_batch(spec: WorldSpec, n: int) -> np.ndarray:
    """A valid batch of ``n`` no-op actions of ``spec``'s world, discrete or box."""
    if spec.actions.kind == "discrete":
        return np.full(n, int(spec.actions.noop), np.int64)
    return np.tile(np.asarray(spec.actions.noop, np.float32), (n, 1))


def valid_actions(space: gym.spaces.Space, n: int, seed: int) -> list[Any]:
    space = gym.spaces.Discrete(space.n) if isinstance(space, gym.spaces.Discrete) else \
        gym.spaces.Box(space.low, space.high, dtype=space.dtype)
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
    common = [("None", None), ("str", "left"), ("bytes", b"\x00"), ("dict", {}), ("object", object()), ("complex", 1 + 0j)]
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return common + [
            ("float 1.5", 1.5), ("list [0, 1]", [0, 1]), ("array [[0]]", np.array([[0]])), ("array [0, 1]", np.array([0, 1])),
            ("2**63", 2**63), ("-1", -1), ("n", n), ("np.int64 n", np.int64(n)), ("nan", float("nan")),
            ("inf", float("inf")), ("-inf", -float("inf")), ("np.nan", np.float32("nan")), ("True", True), ("False", False),
            ("np.bool_", np.bool_(True)), ("array(True)", np.array(True)), ("array 0.5", np.array(0.5)),
            ("array '1'", np.array("1")), ("empty array", np.array([], np.int64)), ("str digit", "1"),
        ]
    shape = space.shape
    return common + [
        ("wrong shape", np.zeros((*shape, 2), np.float32)), ("scalar", 0.0), ("nan", np.full(shape, np.nan, np.float32)),
        ("inf", np.full(shape, np.inf, np.float32)), ("above high", np.asarray(space.high, np.float32) + 1),
        ("below low", np.asarray(space.low, np.float32) - 1), ("bools", np.ones(shape, bool)), ("strings", np.full(shape, "1")),
    ]


def bad_action_cases() -> list:
    out = []
    for p in WORLDS:
        spec = p.values[0]
        for name, action in bad_actions(action_space_for(spec)):
            out.append(pytest.param(spec, action, id=f"{spec.key}-{name}", marks=p.marks))
    return out


# ====================================================================== actions
@pytest.mark.parametrize("spec, action", bad_action_cases())
def test_single_env_rejects_bad_action_and_changes_nothing(spec: WorldSpec, action: Any) -> None:
    a, b = gym.make(spec.dream_id), gym.make(spec.dream_id)
    a.reset(seed=0)
    b.reset(seed=0)
    good = valid_actions(a.action_space, 4, seed=0)
    for act in good[:2]:
        twin_step(a, b, act)
    rejected(a.step, action)
    for act in good[2:]:  # the failed step changed nothing: both envs go on identically
        twin_step(a, b, act)


@pytest.mark.parametrize("spec", WORLDS)
def test_discrete_action_forms_accepted(spec: WorldSpec) -> None:
    """What a discrete action may be: an int, a numpy int, a 0-d or one-element int array
    (what SB3's predict returns), an integral float. Bools are refused (True is no action index)."""
    space = action_space_for(spec)
    if not isinstance(space, gym.spaces.Discrete):
        pytest.skip("discrete worlds only")
    for form in (1, np.int64(1), np.uint8(1), np.array(1), np.array([1]), 1.0, np.float32(1.0)):
        assert validate_action(space, form) == 1, form
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    for form in (0, np.int64(1), np.array(0), np.array([1])):
        assert step_on(env, form) in env.observation_space
    for form in (True, False, np.bool_(False), np.array([True])):
        rejected(env.step, form)


def test_box_action_validation() -> None:
    space = gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 2], np.float32), dtype=np.float32)
    np.testing.assert_array_equal(validate_action(space, [0.5, 1]), np.array([0.5, 1], np.float32))
    for bad in (None, "ab", ["0.5", "1"], [True, False], [0.5], [[0.5, 1]], [np.nan, 1], [0, 3], [-2, 1], [0, None], {}):
        rejected(validate_action, space, bad)
    from neuralgym.world.spaces import validate_action_batch

    np.testing.assert_array_equal(validate_action_batch(space, [[0, 1], [1, 2]], 2), np.array([[0, 1], [1, 2]], np.float32))
    for bad in (None, [[0, 1]], [[0, 1], [1, 3]], [[0, 1], [np.inf, 1]], np.ones((2, 2), bool), [["a", "b"], ["c", "d"]]):
        rejected(validate_action_batch, space, bad, 2)


small = st.integers(-1, 3)
any_action = st.one_of(
    small, st.builds(np.int64, small), st.builds(np.array, small), st.builds(lambda v: np.array([v]), small),
    st.builds(lambda v: np.array([[v]]), small), st.sampled_from([0.0, 1.0, 0.5, np.float32(1.0), np.float16(2.0)]),
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3), st.binary(max_size=2), st.complex_numbers(max_magnitude=3),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-3, 3)), max_size=3),
    hnp.arrays(st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
               hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
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


@pytest.mark.parametrize("spec", WORLDS)
@HYPO
@given(action=any_action)
def test_single_env_any_action_is_accepted_iff_valid(spec: WorldSpec, action: Any) -> None:
    env = shared_dream(spec.key, "hypothesis-actions")
    if env.unwrapped._obs is None or env.unwrapped.core.needs_reset[0]:
        env.reset(seed=1)
    space = env.action_space
    try:
        obs, reward, terminated, truncated, info = env.step(action)
    except REJECT as e:
        assert str(e).strip()
        if isinstance(space, gym.spaces.Discrete):
            assert not discrete_action_is_valid(action, int(space.n)), f"valid action {action!r} refused: {e}"
        obs, reward, terminated, truncated, info = env.step(space.sample())  # still steps
    else:
        if isinstance(space, gym.spaces.Discrete):
            assert discrete_action_is_valid(action, int(space.n)), f"invalid action {action!r} accepted"
    assert obs.dtype == np.uint8 and obs in env.observation_space
    assert math.isfinite(reward) and math.isfinite(info["drift"])


BAD_BATCHES = {
    "None": None, "str": "01", "scalar": 0, "short": [0, 0], "long": [0, 0, 0, 0], "2 columns": np.zeros((3, 2), np.int64),
    "3-D": np.zeros((3, 1, 1), np.int64), "non-integral floats": [0.5, 0, 1], "nan": [np.nan, 0, 1], "inf": [np.inf, 0, 1],
    "bools": np.array([True, False, True]), "objects": np.array([0, None, 1], dtype=object), "strings": np.array(["0", "1", "0"]),
    "too big": [0, "n", 1], "negative": [0, -1, 1], "huge uint64": np.array([0, 2**63, 1], np.uint64), "ragged": [[0], [0, 1], 0],
    "dict": {0: 0}, "torch wrong shape": torch.zeros(2, dtype=torch.int64),
}


@pytest.mark.parametrize("name", sorted(BAD_BATCHES))
@pytest.mark.parametrize("spec", WORLDS)
def test_vector_env_rejects_bad_batch_and_changes_nothing(spec: WorldSpec, name: str) -> None:
    if not isinstance(action_space_for(spec), gym.spaces.Discrete):
        pytest.skip("these batches are for discrete worlds")
    a, b = (gym.make_vec(spec.dream_id, num_envs=3, max_episode_steps=2) for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    acts = [np.array([0, 1, 0]), np.array([1, 1, 0]), np.array([0, 0, 1]), np.array([1, 0, 1])]
    for act in acts[:2]:  # the time limit ends every lane: a NEXT_STEP autoreset is pending
        a.step(act)
        b.step(act)
    n = int(action_space_for(spec).n)
    bad = [n if v == "n" else v for v in BAD_BATCHES[name]] if name == "too big" else BAD_BATCHES[name]  # one past the last action
    rejected(a.step, bad)
    for act in acts[2:]:
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(ra[4]["dream_step"], rb[4]["dream_step"])


def discrete_batch_is_valid(arr: np.ndarray, num_envs: int, n: int) -> bool:
    if arr.shape not in ((num_envs,), (num_envs, 1)) or arr.dtype.kind not in "iuf":
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(arr >= 0) and np.all(arr < n))


@pytest.mark.parametrize("spec", WORLDS)
@HYPO
@given(batch=st.one_of(
    hnp.arrays(hnp.integer_dtypes(), st.sampled_from([(3,), (3, 1), (2,), (4,)]), elements=st.integers(-1, 2)),
    hnp.arrays(hnp.floating_dtypes(), st.sampled_from([(3,), (3, 1)]), elements=st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0])),
    hnp.arrays(st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
               st.one_of(st.just((3,)), st.just((3, 1)), hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))),
))
def test_vector_any_batch_is_accepted_iff_valid(spec: WorldSpec, batch: np.ndarray) -> None:
    env = _shared_vec(spec.key)
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        pytest.skip("discrete worlds only")
    valid = discrete_batch_is_valid(batch, 3, int(space.n))
    try:
        obs, reward, *_, info = env.step(batch)
    except REJECT as e:
        assert str(e).strip()
        assert not valid, f"valid batch {batch!r} refused: {e}"
        obs, reward, *_, info = env.step(noop_batch(spec, 3))
    else:
        assert valid, f"invalid batch {batch!r} accepted"
    assert obs.dtype == np.uint8 and np.all(np.isfinite(reward)) and np.all(np.isfinite(info["drift"]))


@functools.lru_cache(maxsize=None)
def _shared_vec(key: str) -> gym.vector.VectorEnv:
    env = gym.make_vec(all_specs()[key].dream_id, num_envs=3, max_episode_steps=5)
    env.reset(seed=2)
    return env


@pytest.mark.parametrize("spec", WORLDS)
def test_sb3_env_rejects_bad_actions(spec: WorldSpec) -> None:
    if not isinstance(action_space_for(spec), gym.spaces.Discrete):
        pytest.skip("discrete worlds only")
    a = neuralgym.make_sb3_vec_env(spec.dream_id, 3, seed=0)
    b = neuralgym.make_sb3_vec_env(spec.dream_id, 3, seed=0)
    a.reset()
    b.reset()
    n = int(action_space_for(spec).n)
    for bad in (None, [0, 1], np.array([0, 1, n]), np.array([0.5, 0, 0]), np.array([True, False, True])):
        rejected(a.step, bad)
    for act in (np.array([0, 1, 0]), np.array([1, 1, 0])):
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:3], rb[:3]):
            np.testing.assert_array_equal(x, y)


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
        "not a dict (list)": [("frames", one)], "not a dict (str)": "frames", "unknown key": {"frame": one},
        "unknown key beside frames": {"frames": one, "seed": 3}, "actions without frames": {"actions": [good_act]},
        "frames float32": {"frames": one.astype(np.float32)}, "frames int64": {"frames": one.astype(np.int64)},
        "frames float with NaN": {"frames": np.full((1, h, w, c), np.nan, np.float32)},
        "frames bool": {"frames": one.astype(bool)}, "frames list": {"frames": one.tolist()}, "frames None": {"frames": None},
        "frames torch": {"frames": torch.zeros(1, h, w, c, dtype=torch.uint8)},
        "one frame without the batch axis": {"frames": one[0]}, "frames 5-D": {"frames": one[None]},
        "frames wrong height": {"frames": np.zeros((1, h + 1, w, c), np.uint8)},
        "frames wrong channels": {"frames": np.zeros((1, h, w, c + 2), np.uint8)},
        "frames channels first": {"frames": np.zeros((1, c, h, w), np.uint8)},
        "0 frames": {"frames": np.zeros((0, h, w, c), np.uint8)},
        "K+1 frames": {"frames": np.zeros((k + 1, h, w, c), np.uint8)},
        "actions too long": {"frames": two, "actions": [good_act] * 3},
        "actions out of range": {"frames": two, "actions": [bad_act]},
        "actions str": {"frames": two, "actions": "0"}, "actions int": {"frames": two, "actions": 5},
        "actions None inside": {"frames": two, "actions": [None]}, "actions NaN": {"frames": two, "actions": [float("nan")]},
        "actions bool": {"frames": two, "actions": [True]}, "actions dict": {"frames": two, "actions": {0: 0}},
        "actions 0-d array": {"frames": two, "actions": np.array(0)},
    }
    if k >= 3:
        cases["actions too short"] = {"frames": kk, "actions": [good_act] * (k - 2)}
    if vector:
        cases.update({
            "reset_mask wrong length": {"reset_mask": np.ones(2, bool)},
            "reset_mask ints": {"reset_mask": np.ones(3, np.int64)}, "reset_mask str": {"reset_mask": "yes"},
            "reset_mask None": {"reset_mask": None},
        })
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


@pytest.mark.parametrize("spec, name", option_cases(vector=False))
def test_single_env_rejects_bad_reset_options(spec: WorldSpec, name: str) -> None:
    options = bad_options(spec, vector=False)[name]
    a, b = gym.make(spec.dream_id), gym.make(spec.dream_id)
    a.reset(seed=0)
    b.reset(seed=0)
    acts = valid_actions(a.action_space, 4, seed=0)
    twin_step(a, b, acts[0])
    rejected(a.reset, options=options)
    for act in acts[1:]:  # the failed reset changed nothing: the episode goes on as in the twin
        twin_step(a, b, act)
    obs, _ = a.reset(seed=1)  # and a good reset works
    assert obs in a.observation_space


@pytest.mark.parametrize("spec, name", option_cases(vector=True))
def test_vector_env_rejects_bad_reset_options(spec: WorldSpec, name: str) -> None:
    options = bad_options(spec, vector=True)[name]
    a, b = (gym.make_vec(spec.dream_id, num_envs=3) for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    acts = [np.stack(valid_actions(a.single_action_space, 3, seed=s)) for s in range(3)]
    a.step(acts[0])
    b.step(acts[0])
    rejected(a.reset, options=options)
    for act in acts[1:]:
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("spec", WORLDS)
def test_sb3_env_rejects_bad_options(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=0)
    env.reset()
    h, w, c = spec.obs_shape
    for opts in ({"frames": np.zeros((1, h, w, c), np.float32)}, {"bogus": 1}, {"reset_mask": np.ones(2, bool)}):
        env.set_options(opts)
        rejected(env.reset)
    env.set_options(None)
    assert env.reset().shape == (2, h, w, c)


@st.composite
def reset_options(draw: st.DrawFn, spec: WorldSpec) -> tuple[Any, bool, np.ndarray | None]:
    """(options, whether they are valid for a single env, the prompt's last frame if valid)."""
    h, w, c = spec.obs_shape
    k = spec.context_length
    space = action_space_for(spec)
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), st.just({}), st.text(max_size=3), st.lists(st.integers(), max_size=2))), None, None
    options: dict[Any, Any] = {}
    valid = True
    last = None
    n = draw(st.integers(0, k + 1))
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([np.uint8, np.uint8, np.float32, np.int64, np.float64, np.int8]))
        shape = draw(st.sampled_from(["ok", "ok", "ok", "no batch", "tall", "channels", "extra axis"]))
        shp = {"ok": (n, h, w, c), "no batch": (h, w, c), "tall": (n, h + 1, w, c), "channels": (n, h, w, c + 1),
               "extra axis": (1, n, h, w, c)}[shape]
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
            elem = st.one_of(st.integers(-2, int(space.n) + 1), st.booleans(), st.none(), st.floats(), st.text(max_size=1))
        else:
            elem = hnp.arrays(np.float32, space.shape)
        acts = draw(st.one_of(st.lists(elem, max_size=k + 1), st.none(), st.integers(), st.text(max_size=2)))
        options["actions"] = acts
        if acts is not None:
            ok_len = isinstance(acts, list) and frames_ok and len(acts) in (n - 1, n)
            ok_vals = isinstance(acts, list) and all(
                discrete_action_is_valid(a, int(space.n)) if isinstance(space, gym.spaces.Discrete) else
                bool(np.all(np.isfinite(a)) and np.all(a >= space.low) and np.all(a <= space.high)) for a in acts)
            valid &= ok_len and ok_vals
        if "frames" not in options:  # actions (even None) without frames are refused
            valid = False
    if draw(st.integers(0, 4)) == 0:
        options[draw(st.sampled_from(["reset_mask", "seed", "frame", "Frames", 0]))] = draw(st.integers(0, 3))
        valid = False
    return options, valid, (last if valid else None)


@pytest.mark.parametrize("spec", WORLDS)
@HYPO
@given(data=st.data())
def test_any_reset_options_are_accepted_iff_valid(spec: WorldSpec, data: st.DataObject) -> None:
    options, valid, last = data.draw(reset_options(spec), label="options")
    env = shared_dream(spec.key, "hypothesis-options")
    if valid is None:  # options that are not a dict: None and {} are fine, anything else is refused
        valid = options is None or options == {}
    try:
        obs, info = env.reset(options=options)
    except REJECT as e:
        assert str(e).strip()
        assert not valid, f"valid options refused: {e}"
        obs, info = env.reset()
    else:
        assert valid, f"invalid options accepted: {options!r}"
        if last is not None:
            np.testing.assert_array_equal(obs, last)
    assert obs.dtype == np.uint8 and obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space and math.isfinite(reward) and math.isfinite(info["drift"])


# ===================================================================== seeds
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_seeds_are_rejected(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    vec = gym.make_vec(spec.dream_id, num_envs=2)
    for bad in ("a", 1.5, -1, True, np.float64(3)):
        rejected(env.unwrapped.reset, seed=bad)
        rejected(vec.reset, seed=bad)
    rejected(env.unwrapped.reset, seed=[1, 2])
    rejected(vec.reset, seed=[1, 2, 3])  # a list of seeds needs one per env
    rejected(vec.reset, seed=[1, "a"])
    for ok in (0, np.int64(5), 2**64, 2**80):  # any int >= 0, as gymnasium allows
        first, _ = env.reset(seed=ok)
        again, _ = env.reset(seed=ok)
        np.testing.assert_array_equal(first, again)
        vec.reset(seed=ok)
    vec.reset(seed=[1, None])


# ========================================================= constructor arguments
@pytest.mark.parametrize("num_envs", [0, -1, 1.5, "4", True, None])
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_num_envs(spec: WorldSpec, num_envs: Any) -> None:
    rejected(gym.make_vec, spec.dream_id, num_envs=num_envs)
    rejected(neuralgym.make_sb3_vec_env, spec.dream_id, num_envs)


@pytest.mark.parametrize("device", ["tpu", "cuda", "cuda:0", "", "CPU", None, 0])
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_device(spec: WorldSpec, device: Any) -> None:
    if isinstance(device, str) and device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for make in (lambda: gym.make(spec.dream_id, device=device), lambda: gym.make_vec(spec.dream_id, num_envs=2, device=device),
                 lambda: neuralgym.make_sb3_vec_env(spec.dream_id, 2, device=device)):
        err = rejected(make)
        if device in ("cuda", "cuda:0"):
            assert "cuda" in str(err).lower()


@pytest.mark.parametrize("kwargs", [
    {"temperature": -1.0}, {"temperature": float("nan")}, {"temperature": "hot"}, {"drift_policy": "bogus"},
    {"drift_policy": 5}, {"drift_policy": {"mode": "explode"}}, {"drift_policy": {"bogus": 1}},
    {"drift_policy": {"threshold": -1.0}}, {"drift_policy": {"hysteresis": 0}}, {"render_mode": "bogus"},
], ids=repr)
@pytest.mark.filterwarnings("ignore:.*render_mode='bogus'.*:UserWarning")  # gymnasium's own note before ours raises
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_constructor_arguments(spec: WorldSpec, kwargs: dict[str, Any]) -> None:
    rejected(gym.make, spec.dream_id, **kwargs)
    rejected(gym.make_vec, spec.dream_id, num_envs=2, **kwargs)
    if "render_mode" not in kwargs:
        rejected(neuralgym.make_sb3_vec_env, spec.dream_id, 2, **kwargs)


@pytest.mark.parametrize("kwargs", [{"obs_backend": "jax"}, {"autoreset_mode": "bogus"},
                                    {"autoreset_mode": AutoresetMode.DISABLED}, {"render_mode": "human"}], ids=repr)
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_vector_arguments(spec: WorldSpec, kwargs: dict[str, Any]) -> None:
    rejected(gym.make_vec, spec.dream_id, num_envs=2, **kwargs)


@pytest.mark.parametrize("limit", [0, -1])
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_max_episode_steps(spec: WorldSpec, limit: int) -> None:
    gym.make_vec(spec.dream_id, num_envs=2).close()  # the world itself loads: only the limit is at fault
    err = rejected(gym.make_vec, spec.dream_id, num_envs=2, max_episode_steps=limit)
    assert "max_episode_steps" in str(err)


def test_unknown_ids_and_n_envs_for_sb3() -> None:
    rejected(neuralgym.make_sb3_vec_env, "neuralgym/NoSuchWorld-v0", 2)


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
    for name, content in (("truncated", data[: len(data) // 2]), ("garbage", bytes(range(256)) * 40), ("empty", b""),
                          ("header only", data[:64])):
        files[name] = tmp_path / f"{name}.safetensors"
        files[name].write_bytes(content)
    files["missing"] = tmp_path / "missing.safetensors"
    files["a directory"] = tmp_path / "dir.safetensors"
    files["a directory"].mkdir()
    world = load_world(spec.weights_path, spec)
    files["another world"] = tmp_path / "other.safetensors"
    save_world(files["another world"], world.model, dataclasses.replace(spec, key=spec.key + "other"), world.starts,
               world.anchor_frames, world.anchor_actions, world.info)
    files["config shapes mismatch"] = world_file(spec, tmp_path, "shapes", meta_edit=edit_json(
        "neuralgym.config", height=spec.obs_shape[0] // 2, width=spec.obs_shape[1] // 2))
    files["context mismatch"] = world_file(spec, tmp_path, "ctx", meta_edit=edit_json("neuralgym.config", context=spec.context_length + 1))
    files["config unbuildable"] = world_file(spec, tmp_path, "unbuildable", meta_edit=edit_json("neuralgym.config", patch=0))
    files["config not json"] = world_file(spec, tmp_path, "cfgjson", meta_edit=lambda m: m.__setitem__("neuralgym.config", "{"))
    files["info not an object"] = world_file(spec, tmp_path, "info", meta_edit=lambda m: m.__setitem__("neuralgym.info", "[1]"))
    files["bad term_pos_weight"] = world_file(spec, tmp_path, "tpw", meta_edit=edit_json("neuralgym.info", train={"term_pos_weight": 0}))
    from safetensors.torch import load_file

    first = next(k for k in sorted(load_file(str(spec.weights_path))) if k.startswith("model."))

    def nan_model(t: dict) -> None:
        t[first] = torch.full_like(t[first], float("nan")) if t[first].is_floating_point() else t[first]

    files["NaN model tensor"] = world_file(spec, tmp_path, "nan", tensors_edit=nan_model)
    files["missing bank"] = world_file(spec, tmp_path, "nobank", tensors_edit=lambda t: t.pop("bank.starts"))
    files["float start bank"] = world_file(spec, tmp_path, "fbank", tensors_edit=lambda t: t.__setitem__("bank.starts", t["bank.starts"].float()))
    files["anchor frames wrong shape"] = world_file(spec, tmp_path, "anchors", tensors_edit=lambda t: t.__setitem__(
        "bank.frames", t["bank.frames"][:, :1].contiguous()))
    files["anchor actions NaN"] = world_file(spec, tmp_path, "anchoract", tensors_edit=lambda t: t.__setitem__(
        "bank.actions", t["bank.actions"] * float("nan")))
    files["extra model tensor"] = world_file(spec, tmp_path, "extra", tensors_edit=lambda t: t.__setitem__("model.extra", torch.zeros(1)))
    return files


@pytest.mark.parametrize("spec", WORLDS)
def test_bad_weight_files_raise_value_error_naming_the_file(spec: WorldSpec, tmp_path: Path) -> None:
    files = bad_weight_files(spec, tmp_path)
    for name, path in files.items():
        for make in (lambda: gym.make(spec.dream_id, weights=str(path)),):
            err = rejected(make, types=(ValueError,))
            assert isinstance(err, WeightsError), (name, err)
            assert str(path) in str(err), f"{name}: the message does not name the file: {err}"
    # the vector and SB3 faces raise the same
    for make in (lambda p: gym.make_vec(spec.dream_id, num_envs=2, weights=p), lambda p: neuralgym.make_sb3_vec_env(spec.dream_id, 2, weights=p)):
        for name in ("truncated", "another world", "config shapes mismatch"):
            err = rejected(make, str(files[name]), types=(WeightsError,))
            assert str(files[name]) in str(err)
    rejected(gym.make, spec.dream_id, weights=123, types=(TypeError,))
    # and the good file still loads after all that
    assert gym.make(spec.dream_id).reset(seed=0)[0] is not None


# ============================================================== call order
@pytest.mark.parametrize("spec", WORLDS)
def test_step_and_render_before_reset(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id, render_mode="rgb_array")
    rejected(env.step, env.action_space.sample(), types=(gym.error.ResetNeeded,))  # gymnasium's OrderEnforcing
    raw = WorldModelEnv(spec.key, render_mode="rgb_array")
    err = rejected(raw.step, raw.action_space.sample(), types=(ValueError,))
    assert isinstance(err, gym.error.ResetNeeded) and "reset" in str(err)
    rejected(raw.render, types=(ValueError,))
    vec = gym.make_vec(spec.dream_id, num_envs=2)
    rejected(vec.step, noop_batch(spec, 2), types=(ValueError,))
    sb3 = neuralgym.make_sb3_vec_env(spec.dream_id, 2)
    rejected(sb3.step, noop_batch(spec, 2), types=(ValueError,))
    for e in (env, raw):  # all of them work once reset
        e.reset(seed=0)
        assert e.step(e.action_space.sample())[0] in e.observation_space
    vec.reset(seed=0)
    vec.step(noop_batch(spec, 2))
    sb3.reset()
    sb3.step(noop_batch(spec, 2))


@pytest.mark.parametrize("spec", WORLDS)
def test_failed_first_reset_leaves_env_unstarted(spec: WorldSpec) -> None:
    env = WorldModelEnv(spec.key)
    rejected(env.reset, options={"bogus": 1})
    rejected(env.step, env.action_space.sample(), types=(ValueError, gym.error.ResetNeeded))
    env.reset(seed=0)
    env.step(env.action_space.sample())


@pytest.mark.parametrize("spec", WORLDS)
def test_env_works_after_a_failed_first_reset_through_gym_make(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    rejected(env.reset, options={"bogus": 1})
    env.reset(seed=0)
    env.step(env.action_space.sample())


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_lanes_never_reset_cannot_step(spec: WorldSpec) -> None:
    vec = gym.make_vec(spec.dream_id, num_envs=3)
    vec.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    rejected(vec.step, noop_batch(spec, 3), types=(ValueError,))
    vec.reset(seed=0)
    assert vec.step(noop_batch(spec, 3))[0].shape[0] == 3


def force_termination(env_core) -> Callable[[], None]:
    inner = env_core.model.forward

    def terminating(frames, actions):
        out = dict(inner(frames, actions))
        out["term_logit"] = torch.full_like(out["term_logit"], 60.0)
        return out

    env_core.model.forward = terminating
    return lambda: setattr(env_core.model, "forward", inner)


@pytest.mark.parametrize("spec", WORLDS)
def test_step_after_episode_end_needs_reset(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    restore = force_termination(env.unwrapped.core)
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated
    restore()
    err = rejected(env.step, env.action_space.sample(), types=(ValueError,))
    assert isinstance(err, gym.error.ResetNeeded) and "reset" in str(err)
    env.reset()
    assert env.step(env.action_space.sample())[0] in env.observation_space
    # the same after the env's own time limit
    raw = WorldModelEnv(spec.key, max_episode_steps=2)
    raw.reset(seed=0)
    for t in (1, 2):
        _, _, terminated, truncated, _ = raw.step(raw.action_space.sample())
        if terminated:
            break
        assert truncated == (t == 2)
    rejected(raw.step, raw.action_space.sample(), types=(ValueError,))


# ================================================================== numerics
def nan_outputs(frames: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
    b, _, c, h, w = frames.shape
    nan = torch.full((b,), float("nan"))
    return {"frame": torch.full((b, c, h, w), float("nan")), "reward": nan, "term_logit": nan, "log_err": nan}


@pytest.mark.parametrize("spec", WORLDS)
def test_nan_model_truncates_with_finite_obs(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    obs0, _ = env.reset(seed=0)
    env.unwrapped.core.model.forward = nan_outputs
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated is True and terminated is False and info.get("nonfinite") is True
    assert obs.dtype == np.uint8 and obs in env.observation_space
    np.testing.assert_array_equal(obs, obs0)  # the last good frame, not garbage
    assert reward == 0.0 and math.isfinite(info["drift"])
    rejected(env.step, env.action_space.sample(), types=(ValueError,))  # the episode is over
    obs, _ = env.reset(seed=1)
    assert obs in env.observation_space


@pytest.mark.parametrize("broken", ["frame", "reward", "term_logit", "all"])
@pytest.mark.parametrize("spec", WORLDS)
def test_nonfinite_lane_is_truncated_alone(spec: WorldSpec, broken: str) -> None:
    a, b = (gym.make_vec(spec.dream_id, num_envs=3) for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    inner = a.unwrapped.core.model.forward

    def lane1_broken(frames, actions):
        out = {k: v.clone() for k, v in inner(frames, actions).items()}
        for key in (["frame", "reward", "term_logit"] if broken == "all" else [broken]):
            out[key][1] = float("inf") if key == "reward" else float("nan")
        return out

    a.unwrapped.core.model.forward = lane1_broken
    act = noop_batch(spec, 3)
    oa, ra, ta, tra, ia = a.step(act)
    ob, rb, tb, trb, ib = b.step(act)
    np.testing.assert_array_equal(ia["nonfinite"], [False, True, False])
    assert tra[1] and not ta[1] and ra[1] == 0.0
    assert np.all(np.isfinite(ra)) and np.all(np.isfinite(ia["drift"])) and oa.dtype == np.uint8
    for i in (0, 2):  # the other lanes are untouched
        np.testing.assert_array_equal(oa[i], ob[i])
        assert ra[i] == rb[i] and ta[i] == tb[i] and tra[i] == trb[i]
    # NEXT_STEP: lane 1 restarts with a clean start frame, even though the model is still broken
    oa, ra, ta, tra, ia = a.step(act)
    assert not tra[1] and not ta[1] and ra[1] == 0.0
    assert "nonfinite" not in ia or not ia["nonfinite"][1]
    assert np.all(a.unwrapped.core.world.starts == oa[1], axis=(1, 2, 3)).any()


@pytest.mark.parametrize("spec", WORLDS)
def test_nan_log_err_still_gives_finite_drift(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    inner = env.unwrapped.core.model.forward

    def nan_err(frames, actions):
        out = dict(inner(frames, actions))
        out["log_err"] = torch.full_like(out["log_err"], float("nan"))
        return out

    env.unwrapped.core.model.forward = nan_err
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert math.isfinite(info["drift"]) and math.isfinite(reward)


@pytest.mark.parametrize("spec", WORLDS)
def test_sb3_nonfinite_lane_ends_as_truncation(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=0)
    env.reset()
    env.core.model.forward = nan_outputs
    obs, rewards, dones, infos = env.step(noop_batch(spec, 2))
    assert dones.all() and np.all(rewards == 0) and obs.dtype == np.uint8
    for info in infos:
        assert info["TimeLimit.truncated"] is True and info.get("nonfinite") is True
        assert info["terminal_observation"].dtype == np.uint8


@pytest.mark.parametrize("value, expected", [(1.5, 255), (-0.5, 0)])
@pytest.mark.parametrize("spec", WORLDS)
def test_out_of_range_frames_are_clamped(spec: WorldSpec, value: float, expected: int) -> None:
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    inner = env.unwrapped.core.model.forward

    def out_of_range(frames, actions):
        out = dict(inner(frames, actions))
        out["frame"] = torch.full_like(out["frame"], value)
        return out

    env.unwrapped.core.model.forward = out_of_range
    obs, *_ = env.step(env.action_space.sample())
    assert np.all(obs == expected)


@pytest.mark.parametrize("spec", WORLDS)
def test_unknown_option_keys_of_mixed_types_are_named(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    err = rejected(env.reset, options={1: 0, "bogus": 0})
    assert "unknown" in str(err)
