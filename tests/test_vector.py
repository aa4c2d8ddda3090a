"""Issue 3 acceptance, vector env: ``gym.make_vec("neuralgym/<World>-v0", num_envs=N)`` is
the native batched dream (one model call per step), with gymnasium's autoreset modes."""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

import neuralgym  # noqa: F401  (registers the ids)
from neuralgym.dream.vector import DreamVectorEnv
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


def batch(env: VectorEnv, seed: int, steps: int) -> list[np.ndarray]:
    space = gym.vector.utils.batch_space(env.single_action_space, env.num_envs)
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def start_bank(env: VectorEnv) -> np.ndarray:
    return env.unwrapped.core.world.starts  # (S, H, W, C) uint8: the real start frames


def is_start_frame(env: VectorEnv, frame: np.ndarray) -> bool:
    return bool(np.all(start_bank(env) == frame, axis=(1, 2, 3)).any())


def count_model_calls(env) -> list[int]:
    """Wrap the env's model so each forward pass appends its batch size to the returned list."""
    model = env.unwrapped.core.model if hasattr(env, "unwrapped") else env.core.model
    calls: list[int] = []
    inner = model.forward

    def counting(frames, actions, *rest):  # rest: start, and a world with futures' draw
        calls.append(frames.shape[0])
        return inner(frames, actions, *rest)

    model.forward = counting
    return calls


@pytest.mark.parametrize("spec", WORLDS)
def test_make_vec_shapes_metadata_and_info(spec: WorldSpec) -> None:
    env = gym.make_vec(spec.dream_id, num_envs=16)
    assert isinstance(env, VectorEnv) and isinstance(env.unwrapped, DreamVectorEnv)
    assert env.num_envs == 16
    assert isinstance(env.metadata["autoreset_mode"], AutoresetMode)
    assert isinstance(env.metadata["render_fps"], int)
    h, w, c = spec.obs_shape
    assert env.single_observation_space == gym.make(spec.dream_id).observation_space
    assert env.observation_space.shape == (16, h, w, c) and env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (16, h, w, c) and obs.dtype == np.uint8
    for key, kind in (("drift", "f"), ("dream_step", "iu"), ("drift_reset", "b")):
        assert info[key].shape == (16,) and info[key].dtype.kind in kind, key
    assert len({o.tobytes() for o in obs}) >= 3, "16 lanes drew (almost) the same start frame"
    ended = np.zeros(16, bool)
    for t, actions in enumerate(batch(env, 0, 3), start=1):
        obs, reward, terminated, truncated, info = env.step(actions)
        assert obs.shape == (16, h, w, c) and obs.dtype == np.uint8 and obs in env.observation_space
        assert reward.shape == terminated.shape == truncated.shape == (16,)
        assert terminated.dtype == bool and truncated.dtype == bool and np.all(np.isfinite(reward))
        for key, kind in (("drift", "f"), ("dream_step", "iu"), ("drift_reset", "b")):
            assert info[key].shape == (16,) and info[key].dtype.kind in kind, key
        assert np.all(np.isfinite(info["drift"])) and np.all(info["drift"] >= 0)
        assert np.all(info["dream_step"][~ended] == t)  # lanes that never ended count up from their reset
        ended |= terminated | truncated
    assert env.context_length == spec.context_length
    assert Path(env.weights_path).resolve() == spec.weights_path.resolve()
    env.close()


@pytest.mark.parametrize("num_envs", [1, 5])
@pytest.mark.parametrize("spec", WORLDS)
def test_one_batched_model_call_per_step(spec: WorldSpec, num_envs: int) -> None:
    env = gym.make_vec(spec.dream_id, num_envs=num_envs, max_episode_steps=2)  # lanes end and restart
    env.reset(seed=1)
    calls = count_model_calls(env)
    for i, actions in enumerate(batch(env, 1, 6), start=1):
        env.step(actions)
        assert calls == [num_envs] * i


@pytest.mark.parametrize("spec", WORLDS)
def test_episodes_end_under_random_actions(spec: WorldSpec, record_property) -> None:
    """16 lanes x 400 random steps: where random play ends an episode of the real env within
    400 steps (CartPole: ~22), the termination head must fire at least once (the time
    limit alone would not end anything before ``max_episode_steps``)."""
    real = gym.make(spec.real_id)
    real.reset(seed=0)
    real.action_space.seed(0)
    if not any(real.step(real.action_space.sample())[2] for _ in range(400)):
        pytest.skip(f"random play does not end a real {spec.name} episode within 400 steps")
    env = gym.make_vec(spec.dream_id, num_envs=16)
    env.reset(seed=0)
    terminations = truncations = 0
    for actions in batch(env, 0, 400):
        _, _, terminated, truncated, _ = env.step(actions)
        terminations += int(terminated.sum())
        truncations += int(truncated.sum())
    record_property("terminations", terminations)
    record_property("truncations", truncations)
    print(f"\n{spec.key}: {terminations} terminations, {truncations} truncations in 16 x 400 random steps")
    assert terminations >= 1, f"no termination in 16 x 400 random steps ({truncations} truncations)"


