"""The drift-reset policy beyond its simplest setting: hysteresis > 1, the ``max_horizon``
cap, re-anchoring onto the nearest real window (``DreamCore.reanchor_lanes``), and the
spec's ``[drift]`` table as the policy's defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import neuralgym  # noqa: F401  (registers the ids)
from neuralgym.dream.core import DreamCore
from neuralgym.world.drift import DriftResetPolicy, DriftSpec
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


def decide_all(policy: DriftResetPolicy, drifts: list[float], dream_steps: list[int] | None = None) -> list[bool]:
    """Run one lane's sequence of drift scores through ``policy``; whether it acted at each step."""
    over = np.zeros(1, np.int64)
    steps = dream_steps or list(range(1, len(drifts) + 1))
    return [bool(policy.decide(np.array([d]), np.array([s]), over)[0]) for d, s in zip(drifts, steps)]


# -------------------------------------------------------------------- the policy
def test_hysteresis_acts_on_the_nth_consecutive_step_over_threshold() -> None:
    policy = DriftResetPolicy("truncate", threshold=1.0, hysteresis=3)
    assert decide_all(policy, [2, 2, 2, 2]) == [False, False, True, True]
    # a step at or under the threshold starts the count again
    assert decide_all(policy, [2, 2, 1, 2, 2, 2]) == [False, False, False, False, False, True]


def test_hysteresis_counts_lanes_apart() -> None:
    policy = DriftResetPolicy("reanchor", threshold=1.0, hysteresis=2)
    over = np.zeros(3, np.int64)
    steps = np.ones(3, np.int64)
    assert policy.decide(np.array([5.0, 0.5, 5.0]), steps, over).tolist() == [False, False, False]
    assert policy.decide(np.array([5.0, 5.0, 0.5]), steps, over).tolist() == [True, False, False]
    assert over.tolist() == [2, 1, 0]


def test_max_horizon_acts_at_that_dream_step_whatever_the_drift() -> None:
    policy = DriftResetPolicy("truncate", threshold=float("inf"), max_horizon=4, hysteresis=2)
    assert decide_all(policy, [0.0] * 6) == [False, False, False, True, True, True]
    # whichever comes first: the horizon, or the hysteresis over the threshold
    both = DriftResetPolicy("truncate", threshold=1.0, max_horizon=10, hysteresis=2)
    assert decide_all(both, [2, 2], [1, 2]) == [False, True]
    assert decide_all(both, [0, 0], [9, 10]) == [False, True]


def test_mode_none_counts_but_never_acts() -> None:
    policy = DriftResetPolicy("none", threshold=0.0, max_horizon=1, hysteresis=1)
    over = np.zeros(2, np.int64)
    assert not policy.decide(np.array([3.0, 3.0]), np.array([5, 5]), over).any()
    assert over.tolist() == [1, 1]


@pytest.mark.parametrize(
    "fields",
    [{"hysteresis": 0}, {"max_horizon": -1}, {"threshold": -1.0}, {"threshold": float("nan")}, {"mode": "explode"}],
)
def test_bad_policies_are_refused(fields: dict) -> None:
    with pytest.raises(ValueError):
        DriftResetPolicy(**fields)


def test_the_spec_table_is_the_policys_defaults() -> None:
    spec = DriftSpec(mode="reanchor", threshold=7.0, threshold_set=True, max_horizon=30, hysteresis=4)
    assert spec.policy == "reanchor"  # the spec file's name for the mode
    assert DriftResetPolicy.from_spec(spec, calibrated=3.0) == DriftResetPolicy("reanchor", 7.0, 30, 4)
    unset = DriftSpec(mode="truncate", max_horizon=30, hysteresis=4)
    assert DriftResetPolicy.from_spec(unset, calibrated=3.0) == DriftResetPolicy("truncate", 3.0, 30, 4)
    assert DriftResetPolicy.resolve({"hysteresis": 5}, unset, 3.0) == DriftResetPolicy("truncate", 3.0, 30, 5)
    assert DriftResetPolicy.resolve("none", spec) == DriftResetPolicy("none", 7.0, 30, 4)


# ------------------------------------------------------------------- in the dream
def never_terminating(core: DreamCore) -> Callable[[], None]:
    """Make the model's termination head say "no" always (so only drift and time limits end episodes)."""
    inner = core.model.forward

    def forward(frames: torch.Tensor, actions: torch.Tensor, *rest: Any, **kw: Any) -> dict[str, torch.Tensor]:
        out = dict(inner(frames, actions, *rest, **kw))  # rest: start, and a world with futures' draw
        out["term_logit"] = torch.full_like(out["term_logit"], -60.0)
        return out

    core.model.forward = forward
    return lambda: setattr(core.model, "forward", inner)


def run_until_drift_reset(env: gym.Env, steps: int) -> list[dict]:
    env.reset(seed=0)
    never_terminating(env.unwrapped.core)
    infos = []
    space = env.action_space
    space.seed(0)
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(space.sample())
        infos.append({**info, "terminated": terminated, "truncated": truncated})
        if terminated or truncated:
            break
    return infos


