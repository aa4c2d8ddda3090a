"""Issue 3 acceptance, SB3 face: ``neuralgym.make_sb3_vec_env(env_id, n)`` is one batched
dream behind SB3's ``VecEnv`` API, with same-step resets that PPO can bootstrap through."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecMonitor

import neuralgym
from neuralgym.dream.sb3 import DreamSB3VecEnv
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


def actions_for(env: VecEnv, seed: int, steps: int) -> list[np.ndarray]:
    space = gym.vector.utils.batch_space(env.action_space, env.num_envs)
    space.seed(seed)
    return [np.asarray(space.sample()) for _ in range(steps)]


def is_start_frame(env: DreamSB3VecEnv, frame: np.ndarray) -> bool:
    return bool(np.all(env.core.world.starts == frame, axis=(1, 2, 3)).any())


@pytest.mark.parametrize("spec", WORLDS)
def test_make_sb3_vec_env_is_one_batched_dream(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 4)
    assert isinstance(env, VecEnv) and isinstance(env, DreamSB3VecEnv)
    assert env.num_envs == 4 and env.core.num_envs == 4  # one core with 4 lanes, not 4 envs
    dream = gym.make(spec.dream_id)
    assert env.observation_space == dream.observation_space and env.action_space == dream.action_space
    obs = env.reset()
    assert isinstance(obs, np.ndarray) and obs.shape == (4, *spec.obs_shape) and obs.dtype == np.uint8
    calls = []
    inner = env.core.model.forward
    env.core.model.forward = lambda f, a, *rest: (calls.append(f.shape[0]), inner(f, a, *rest))[1]
    for acts in actions_for(env, 0, 3):
        obs, rewards, dones, infos = env.step(acts)
        assert obs.shape == (4, *spec.obs_shape) and obs.dtype == np.uint8
        assert rewards.shape == (4,) and rewards.dtype == np.float32 and np.all(np.isfinite(rewards))
        assert dones.shape == (4,) and dones.dtype == bool
        assert len(infos) == 4 and all({"drift", "dream_step", "drift_reset"} <= set(i) for i in infos)
    assert calls == [4, 4, 4]
    assert env.get_attr("context_length") == [spec.context_length] * 4


@pytest.mark.parametrize("spec", WORLDS)
def test_time_limit_truncation_gives_terminal_observation(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 4, seed=0, max_episode_steps=5)
    obs = env.reset()
    truncated_seen = 0
    for t, acts in enumerate(actions_for(env, 0, 5), start=1):
        prev = obs
        obs, rewards, dones, infos = env.step(acts)
        for i in range(4):
            if not dones[i]:
                assert "terminal_observation" not in infos[i]
                continue
            term = infos[i]["terminal_observation"]
            assert term.shape == spec.obs_shape and term.dtype == np.uint8
            assert "TimeLimit.truncated" in infos[i]
            assert is_start_frame(env, obs[i])  # same-step reset: obs is already the next episode's
            if t == 5 and infos[i]["TimeLimit.truncated"]:
                truncated_seen += 1
        assert prev.shape == obs.shape
    assert truncated_seen >= 1  # at step 5 every lane not terminated before is truncated


@pytest.mark.parametrize("spec", WORLDS)
def test_termination_is_not_a_time_limit_truncation(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 3, seed=1)
    env.reset()
    model = env.core.model
    inner = model.forward

    def always_terminate(frames, actions, *rest):
        out = dict(inner(frames, actions, *rest))
        out["term_logit"] = torch.full_like(out["term_logit"], 60.0)  # p(terminate) ~ 1
        return out

    model.forward = always_terminate
    obs, rewards, dones, infos = env.step(actions_for(env, 1, 1)[0])
    assert dones.all()
    for i in range(3):
        assert infos[i]["TimeLimit.truncated"] is False
        assert infos[i]["terminal_observation"].shape == spec.obs_shape
    model.forward = inner
    obs, rewards, dones, infos = env.step(actions_for(env, 2, 1)[0])  # the lanes restarted and run on
    assert obs.shape == (3, *spec.obs_shape)


@pytest.mark.parametrize("spec", WORLDS)
def test_seeded_sb3_env_is_deterministic(spec: WorldSpec) -> None:
    runs = []
    for _ in range(2):
        env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=5, max_episode_steps=4)
        seq = [env.reset()]
        for acts in actions_for(env, 5, 10):
            obs, rew, dones, _ = env.step(acts)
            seq += [obs, rew, dones]
        runs.append(seq)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", WORLDS)
def test_set_options_prompts_the_next_reset(spec: WorldSpec) -> None:
    real = gym.make(spec.real_id)
    frame, _ = real.reset(seed=3)
    real.close()
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=0)
    env.set_options([{"frames": frame[None]}, {}])
    obs = env.reset()
    np.testing.assert_array_equal(obs[0], frame)
    assert is_start_frame(env, obs[1])
    obs = env.reset()  # options apply once
    assert is_start_frame(env, obs[0])


@pytest.mark.parametrize("spec", WORLDS)
def test_works_under_vec_monitor_and_frame_stack(spec: WorldSpec) -> None:
    base = neuralgym.make_sb3_vec_env(spec.dream_id, 4, seed=2, max_episode_steps=5)
    env = VecFrameStack(VecMonitor(base), n_stack=4)
    h, w, c = spec.obs_shape
    obs = env.reset()
    assert obs.shape == (4, h, w, 4 * c) and obs.dtype == np.uint8
    episodes = []
    for acts in actions_for(base, 2, 6):
        obs, rewards, dones, infos = env.step(acts)
        assert obs.shape == (4, h, w, 4 * c)
        for i in np.flatnonzero(dones):
            assert infos[i]["terminal_observation"].shape == (h, w, 4 * c)
            episodes.append(infos[i]["episode"])
    assert episodes and all(1 <= e["l"] <= 5 and np.isfinite(e["r"]) for e in episodes)
    env.close()


@pytest.mark.parametrize("spec", WORLDS)
def test_ppo_cnn_policy_learns_in_the_dream(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 4, seed=0)
    model = PPO("CnnPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(256)
    assert model.num_timesteps >= 256
    # the agent trained in the dream runs unchanged in the real env
    real = neuralgym.make_sb3_vec_env(spec.real_id, 2, seed=0)
    obs = real.reset()
    for _ in range(3):
        actions, _ = model.predict(obs, deterministic=True)
        obs, rewards, dones, infos = real.step(actions)
        assert obs.shape == (2, *spec.obs_shape)
    real.close()


@pytest.mark.parametrize("spec", WORLDS)
def test_make_sb3_vec_env_for_the_real_id(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.real_id, 2, seed=1, max_episode_steps=5)
    assert isinstance(env, DummyVecEnv) and env.num_envs == 2
    assert env.observation_space == gym.make(spec.dream_id).observation_space
    obs = env.reset()
    assert obs.shape == (2, *spec.obs_shape) and obs.dtype == np.uint8
    done_seen = False
    for acts in actions_for(env, 1, 5):
        obs, rewards, dones, infos = env.step(acts)
        for i in np.flatnonzero(dones):
            done_seen = True
            assert "terminal_observation" in infos[i] and "TimeLimit.truncated" in infos[i]
    assert done_seen
    env.close()


@pytest.mark.parametrize("spec", WORLDS)
def test_sb3_render_rgb_array(spec: WorldSpec) -> None:
    env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=0, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    env.reset()
    images = env.get_images()
    assert len(images) == 2 and all(im.shape == (*spec.obs_shape[:2], 3) and im.dtype == np.uint8 for im in images)
    tiled = env.render()
    assert tiled.ndim == 3 and tiled.shape[2] == 3


@pytest.mark.parametrize("spec", WORLDS)
def test_off_policy_algorithm_runs_in_the_dream(spec: WorldSpec) -> None:
    """DQN for a discrete world, SAC for a continuous one: trained a little in the dream
    (latent observations, replay buffer and all), then run unchanged in the real env."""
    from stable_baselines3 import DQN, SAC

    env = neuralgym.make_sb3_vec_env(spec.dream_id, 2, seed=0, obs="latent")
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    algo = DQN if discrete else SAC
    model = algo(
        "MlpPolicy",
        env,
        learning_starts=32,
        batch_size=16,
        buffer_size=1000,
        train_freq=4,
        seed=0,
        device="cpu",
        verbose=0,
        policy_kwargs=dict(net_arch=[32]),
    )
    model.learn(128)
    assert model.num_timesteps >= 128 and model.replay_buffer.size() > 0
    real = neuralgym.make_sb3_vec_env(spec.real_id, 1, seed=0, obs="latent")
    obs = real.reset()
    for _ in range(3):
        actions, _ = model.predict(obs, deterministic=True)
        assert real.action_space.contains(actions[0])
        obs, *_ = real.step(actions)
    real.close()
    env.close()


def test_latent_mirror_pairs_the_history_with_its_mirror_image_in_dream_and_reality(cartpole_spec: WorldSpec) -> None:
    """``make_sb3_vec_env(..., latent_mirror=True)``: 2 x LATENT_DIMS numbers, the same pipeline
    in the dream and the real env; refused for pixels."""
    from neuralgym.dream.latent import LATENT_DIMS

    dream = neuralgym.make_sb3_vec_env(
        cartpole_spec.dream_id, 2, seed=0, obs="latent", latent_mirror=True, device="cpu"
    )
    real = neuralgym.make_sb3_vec_env(cartpole_spec.real_id, 1, seed=0, obs="latent", latent_mirror=True, device="cpu")
    assert dream.observation_space.shape == real.observation_space.shape == (2 * LATENT_DIMS,)
    first = real.reset()
    assert dream.reset().shape == (2, 2 * LATENT_DIMS) and first.shape == (1, 2 * LATENT_DIMS)
    # a fresh episode repeats one frame: its mirror image is a different scene, not the same numbers
    assert not np.allclose(first[0, :LATENT_DIMS], first[0, LATENT_DIMS:])
    dream.close()
    real.close()
    with pytest.raises(ValueError, match="latent_mirror applies to obs='latent' only"):
        neuralgym.make_sb3_vec_env(cartpole_spec.real_id, 1, obs="pixels", latent_mirror=True)


def test_latent_encoder_projects_on_principal_axes(cartpole_spec: WorldSpec) -> None:
    """The agents' latent: LATENT_DIMS decorrelated, unit-spread numbers on the world's real
    contexts, the same axes every time the world is loaded; dims=0 keeps every feature."""
    from neuralgym.dream.latent import LATENT_DIMS, LatentEncoder

    enc = LatentEncoder(cartpole_spec)
    assert enc.dim == LATENT_DIMS and enc.observation_space.shape == (LATENT_DIMS,)
    w = enc.world
    frames = torch.from_numpy(w.anchor_frames).permute(0, 1, 4, 2, 3).float().div(255.0)
    z = enc(frames, torch.from_numpy(w.anchor_actions))
    assert z.shape == (len(frames), LATENT_DIMS) and z.dtype == np.float32
    assert 0.5 < float(z.std(axis=0).mean()) < 1.5  # standardised on these contexts (and the starts)
    corr = np.corrcoef(z.T)[~np.eye(LATENT_DIMS, dtype=bool)]
    assert np.abs(corr).mean() < 0.2  # principal components: (nearly) uncorrelated
    again = LatentEncoder(cartpole_spec, world=w)
    np.testing.assert_array_equal(again(frames[:4], torch.from_numpy(w.anchor_actions[:4])), z[:4])
    full = LatentEncoder(cartpole_spec, world=w, dims=0)
    assert full.dim == 18 * w.model.config.coarse_width and full.axes is None
    with pytest.raises(ValueError, match="dims must be an int >= 0"):
        LatentEncoder(cartpole_spec, world=w, dims=-1)
    from dataclasses import replace

    few = replace(w, starts=w.starts[:10], anchor_frames=w.anchor_frames[:5], anchor_actions=w.anchor_actions[:5])
    with pytest.raises(ValueError, match="need more than 32 real contexts.*it has 15"):
        LatentEncoder(cartpole_spec, world=few)
    assert LatentEncoder(cartpole_spec, world=few, dims=0).dim == full.dim


def test_anchor_starts_begin_dreams_mid_motion_and_the_latent_sees_it(cartpole_spec: WorldSpec) -> None:
    """anchor_starts=1: every episode starts from a real window of the anchor bank (not a
    padded start frame), and the latent wrapper's history is that window, in the SB3 VecEnv
    and in the one-lane gym env alike; the real id ignores the option."""
    import gymnasium as gym

    env = neuralgym.make_sb3_vec_env(cartpole_spec.dream_id, 4, seed=3, obs="latent", device="cpu", anchor_starts=1.0)
    z = env.reset()
    core = env.venv.core
    bank = core._anchor_frames.flatten(1)
    for lane in range(4):  # each lane's context is one whole anchor window
        assert (bank == core.frames[lane].flatten()).all(dim=1).any()
    assert float((core.frames[:, -1] - core.frames[:, 0]).abs().max()) > 0  # the frames move: mid-motion
    assert torch.equal(env._frames, core.frames) and torch.equal(env._hist_actions, core.actions)
    np.testing.assert_array_equal(z, env.encoder(core.frames, core.actions))
    for _ in range(60):  # through terminations and autoresets the wrapper keeps the dream's context
        env.step(np.random.default_rng(0).integers(0, 2, 4))
        assert torch.equal(env._frames, core.frames) and torch.equal(env._hist_actions, core.actions)
    env.close()

    plain = neuralgym.make_sb3_vec_env(cartpole_spec.dream_id, 2, seed=3, obs="latent", device="cpu")
    plain.reset()
    assert float((plain.venv.core.frames[:, -1] - plain.venv.core.frames[:, 0]).abs().max()) == 0  # padded start frame

    from neuralgym.dream.latent import LatentObservation

    one = LatentObservation(gym.make(cartpole_spec.dream_id, device="cpu", anchor_starts=1.0))
    z1, _ = one.reset(seed=1)
    c = one.env.unwrapped.core
    np.testing.assert_array_equal(z1, one.encoder(c.frames, c.actions)[0])
    real = neuralgym.make_sb3_vec_env(cartpole_spec.real_id, 1, seed=0, obs="latent", device="cpu", anchor_starts=1.0)
    assert real.reset().shape == (1, z.shape[1])
    real.close()

    for bad in (1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="anchor_starts must be a number in \\[0, 1\\]"):
            neuralgym.make_sb3_vec_env(cartpole_spec.dream_id, 1, device="cpu", anchor_starts=bad)