@pytest.mark.parametrize("spec", WORLDS)
def test_next_step_autoreset(spec: WorldSpec) -> None:
    n, limit = 6, 3
    env = gym.make_vec(spec.dream_id, num_envs=n, max_episode_steps=limit)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP  # gymnasium's default
    env.reset(seed=2)
    prev_done = np.zeros(n, bool)
    ended = 0
    for actions in batch(env, 2, 3 * limit + 2):
        obs, reward, terminated, truncated, info = env.step(actions)
        for i in np.flatnonzero(prev_done):  # restarted: a fresh start frame and nothing else
            assert reward[i] == 0 and not terminated[i] and not truncated[i]
            assert info["dream_step"][i] == 0 and not info["drift_reset"][i]
            assert is_start_frame(env, obs[i])
        for i in np.flatnonzero(~prev_done):
            assert info["dream_step"][i] >= 1
        prev_done = terminated | truncated
        ended += int(prev_done.sum())
    assert ended >= n  # every lane ended at least once (time limit 3)


@pytest.mark.parametrize("spec", WORLDS)
def test_next_step_reset_ignores_the_action(spec: WorldSpec) -> None:
    n = 4
    envs = [gym.make_vec(spec.dream_id, num_envs=n, max_episode_steps=2) for _ in range(2)]
    for env in envs:
        env.reset(seed=3)
    acts = batch(envs[0], 3, 2)
    outs = [[env.step(a) for a in acts] for env in envs]
    done = outs[0][-1][2] | outs[0][-1][3]
    assert done.any()  # the time limit (2) ends every lane not terminated before
    space = envs[0].single_action_space
    space.seed(3)
    first = np.stack([space.sample() for _ in range(n)])
    other = first.copy()
    while np.array_equal(other, first):
        other = np.stack([space.sample() for _ in range(n)])
    obs_a = envs[0].step(first)[0]
    obs_b = envs[1].step(other)[0]
    np.testing.assert_array_equal(obs_a[done], obs_b[done])  # the reset step's actions do not matter


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("spec", WORLDS)
def test_same_step_autoreset_all_lanes_at_once(spec: WorldSpec, backend: str) -> None:
    n, limit = 3, 3
    env = gym.make_vec(
        spec.dream_id, num_envs=n, max_episode_steps=limit, autoreset_mode=AutoresetMode.SAME_STEP, obs_backend=backend
    )
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    env.reset(seed=4)
    h, w, c = spec.obs_shape
    saw_done = False
    for actions in batch(env, 4, 2 * limit):
        obs, reward, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        if not done.any():
            assert "final_obs" not in info
            continue
        saw_done = True
        final = info["final_obs"]
        assert isinstance(final, np.ndarray) and final.dtype == object and final.shape == (n,)
        np.testing.assert_array_equal(info["_final_obs"], done)
        assert "final_info" in info and np.array_equal(info["_final_info"], done)
        for i in range(n):
            if not done[i]:
                assert final[i] is None
                continue
            f = final[i].cpu().numpy() if backend == "torch" else final[i]
            assert f.shape == (h, w, c) and f.dtype == np.uint8
            o = obs[i].cpu().numpy() if backend == "torch" else obs[i]
            assert is_start_frame(env, o)  # the lane restarted in the same step
    assert saw_done
    # after a same-step reset the next step is an ordinary step of the new episode
    obs, reward, terminated, truncated, info = env.step(batch(env, 5, 1)[0])
    assert not np.any(info["dream_step"] == 0)


@pytest.mark.parametrize("spec", WORLDS)
def test_same_step_autoreset_some_lanes(spec: WorldSpec) -> None:
    n, limit = 4, 3
    env = gym.make_vec(spec.dream_id, num_envs=n, max_episode_steps=limit, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=6)
    acts = batch(env, 6, 8)
    env.step(acts[0])
    mask = np.array([True, False, True, False])
    env.reset(options={"reset_mask": mask})  # lanes 0 and 2 restart: the lanes now end on different steps
    done_steps = []
    for actions in acts[1:]:
        obs, _, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        if done.any():
            done_steps.append(done.copy())
            final = info["final_obs"]
            assert final.shape == (n,) and all((final[i] is None) != done[i] for i in range(n))
    assert any(0 < d.sum() < n for d in done_steps), done_steps


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_same_seed_same_actions_identical(spec: WorldSpec) -> None:
    runs = []
    for _ in range(2):
        env = gym.make_vec(spec.dream_id, num_envs=4, max_episode_steps=7)
        obs, _ = env.reset(seed=7)
        seq = [obs]
        for actions in batch(env, 7, 20):  # crosses autoresets
            obs, reward, terminated, truncated, info = env.step(actions)
            seq += [obs, reward, terminated, truncated, info["drift"]]
        runs.append(seq)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = gym.make_vec(spec.dream_id, num_envs=4)
    assert not np.array_equal(other.reset(seed=8)[0], runs[0][0])