@pytest.mark.parametrize("spec", WORLDS)
def test_dream_truncates_after_hysteresis_steps(spec: WorldSpec) -> None:
    # threshold 0: every step is over it (drift > 0 always), so hysteresis alone sets the step
    env = gym.make(
        spec.dream_id,
        device="cpu",
        max_episode_steps=50,
        drift_policy={"mode": "truncate", "threshold": 0.0, "hysteresis": 3},
    )
    infos = run_until_drift_reset(env, 10)
    assert len(infos) == 3 and [i["drift_reset"] for i in infos] == [False, False, True]
    assert infos[-1]["truncated"] and not infos[-1]["terminated"] and infos[-1]["dream_step"] == 3


@pytest.mark.parametrize("spec", WORLDS)
def test_dream_truncates_at_max_horizon(spec: WorldSpec) -> None:
    env = gym.make(
        spec.dream_id,
        device="cpu",
        max_episode_steps=50,
        drift_policy={"mode": "truncate", "threshold": float("inf"), "max_horizon": 5},
    )
    infos = run_until_drift_reset(env, 20)
    assert len(infos) == 5 and infos[-1]["drift_reset"] and infos[-1]["truncated"] and infos[-1]["dream_step"] == 5
    assert not any(i["drift_reset"] for i in infos[:-1])


@pytest.mark.parametrize("spec", WORLDS)
def test_dream_reanchors_every_max_horizon_steps_and_goes_on(spec: WorldSpec) -> None:
    env = gym.make(
        spec.dream_id,
        device="cpu",
        max_episode_steps=50,
        drift_policy={"mode": "reanchor", "threshold": float("inf"), "max_horizon": 4},
    )
    infos = run_until_drift_reset(env, 13)
    assert len(infos) == 13 and not any(i["truncated"] or i["terminated"] for i in infos)
    assert [i["drift_reset"] for i in infos] == [t % 4 == 3 for t in range(13)]
    # a re-anchored lane's context is real again: its dream step and drift start over
    assert [i["dream_step"] for i in infos] == [0 if t % 4 == 3 else t % 4 + 1 for t in range(13)]
    assert all(i["drift"] > 0 for i in infos if not i["drift_reset"])


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_lanes_reanchor_apart(spec: WorldSpec) -> None:
    env = gym.make_vec(
        spec.dream_id,
        num_envs=3,
        device="cpu",
        max_episode_steps=50,
        drift_policy={"mode": "reanchor", "threshold": 0.0, "hysteresis": 2},
    )
    env.reset(seed=1)
    core = env.unwrapped.core
    never_terminating(core)
    core.over[:] = [1, 0, 0]  # lane 0 has already been over the threshold once
    actions = np.stack([env.single_action_space.sample() for _ in range(3)])
    _, _, terminated, truncated, info = env.step(actions)
    assert info["drift_reset"].tolist() == [True, False, False] and info["dream_step"].tolist() == [0, 1, 1]
    assert not (terminated | truncated).any()
    _, _, _, _, info = env.step(actions)
    assert info["drift_reset"].tolist() == [False, True, True] and info["dream_step"].tolist() == [1, 0, 0]


# ---------------------------------------------------------------- reanchor_lanes
@pytest.mark.parametrize("spec", WORLDS)
def test_reanchor_lanes_swaps_in_the_nearest_real_window(spec: WorldSpec) -> None:
    core = DreamCore(spec, num_envs=3, device="cpu")
    core.reset(seed=0)
    bank_frames, bank_actions = core._anchor_frames, core._anchor_actions
    assert len(bank_frames) >= 2
    # lane 0: a real window, a little disturbed; lane 2: another window's newest frame only
    core.history.write(torch.tensor([0]), (bank_frames[1] + 0.01).clamp(0, 1)[None])
    core.history.write(torch.tensor([2]), bank_frames[0][-1:].expand_as(bank_frames[0])[None])
    core.dream_step[:] = 7
    core.over[:] = 2
    core.drift_sq[:] = 9.0
    untouched = core.frames[1].clone(), core.actions[1].clone()
    newest = core.frames[[0, 2], -1].clone()
    core.reanchor_lanes(np.array([0, 2]))
    want = torch.cdist(newest.flatten(1), bank_frames[:, -1].flatten(1)).argmin(dim=1).tolist()  # nearest newest frame
    for lane, w in zip((0, 2), want):
        assert torch.equal(core.frames[lane], bank_frames[w]) and torch.equal(core.actions[lane], bank_actions[w])
    # the planted frames are found again: lane 0 is window 1's newest frame disturbed, lane 2 window 0's exactly
    assert torch.equal(core.frames[0, -1], bank_frames[1, -1]) and torch.equal(core.frames[2, -1], bank_frames[0, -1])
    assert torch.equal(core.frames[1], untouched[0]) and torch.equal(core.actions[1], untouched[1])
    assert core.dream_step.tolist() == [0, 7, 0] and core.over.tolist() == [0, 2, 0]
    assert core.drift_sq.tolist() == [0.0, 9.0, 0.0]
    assert not core.needs_reset.any()  # the episodes go on


@pytest.mark.parametrize("spec", WORLDS)
def test_reanchor_lanes_of_no_lanes_changes_nothing(spec: WorldSpec) -> None:
    core = DreamCore(spec, num_envs=2, device="cpu")
    core.reset(seed=0)
    before = core.frames.clone()
    core.dream_step[:] = 3
    core.reanchor_lanes(np.array([], np.int64))
    assert torch.equal(core.frames, before) and core.dream_step.tolist() == [3, 3]
