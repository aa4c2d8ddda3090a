"""The real env through a world's preprocessing: spaces, Gymnasium's checker, and that
the preprocessed frame actually shows what the dynamics depend on (cart and pole)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from neuralgym.dream.real import RealWorldEnv
from neuralgym.world.parse import load_spec
from neuralgym.world.preprocess import preprocess_frame
from neuralgym.world.spec import ENVS_DIR, PreprocessSpec, WorldSpec

SHIPPED = sorted(ENVS_DIR.glob("*.toml"))


@pytest.fixture()
def env() -> RealWorldEnv:
    e = RealWorldEnv("cartpole")
    yield e
    e.close()


def cartpole_frame(env: RealWorldEnv, x: float, theta: float, raw: bool = False) -> np.ndarray:
    """The (raw or preprocessed) frame of CartPole in state (x, 0, theta, 0)."""
    env.source.unwrapped.state = np.array([x, 0.0, theta, 0.0])
    frame = np.asarray(env.source.render())
    return frame if raw else preprocess_frame(frame, env.spec_world.preprocess)


def test_observation_is_uint8_hwc_in_space(env: RealWorldEnv) -> None:
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 1), np.uint8)
    assert env.action_space == gym.spaces.Discrete(2)
    assert env.context_length == 16
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 1) and obs.dtype == np.uint8 and obs in env.observation_space
    assert set(info) >= {"drift", "dream_step", "drift_reset"}
    obs2, reward, terminated, truncated, info = env.step(1)
    assert obs2 in env.observation_space and obs2 is not obs
    assert isinstance(reward, float) and reward == 1.0
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    assert set(info) >= {"drift", "dream_step", "drift_reset"}


@pytest.mark.filterwarnings("ignore:.*alternative render modes")
def test_gymnasium_check_env_passes() -> None:
    env = RealWorldEnv("cartpole", render_mode="rgb_array")
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_same_seed_same_frames(env: RealWorldEnv) -> None:
    def rollout(seed: int) -> np.ndarray:
        frames = [env.reset(seed=seed)[0]]
        for a in [0, 1, 1, 0, 1, 0, 0, 1]:
            frames.append(env.step(a)[0])
        return np.stack(frames)

    a, b, c = rollout(11), rollout(11), rollout(12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_crop_keeps_the_whole_scene(env: RealWorldEnv) -> None:
    """At the extremes of the task (cart at either edge, pole at the failure angle) no
    drawn pixel of the 600x400 render falls outside the spec's crop rows."""
    env.reset(seed=0)
    top, bottom, left, right = env.spec_world.preprocess.crop
    for x in (-2.4, 0.0, 2.4):
        for theta in (-0.2, 0.0, 0.2):
            raw = cartpole_frame(env, x, theta, raw=True)
            drawn = (raw != 255).any(axis=2)
            assert not drawn[:top].any() and not drawn[bottom:].any(), (x, theta)
            assert drawn[top:bottom, left:right].sum() == drawn.sum()


def test_pole_angle_is_visible(env: RealWorldEnv) -> None:
    env.reset(seed=0)
    upright = cartpole_frame(env, 0.0, 0.0)
    small = cartpole_frame(env, 0.0, 0.03)  # under 2 degrees
    tilted = cartpole_frame(env, 0.0, 0.2)
    changed = lambda a, b: int((np.abs(a.astype(int) - b.astype(int)) > 20).sum())  # noqa: E731
    # Thresholds sit well above what squashing the whole 600x400 render to 64x64 gives
    # (about 53, 7 and 54 changed pixels): the crop must make the pole a real object.
    assert changed(upright, tilted) >= 80
    assert changed(upright, small) >= 10  # even a tilt under 2 degrees moves pixels
    left, right = cartpole_frame(env, 0.0, -0.1), cartpole_frame(env, 0.0, 0.1)
    assert changed(left, right) >= 80
    # a tilt to the right moves dark pixels to the right half of the frame
    mass = lambda f: (255 - f[..., 0].astype(int)).sum(axis=0)  # noqa: E731
    cols = np.arange(upright.shape[1])
    assert (mass(right) * cols).sum() / mass(right).sum() > (mass(left) * cols).sum() / mass(left).sum()


