"""The vector env (``gym.make_vec``) refuses bad batches and options, and a broken lane stays alone."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuralgym.world.spaces import action_space_for
from neuralgym.world.spec import WorldSpec

from hardening import (
    BAD_BATCHES,
    HYPO,
    REJECT,
    _shared_vec,
    bad_options,
    discrete_batch_is_valid,
    noop_batch,
    option_cases,
    rejected,
    valid_actions,
)
from worlds import WORLDS


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
    bad = (
        [n if v == "n" else v for v in BAD_BATCHES[name]] if name == "too big" else BAD_BATCHES[name]
    )  # one past the last action
    rejected(a.step, bad)
    for act in acts[2:]:
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(ra[4]["dream_step"], rb[4]["dream_step"])


@pytest.mark.parametrize("spec", WORLDS)
@HYPO
@given(
    batch=st.one_of(
        hnp.arrays(hnp.integer_dtypes(), st.sampled_from([(3,), (3, 1), (2,), (4,)]), elements=st.integers(-1, 2)),
        hnp.arrays(
            hnp.floating_dtypes(), st.sampled_from([(3,), (3, 1)]), elements=st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0])
        ),
        hnp.arrays(
            st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
            st.one_of(st.just((3,)), st.just((3, 1)), hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)),
        ),
    )
)
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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"obs_backend": "jax"},
        {"autoreset_mode": "bogus"},
        {"autoreset_mode": AutoresetMode.DISABLED},
        {"render_mode": "human"},
    ],
    ids=repr,
)
@pytest.mark.parametrize("spec", WORLDS)
def test_bad_vector_arguments(spec: WorldSpec, kwargs: dict[str, Any]) -> None:
    rejected(gym.make_vec, spec.dream_id, num_envs=2, **kwargs)


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_lanes_never_reset_cannot_step(spec: WorldSpec) -> None:
    vec = gym.make_vec(spec.dream_id, num_envs=3)
    vec.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    rejected(vec.step, noop_batch(spec, 3), types=(ValueError,))
    vec.reset(seed=0)
    assert vec.step(noop_batch(spec, 3))[0].shape[0] == 3


@pytest.mark.parametrize("broken", ["frame", "reward", "term_logit", "all"])
@pytest.mark.parametrize("spec", WORLDS)
def test_nonfinite_lane_is_truncated_alone(spec: WorldSpec, broken: str) -> None:
    a, b = (gym.make_vec(spec.dream_id, num_envs=3) for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    inner = a.unwrapped.core.model.forward

    def lane1_broken(frames, actions, *rest):
        out = {k: v.clone() for k, v in inner(frames, actions, *rest).items()}
        for key in ["frame", "reward", "term_logit"] if broken == "all" else [broken]:
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