@pytest.mark.parametrize("spec", WORLDS)
def test_torch_backend_gives_the_same_values(spec: WorldSpec) -> None:
    np_env = gym.make_vec(spec.dream_id, num_envs=4, max_episode_steps=4)
    th_env = gym.make_vec(spec.dream_id, num_envs=4, max_episode_steps=4, obs_backend="torch")
    o_np, _ = np_env.reset(seed=9)
    o_th, _ = th_env.reset(seed=9)
    for actions in [None, *batch(np_env, 9, 6)]:
        if actions is not None:
            o_np, r_np, *_ = np_env.step(actions)
            o_th, r_th, *_ = th_env.step(actions)
            np.testing.assert_array_equal(r_np, r_th)
        assert isinstance(o_th, torch.Tensor) and o_th.dtype == torch.uint8
        assert tuple(o_th.shape) == o_np.shape
        np.testing.assert_array_equal(o_th.cpu().numpy(), o_np)


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_kwargs_weights_device_drift(spec: WorldSpec, tmp_path: Path) -> None:
    copy = tmp_path / "w.safetensors"
    shutil.copyfile(spec.weights_path, copy)
    env = gym.make_vec(spec.dream_id, num_envs=3, weights=str(copy), device="cpu")
    assert Path(env.weights_path) == copy and env.device.type == "cpu"
    auto = gym.make_vec(spec.dream_id, num_envs=3, device="auto")
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    never = gym.make_vec(spec.dream_id, num_envs=3, drift_policy={"mode": "none", "threshold": 0.0, "hysteresis": 1})
    always = gym.make_vec(
        spec.dream_id, num_envs=3, drift_policy={"mode": "truncate", "threshold": 0.0, "hysteresis": 1}
    )
    for e in (never, always):
        e.reset(seed=10)
    acts = batch(never, 10, 4)
    fired = False
    for a in acts:
        _, _, _, _, info = never.step(a)
        assert not info["drift_reset"].any() and np.all(np.isfinite(info["drift"])) and np.all(info["drift"] >= 0)
        _, _, terminated, truncated, info2 = always.step(a)
        fired |= bool(info2["drift_reset"].any())
        assert np.all(truncated[info2["drift_reset"]]) and not np.any(terminated[info2["drift_reset"]])
    assert fired
    plain = gym.make_vec(spec.dream_id, num_envs=2, drift_policy="none")
    plain.reset(seed=0)
    assert not plain.step(batch(plain, 0, 1)[0])[4]["drift_reset"].any()


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_prompt_starts_every_lane_there(spec: WorldSpec) -> None:
    real = gym.make(spec.real_id)
    frame, _ = real.reset(seed=12)
    real.close()
    env = gym.make_vec(spec.dream_id, num_envs=3)
    obs, info = env.reset(options={"frames": frame[None]})
    for o in obs:
        assert np.abs(o.astype(float) - frame.astype(float)).mean() / 255 < 8 / 255
    assert np.all(info["dream_step"] == 0)


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_render_rgb_array(spec: WorldSpec) -> None:
    env = gym.make_vec(spec.dream_id, num_envs=2, render_mode="rgb_array")
    obs, _ = env.reset(seed=13)
    frames = env.render()
    assert len(frames) == 2
    for f, o in zip(frames, obs):
        assert f.shape == (*o.shape[:2], 3) and f.dtype == np.uint8
        np.testing.assert_array_equal(f[..., : o.shape[2]], o)


@pytest.mark.parametrize("spec", WORLDS)
def test_vector_returns_new_arrays_every_call(spec: WorldSpec) -> None:
    env = gym.make_vec(spec.dream_id, num_envs=2, max_episode_steps=2)
    outs = [env.reset(seed=14)]
    outs += [env.step(a) for a in batch(env, 14, 3)]  # crosses an autoreset
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            assert not np.shares_memory(a[0], b[0])
            for key in ("drift", "dream_step", "drift_reset"):
                assert not np.shares_memory(a[-1][key], b[-1][key]), key