def test_cart_position_is_visible(env: RealWorldEnv) -> None:
    env.reset(seed=0)
    a, b = cartpole_frame(env, -1.0, 0.0), cartpole_frame(env, 1.0, 0.0)
    assert (np.abs(a.astype(int) - b.astype(int)) > 50).sum() >= 40


@pytest.mark.parametrize(
    ("pp", "shape"),
    [
        (PreprocessSpec(crop=(164, 324, 0, 600), size=(64, 64), grayscale=True), (64, 64, 1)),
        (PreprocessSpec(crop=(164, 324, 0, 600), size=(64, 64), grayscale=False), (64, 64, 3)),
        (PreprocessSpec(crop=None, size=(48, 80), grayscale=True), (48, 80, 1)),
        (PreprocessSpec(crop=(10, 110, 20, 220), size=(40, 36), grayscale=False), (40, 36, 3)),
    ],
)
def test_preprocess_shapes(pp: PreprocessSpec, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)
    out = preprocess_frame(frame, pp)
    assert out.shape == shape and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]


def test_preprocess_keeps_colour_and_averages_area() -> None:
    frame = np.zeros((80, 80, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)  # left half red
    rgb = preprocess_frame(frame, PreprocessSpec(size=(40, 40)))
    assert tuple(rgb[5, 5]) == (255, 0, 0) and tuple(rgb[5, 35]) == (0, 0, 0)
    gray = preprocess_frame(frame, PreprocessSpec(size=(40, 40), grayscale=True))
    assert 0 < gray[5, 5, 0] < 255 and gray[5, 35, 0] == 0
    frame[:, 41] = 255  # a one-pixel line survives a 2x downscale as an intermediate value
    half = preprocess_frame(frame, PreprocessSpec(size=(40, 40)))
    assert 0 < half[5, 20, 1] < 255


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8)])
def test_preprocess_rejects_non_rgb(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="RGB"):
        preprocess_frame(bad, PreprocessSpec())


def test_rgb_world_variant(cartpole_spec: WorldSpec) -> None:
    spec = dataclasses.replace(cartpole_spec, preprocess=dataclasses.replace(cartpole_spec.preprocess, grayscale=False))
    env = RealWorldEnv(spec)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (64, 64, 3) and obs in env.observation_space
        # the pole is coloured: some pixel has unequal channels
        assert (obs.astype(int).max(axis=2) - obs.astype(int).min(axis=2)).max() > 30
    finally:
        env.close()


def test_bad_actions_raise_and_env_keeps_working(env: RealWorldEnv) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        env.step(2)
    with pytest.raises(TypeError):
        env.step("left")
    with pytest.raises(ValueError):
        env.step(np.array([0, 1]))
    obs, *_ = env.step(np.int64(1))
    assert obs.shape == (64, 64, 1)


def test_step_before_reset_raises() -> None:
    env = RealWorldEnv("cartpole")
    try:
        with pytest.raises((ValueError, TypeError, RuntimeError), match="reset"):
            env.step(0)
    finally:
        env.close()


def test_truncates_at_the_spec_limit(cartpole_spec: WorldSpec) -> None:
    spec = dataclasses.replace(cartpole_spec, max_episode_steps=5)
    env = RealWorldEnv(spec)
    try:
        env.reset(seed=0)
        env.source.unwrapped.state = np.zeros(4)  # balanced: alternating pushes cannot fail in 5 steps
        flags = [env.step(t % 2)[3] for t in range(5)]
        assert flags == [False, False, False, False, True]
    finally:
        env.close()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_world_has_a_working_real_env(path: Path) -> None:
    spec = load_spec(path)
    env = RealWorldEnv(spec)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == spec.obs_shape and obs in env.observation_space
        env.action_space.seed(0)
        obs, reward, *_ = env.step(env.action_space.sample())
        assert obs in env.observation_space and np.isfinite(reward)
    finally:
        env.close()
