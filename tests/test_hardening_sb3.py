"""The SB3 VecEnv (``neuralgym.make_sb3_vec_env``) refuses bad actions, options and ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import neuralgym
from neuralgym.world.spaces import action_space_for
from neuralgym.world.spec import WorldSpec

from hardening import nan_outputs, noop_batch, rejected
from worlds import WORLDS


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


def test_unknown_ids_and_n_envs_for_sb3() -> None:
    rejected(neuralgym.make_sb3_vec_env, "neuralgym/NoSuchWorld-v0", 2)


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
