"""Every face of a dream: bad constructor arguments, seeds, reset options and weights files
are refused with a clear error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import neuralgym
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import WeightsError

from hardening import HYPO, REJECT, bad_weight_files, rejected, reset_options, shared_dream
from worlds import WORLDS


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
    for make in (
        lambda: gym.make(spec.dream_id, device=device),
        lambda: gym.make_vec(spec.dream_id, num_envs=2, device=device),
        lambda: neuralgym.make_sb3_vec_env(spec.dream_id, 2, device=device),
    ):
        err = rejected(make)
        if device in ("cuda", "cuda:0"):
            assert "cuda" in str(err).lower()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"temperature": "hot"},
        {"drift_policy": "bogus"},
        {"drift_policy": 5},
        {"drift_policy": {"mode": "explode"}},
        {"drift_policy": {"bogus": 1}},
        {"drift_policy": {"threshold": -1.0}},
        {"drift_policy": {"hysteresis": 0}},
        {"render_mode": "bogus"},
    ],
    ids=repr,
)
@pytest.mark.filterwarnings("ignore:.*render_mode='bogus'.*:UserWarning")  # gymnasium's own note before ours raises
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_constructor_arguments(spec: WorldSpec, kwargs: dict[str, Any]) -> None:
    rejected(gym.make, spec.dream_id, **kwargs)
    rejected(gym.make_vec, spec.dream_id, num_envs=2, **kwargs)
    if "render_mode" not in kwargs:
        rejected(neuralgym.make_sb3_vec_env, spec.dream_id, 2, **kwargs)


@pytest.mark.parametrize("limit", [0, -1])
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_max_episode_steps(spec: WorldSpec, limit: int) -> None:
    gym.make_vec(spec.dream_id, num_envs=2).close()  # the world itself loads: only the limit is at fault
    err = rejected(gym.make_vec, spec.dream_id, num_envs=2, max_episode_steps=limit)
    assert "max_episode_steps" in str(err)


@pytest.mark.parametrize("spec", WORLDS)
def test_bad_weight_files_raise_value_error_naming_the_file(spec: WorldSpec, tmp_path: Path) -> None:
    files = bad_weight_files(spec, tmp_path)
    for name, path in files.items():
        for make in (lambda path=path: gym.make(spec.dream_id, weights=str(path)),):
            err = rejected(make, types=(ValueError,))
            assert isinstance(err, WeightsError), (name, err)
            assert str(path) in str(err), f"{name}: the message does not name the file: {err}"
    # the vector and SB3 faces raise the same
    for make in (
        lambda p: gym.make_vec(spec.dream_id, num_envs=2, weights=p),
        lambda p: neuralgym.make_sb3_vec_env(spec.dream_id, 2, weights=p),
    ):
        for name in ("truncated", "another world", "config shapes mismatch"):
            err = rejected(make, str(files[name]), types=(WeightsError,))
            assert str(files[name]) in str(err)
    rejected(gym.make, spec.dream_id, weights=123, types=(TypeError,))
    # and the good file still loads after all that
    assert gym.make(spec.dream_id).reset(seed=0)[0] is not None


@pytest.mark.parametrize("spec", WORLDS)
def test_unknown_option_keys_of_mixed_types_are_named(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    err = rejected(env.reset, options={1: 0, "bogus": 0})
    assert "unknown" in str(err)
