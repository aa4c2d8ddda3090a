"""The one-lane Gymnasium env (``gym.make``) refuses bad input and survives its own failures."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given

import neuralgym
from neuralgym.dream.env import WorldModelEnv
from neuralgym.world.spaces import action_space_for, validate_action
from neuralgym.world.spec import WorldSpec

from hardening import (
    HYPO,
    REJECT,
    any_action,
    bad_action_cases,
    bad_options,
    discrete_action_is_valid,
    force_termination,
    nan_outputs,
    noop_batch,
    option_cases,
    rejected,
    shared_dream,
    step_on,
    twin_step,
    valid_actions,
)
from worlds import WORLDS


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
    for bad in (
        None,
        "ab",
        ["0.5", "1"],
        [True, False],
        [0.5],
        [[0.5, 1]],
        [np.nan, 1],
        [0, 3],
        [-2, 1],
        [0, None],
        {},
    ):
        rejected(validate_action, space, bad)
    from neuralgym.world.spaces import validate_action_batch

    np.testing.assert_array_equal(
        validate_action_batch(space, [[0, 1], [1, 2]], 2), np.array([[0, 1], [1, 2]], np.float32)
    )
    for bad in (
        None,
        [[0, 1]],
        [[0, 1], [1, 3]],
        [[0, 1], [np.inf, 1]],
        np.ones((2, 2), bool),
        [["a", "b"], ["c", "d"]],
    ):
        rejected(validate_action_batch, space, bad, 2)


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


@pytest.mark.parametrize("spec", WORLDS)
def test_nan_log_err_still_gives_finite_drift(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    inner = env.unwrapped.core.model.forward

    def nan_err(frames, actions, *rest):
        out = dict(inner(frames, actions, *rest))
        out["log_err"] = torch.full_like(out["log_err"], float("nan"))
        return out

    env.unwrapped.core.model.forward = nan_err
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert math.isfinite(info["drift"]) and math.isfinite(reward)


@pytest.mark.parametrize("value, expected", [(1.5, 255), (-0.5, 0)])
@pytest.mark.parametrize("spec", WORLDS)
def test_out_of_range_frames_are_clamped(spec: WorldSpec, value: float, expected: int) -> None:
    env = gym.make(spec.dream_id)
    env.reset(seed=0)
    inner = env.unwrapped.core.model.forward

    def out_of_range(frames, actions, *rest):
        out = dict(inner(frames, actions, *rest))
        out["frame"] = torch.full_like(out["frame"], value)
        return out

    env.unwrapped.core.model.forward = out_of_range
    obs, *_ = env.step(env.action_space.sample())
    assert np.all(obs == expected)
