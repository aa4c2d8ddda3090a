"""One engine behind every face: with the same seed and actions, the Gymnasium env, the
Gymnasium vector env (one lane) and the SB3 VecEnv (one lane) dream the same frames,
rewards and info; and the real env reports the dream's info keys."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import neuralgym
from neuralgym.dream.info import INFO_KEYS
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


@pytest.mark.parametrize("spec", WORLDS)
def test_single_vector_and_sb3_faces_dream_alike(spec: WorldSpec) -> None:
    kw = {"device": "cpu", "drift_policy": {"mode": "truncate", "threshold": 0.0, "hysteresis": 6}}
    single = gym.make(spec.dream_id, **kw)
    vector = gym.make_vec(spec.dream_id, num_envs=1, **kw)
    sb3 = neuralgym.make_sb3_vec_env(spec.dream_id, 1, seed=11, **kw)
    first = [single.reset(seed=11)[0], vector.reset(seed=11)[0][0], sb3.reset()[0]]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[0], first[2])
    space = single.action_space
    space.seed(0)
    for _ in range(12):  # hysteresis 6 at threshold 0: a drift reset at step 6 at the latest
        action = space.sample()
        o1, r1, te1, tr1, i1 = single.step(action)
        o2, r2, te2, tr2, i2 = vector.step(np.stack([action]))
        o3, r3, d3, i3 = sb3.step(np.stack([action]))
        np.testing.assert_array_equal(o1, o2[0])
        assert r1 == pytest.approx(r2[0]) == pytest.approx(r3[0]) and te1 == te2[0] and tr1 == tr2[0]
        assert {k: i1[k] for k in INFO_KEYS} == {k: i2[k][0] for k in INFO_KEYS} == {k: i3[0][k] for k in INFO_KEYS}
        if te1 or tr1:  # the SB3 face has reset the lane already: its last frame is the terminal observation
            np.testing.assert_array_equal(o1, i3[0]["terminal_observation"])
            assert d3[0] and tr1 == i3[0]["TimeLimit.truncated"]
            break
        np.testing.assert_array_equal(o1, o3[0])


@pytest.mark.parametrize("spec", WORLDS)
def test_real_env_reports_the_dreams_info_keys(spec: WorldSpec) -> None:
    env = gym.make(spec.real_id)
    _, info = env.reset(seed=0)
    assert set(info) == set(INFO_KEYS) and info["drift_step"] == 0.0 and info["dream_step"] == 0
    *_, info = env.step(env.action_space.sample())
    assert set(info) == set(INFO_KEYS) and info["drift"] == 0.0 and info["drift_reset"] is False
    dream = gym.make(spec.dream_id, device="cpu")
    _, dream_info = dream.reset(seed=0)
    assert {k: type(v) for k, v in info.items()} == {k: type(dream_info[k]) for k in INFO_KEYS}
