"""Issue 3 acceptance, single env: ``gym.make("neuralgym/<World>-v0")`` against the env
contract of ARCHITECTURE.md, for every registered world (a world without its weights
file is skipped). Nothing here depends on the exact numbers of a trained model."""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import neuralgym
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


def make_real(spec: WorldSpec, **kwargs) -> gym.Env:
    try:
        return gym.make(spec.real_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:  # e.g. ale-py / box2d for other worlds
        pytest.skip(f"real env {spec.real_id} needs a package that is not installed: {e}")


def relevant(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings that count: all but DeprecationWarnings raised from third-party modules."""
    out = []
    for w in caught:
        third_party = "neuralgym" not in str(w.filename) and "site-packages" in str(w.filename)
        if issubclass(w.category, DeprecationWarning) and third_party:
            continue
        out.append(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})")
    return out


def human_viewer_or_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    try:
        from neuralgym.common.window import Viewer  # noqa: F401
    except ImportError as e:
        pytest.skip(f"neuralgym.common.window.Viewer is not available yet (being written by another helper): {e}")


def action_list(env: gym.Env, n: int, seed: int) -> list:
    """``n`` valid actions from a private, seeded copy of the env's action space."""
    space = copy.deepcopy(env.action_space)
    space.seed(seed)
    return [space.sample() for _ in range(n)]


# --------------------------------------------------------------- registration
@pytest.mark.parametrize("spec", WORLDS)
def test_ids_registered_with_vector_entry_point(spec: WorldSpec) -> None:
    assert spec.dream_id in gym.registry and spec.real_id in gym.registry
    assert gym.registry[spec.dream_id].vector_entry_point is not None
    assert set(neuralgym.register_worlds()) >= {spec.dream_id, spec.real_id}  # idempotent


# ------------------------------------------------------------- the checkers
@pytest.mark.parametrize("render_mode", ["rgb_array", "human"])
@pytest.mark.parametrize("which", ["dream", "real"])
@pytest.mark.parametrize("spec", WORLDS)
def test_gymnasium_check_env_passes_without_warnings(
    spec: WorldSpec, which: str, render_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # check_env(skip_render_check=False) also builds an env in every declared render mode,
    # "human" included, so the viewer must be importable either way
    human_viewer_or_skip(monkeypatch)
    env_id = spec.dream_id if which == "dream" else spec.real_id
    env = gym.make(env_id, render_mode=render_mode) if which == "dream" else make_real(spec, render_mode=render_mode)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gym_check_env(env.unwrapped, skip_render_check=False)
        assert relevant(caught) == []
    finally:
        env.close()


@pytest.mark.parametrize("which", ["dream", "real"])
@pytest.mark.parametrize("spec", WORLDS)
def test_sb3_check_env_passes_without_warnings(spec: WorldSpec, which: str) -> None:
    env = (
        gym.make(spec.dream_id, render_mode="rgb_array")
        if which == "dream"
        else make_real(spec, render_mode="rgb_array")
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sb3_check_env(env.unwrapped, warn=True, skip_render_check=False)
        if spec.actions.kind == "box" and (
            list(spec.actions.low) != [-1.0] * spec.actions.n or list(spec.actions.high) != [1.0] * spec.actions.n
        ):
            # SB3's advice to rescale a Box to [-1, 1]: a world keeps its source's own action
            # box (CarRacing: steer [-1, 1], gas and brake [0, 1]) so actions mean what they say
            caught = [w for w in caught if "symmetric and normalized Box action space" not in str(w.message)]
        assert relevant(caught) == []
    finally:
        env.close()


# ------------------------------------------------------------------ spaces
@pytest.mark.parametrize("spec", WORLDS)
def test_dream_and_real_share_spaces_and_obs_contract(spec: WorldSpec) -> None:
    dream, real = gym.make(spec.dream_id), make_real(spec)
    try:
        assert dream.observation_space == real.observation_space
        assert dream.action_space == real.action_space
        space = dream.observation_space
        assert isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
        assert len(space.shape) == 3 and space.shape[0] >= 36 and space.shape[1] >= 36 and space.shape[2] in (1, 3)
        assert np.all(space.low == 0) and np.all(space.high == 255)
        for env in (dream, real):
            obs, info = env.reset(seed=0)
            assert isinstance(obs, np.ndarray) and obs.dtype == np.uint8 and obs.shape == space.shape
            assert obs in space
            assert {"drift", "dream_step", "drift_reset"} <= set(info)
            md = env.metadata
            assert isinstance(md["render_fps"], int) and md["render_fps"] > 0
            assert {"rgb_array", "human"} <= set(md["render_modes"])
    finally:
        dream.close()
        real.close()


@pytest.mark.parametrize("spec", WORLDS)
def test_step_returns_contract_types_and_info(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    obs, info = env.reset(seed=1)
    assert info["dream_step"] == 0 and info["drift_reset"] is False
    for t, action in enumerate(action_list(env, 20, seed=1), start=1):
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.dtype == np.uint8 and obs.shape == env.observation_space.shape and obs in env.observation_space
        assert type(reward) is float and np.isfinite(reward)
        assert type(terminated) is bool and type(truncated) is bool
        assert type(info["drift"]) is float and np.isfinite(info["drift"]) and info["drift"] >= 0
        assert type(info["dream_step"]) is int and info["dream_step"] == t
        assert type(info["drift_reset"]) is bool
        if info["drift_reset"]:
            assert truncated and not terminated  # a drift reset is a truncation, never a termination
        if terminated or truncated:
            break


@pytest.mark.parametrize("spec", WORLDS)
def test_observations_are_new_arrays(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=2)
    keep = obs.copy()
    obs[:] = 7  # the agent scribbles on what it got
    frame = env.render()
    channels = keep.shape[2]
    np.testing.assert_array_equal(frame[..., :channels], keep)
    a = env.action_space.sample()
    o1, *_ = env.step(a)
    o1_copy = o1.copy()
    frame = env.render()
    frame[:] = 3
    np.testing.assert_array_equal(o1, o1_copy)


# --------------------------------------------------------------- seeding
@pytest.mark.parametrize("spec", WORLDS)
def test_same_seed_and_actions_give_identical_frames(spec: WorldSpec) -> None:
    a, b = gym.make(spec.dream_id), gym.make(spec.dream_id)  # two instances: no shared hidden state
    actions = action_list(a, 40, seed=3)
    for seed in (0, 11):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        np.testing.assert_array_equal(oa, ob)
        for act in actions:
            ra = a.step(act)
            rb = b.step(act)
            np.testing.assert_array_equal(ra[0], rb[0])
            assert ra[1:4] == rb[1:4] and ra[4]["drift"] == rb[4]["drift"]
            if ra[2] or ra[3]:
                break


@pytest.mark.parametrize("spec", WORLDS)
def test_different_seeds_give_different_starts(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    starts = {env.reset(seed=s)[0].tobytes() for s in range(8)}
    assert len(starts) >= 3, f"8 seeds gave only {len(starts)} distinct start frames"
    # unseeded: random starts (8 draws: a world's start bank may repeat a frame, e.g. Pong's
    # deterministic serve after the same number of no-ops)
    fresh = {gym.make(spec.dream_id).reset()[0].tobytes() for _ in range(8)}
    assert len(fresh) >= 2


# --------------------------------------------------------------- prompting
def real_rollout(spec: WorldSpec, n_frames: int, seed: int) -> tuple[np.ndarray, list]:
    """``n_frames`` consecutive real frames and the ``n_frames - 1`` actions between them."""
    real = make_real(spec)
    obs, _ = real.reset(seed=seed)
    frames, actions = [obs], []
    for act in action_list(real, n_frames - 1, seed=seed):
        obs, _, terminated, truncated, _ = real.step(act)
        assert not (terminated or truncated), "the real episode ended inside the prompt; pick another seed"
        frames.append(obs)
        actions.append(act)
    real.close()
    return np.stack(frames), actions


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames as floats in [0, 1]."""
    return float(np.abs(a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0).mean())


@pytest.mark.parametrize("spec", WORLDS)
def test_reset_from_one_real_frame_starts_there(spec: WorldSpec) -> None:
    real, dream = make_real(spec), gym.make(spec.dream_id)
    obs, _ = real.reset(seed=21)
    for act in action_list(real, 3, seed=21):  # a mid-episode frame, not just a start frame
        obs, *_ = real.step(act)
    start, info = dream.reset(options={"frames": obs[None]})
    assert mad(start, obs) < 8 / 255
    assert info["dream_step"] == 0
    act = dream.action_space.sample()
    nxt_real, *_ = real.step(act)
    nxt_dream, *_ = dream.step(act)
    assert mad(nxt_dream, nxt_real) < 8 / 255  # one step on from a real frame stays near reality
    # a second prompt from a different frame starts there instead
    other, _ = real.reset(seed=22)
    start2, _ = dream.reset(options={"frames": other[None]})
    assert mad(start2, other) < 8 / 255
    real.close()


@pytest.mark.parametrize("n_actions", ["n-1", "n"])
@pytest.mark.parametrize("spec", WORLDS)
def test_prompt_with_1_to_k_frames_and_actions(spec: WorldSpec, n_actions: str) -> None:
    dream = gym.make(spec.dream_id)
    k = dream.unwrapped.context_length
    frames, actions = real_rollout(spec, k + 1, seed=5)  # K+1 frames: the K-frame prompt has an action before it
    for n in range(1, k + 1):
        prompt = frames[-n:]
        acts = actions[len(actions) - (n - 1) :] if n > 1 else []
        if n_actions == "n":
            acts = actions[len(actions) - n :]
        obs, info = dream.reset(seed=0, options={"frames": prompt, "actions": acts})
        assert mad(obs, prompt[-1]) < 8 / 255, f"n={n}"
        assert info["dream_step"] == 0
        obs, reward, terminated, truncated, info = dream.step(dream.action_space.sample())
        assert obs in dream.observation_space and np.isfinite(reward) and info["dream_step"] == 1
    # frames without actions (prompting with any image) works too
    obs, _ = dream.reset(options={"frames": frames[-k:]})
    assert mad(obs, frames[-1]) < 8 / 255


# ----------------------------------------------------------- attributes, kwargs
@pytest.mark.parametrize("spec", WORLDS)
def test_context_length_and_weights_path(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id)
    k = env.get_wrapper_attr("context_length")
    assert type(k) is int and k == spec.context_length >= 1
    assert Path(env.get_wrapper_attr("weights_path")).resolve() == spec.weights_path.resolve()


@pytest.mark.parametrize("spec", WORLDS)
def test_weights_kwarg_loads_another_file(spec: WorldSpec, tmp_path: Path) -> None:
    copy = tmp_path / "copy of world.safetensors"
    shutil.copyfile(spec.weights_path, copy)
    for weights in (str(copy), copy):
        env = gym.make(spec.dream_id, weights=weights)
        assert Path(env.get_wrapper_attr("weights_path")) == copy
    default = gym.make(spec.dream_id)
    np.testing.assert_array_equal(env.reset(seed=4)[0], default.reset(seed=4)[0])
    act = env.action_space.sample()
    np.testing.assert_array_equal(env.step(act)[0], default.step(act)[0])


@pytest.mark.parametrize("spec", WORLDS)
def test_device_cpu_and_auto(spec: WorldSpec) -> None:
    cpu = gym.make(spec.dream_id, device="cpu")
    assert cpu.unwrapped.core.device.type == "cpu"
    auto = gym.make(spec.dream_id, device="auto")
    assert auto.unwrapped.core.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    for env in (cpu, auto):
        env.reset(seed=0)
        assert env.step(env.action_space.sample())[0] in env.observation_space


@pytest.mark.parametrize("spec", WORLDS)
def test_drift_policy_none_reports_drift_but_never_resets(spec: WorldSpec) -> None:
    # threshold 0: every step is "over threshold"; only the mode decides whether it acts
    never = gym.make(spec.dream_id, drift_policy={"mode": "none", "threshold": 0.0, "hysteresis": 1})
    plain_none = gym.make(spec.dream_id, drift_policy="none")
    for env in (never, plain_none):
        env.reset(seed=6)
        for act in action_list(env, 15, seed=6):
            _, _, terminated, truncated, info = env.step(act)
            assert np.isfinite(info["drift"]) and info["drift"] >= 0
            assert info["drift_reset"] is False
            if terminated or truncated:
                env.reset()
    # the control: the same threshold with mode "truncate" does act, as a truncation
    acts = gym.make(spec.dream_id, drift_policy={"mode": "truncate", "threshold": 0.0, "hysteresis": 1})
    acts.reset(seed=6)
    seen = False
    for act in action_list(acts, 10, seed=6):
        _, _, terminated, truncated, info = acts.step(act)
        if info["drift_reset"]:
            assert truncated and not terminated
            seen = True
            break
        if terminated or truncated:
            acts.reset()
    assert seen


@pytest.mark.parametrize("spec", WORLDS)
def test_time_limit_truncates(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id, max_episode_steps=5)
    env.reset(seed=8)
    for t in range(1, 6):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated:
            return  # the termination head ended it first: fine
        assert truncated == (t == 5)


# ------------------------------------------------------------------ render
@pytest.mark.parametrize("spec", WORLDS)
def test_render_rgb_array_is_the_observation_in_rgb(spec: WorldSpec) -> None:
    env = gym.make(spec.dream_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=9)
    for _ in range(2):
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.shape == (*obs.shape[:2], 3)
        np.testing.assert_array_equal(frame, np.repeat(obs, 3, axis=2) if obs.shape[2] == 1 else obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.parametrize("spec", WORLDS)
def test_render_human_headless(spec: WorldSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    human_viewer_or_skip(monkeypatch)
    env = gym.make(spec.dream_id, render_mode="human")
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 10_000}  # no pacing in tests
    obs, _ = env.reset(seed=10)
    assert obs in env.observation_space
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.render() is None
        if terminated or truncated:
            env.reset()
    env.close()
    env.close()  # closing twice is allowed


@pytest.mark.parametrize("spec", WORLDS)
def test_render_human_survives_another_viewer_closing(spec: WorldSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    human_viewer_or_skip(monkeypatch)
    a = gym.make(spec.dream_id, render_mode="human")
    b = gym.make(spec.dream_id, render_mode="human")
    for env in (a, b):
        env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 10_000}
    a.reset(seed=0)
    b.reset(seed=0)
    b.close()  # e.g. gymnasium's check_env closing the probe env it made
    a.step(a.action_space.sample())  # must still draw
    a.close()
