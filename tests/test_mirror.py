"""Mirror symmetry: the mirrored history's latent, and a policy symmetric by construction."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import neuralgym
from neuralgym.dream.latent import LATENT_DIMS, LatentEncoder
from neuralgym.dream.mirror import MirrorSymmetricPolicy, action_mirror, mirror_codes, mirror_frames
from neuralgym.world.catalog import get_spec
from neuralgym.world.spec import WorldSpec


def test_a_mirrored_cartpole_is_cartpole_with_the_pushes_swapped() -> None:
    """The premise, pixel-exact: the real frame of state -s is the frame of s flipped."""
    env = gym.make("neuralgym/CartPole-real-v0")
    env.reset(seed=0)
    real = env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(5):
        state = rng.uniform([-2.0, -1.0, -0.2, -1.0], [2.0, 1.0, 0.2, 1.0])
        real.source.unwrapped.state = state
        frame = real._frame(state)
        real.source.unwrapped.state = -state
        np.testing.assert_array_equal(real._frame(-state)[:, ::-1], frame)
    env.close()


def test_mirror_helpers_and_world_without_symmetry(cartpole_spec: WorldSpec) -> None:
    frames = torch.arange(6.0).view(1, 1, 1, 2, 3)
    assert mirror_frames(frames)[0, 0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert mirror_codes(codes, action_mirror(cartpole_spec)).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="declares no mirror symmetry"):
        LatentEncoder(get_spec("pong"), mirror=True)


def test_the_mirror_latent_is_the_pair_of_a_history_and_its_mirror_image(cartpole_spec: WorldSpec) -> None:
    plain = LatentEncoder(cartpole_spec)
    pair = LatentEncoder(cartpole_spec, world=plain.world, mirror=True)
    assert pair.dim == 2 * LATENT_DIMS and pair.observation_space.shape == (2 * LATENT_DIMS,)
    w = plain.world
    frames = torch.from_numpy(w.anchor_frames[:6]).permute(0, 1, 4, 2, 3).float().div(255.0)
    actions = torch.from_numpy(w.anchor_actions[:6])
    z = pair(frames, actions)
    np.testing.assert_allclose(z[:, :LATENT_DIMS], plain(frames, actions), atol=1e-5)
    mirrored = plain(mirror_frames(frames), mirror_codes(actions, action_mirror(cartpole_spec)))
    np.testing.assert_allclose(z[:, LATENT_DIMS:], mirrored, atol=1e-5)
    # the mirror image of the mirror image is the history: the pair swaps its halves
    again = pair(mirror_frames(frames), mirror_codes(actions, action_mirror(cartpole_spec)))
    np.testing.assert_allclose(again, np.concatenate([z[:, LATENT_DIMS:], z[:, :LATENT_DIMS]], axis=1), atol=1e-5)


def test_the_policy_is_mirror_symmetric_and_survives_save_and_load(cartpole_spec: WorldSpec, tmp_path) -> None:
    env = neuralgym.make_sb3_vec_env(cartpole_spec.dream_id, 2, seed=0, obs="latent", latent_mirror=True, device="cpu")
    model = PPO(
        MirrorSymmetricPolicy,
        env,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[16], mirror_actions=[1, 0]),
    )
    model.learn(32)
    obs = torch.randn(8, 2 * LATENT_DIMS)
    swapped = torch.cat([obs[:, LATENT_DIMS:], obs[:, :LATENT_DIMS]], dim=1)

    def probs_values(policy, x):
        with torch.no_grad():
            return policy.get_distribution(x).distribution.probs, policy.predict_values(x)

    p, v = probs_values(model.policy, obs)
    q, u = probs_values(model.policy, swapped)
    torch.testing.assert_close(q, p.flip(-1))  # the mirrored scene: the mirrored action probabilities
    torch.testing.assert_close(u, v)  # the same value
    assert not torch.allclose(p[:, 0], p[:, 1])  # not symmetric by being indifferent
    model.save(tmp_path / "agent.zip")
    loaded = PPO.load(tmp_path / "agent.zip", device="cpu")
    assert isinstance(loaded.policy, MirrorSymmetricPolicy) and loaded.policy.mirror_actions == [1, 0]
    torch.testing.assert_close(probs_values(loaded.policy, obs)[0], p)
    env.close()


def test_the_policy_refuses_what_it_cannot_mirror() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(ValueError, match="mirror_actions must map each of the 2 actions"):
        MirrorSymmetricPolicy(box, gym.spaces.Discrete(2), lambda _: 1e-3, mirror_actions=[0, 0])
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        MirrorSymmetricPolicy(box, box, lambda _: 1e-3, mirror_actions=[0])
    with pytest.raises(ValueError, match="flat observations of even size"):
        MirrorSymmetricPolicy(
            gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Discrete(2), lambda _: 1e-3, mirror_actions=[1, 0]
        )


def test_symmetrise_keeps_the_network_and_acts_on_both_views(cartpole_spec: WorldSpec, tmp_path) -> None:
    """A plain agent, symmetrised: on the pair (z, z') it acts on the mean of what it would do
    on z and, mirrored back, on z'; it saves and loads as an ordinary PPO zip."""
    from neuralgym.dream.mirror import symmetrise

    env = neuralgym.make_sb3_vec_env(cartpole_spec.dream_id, 2, seed=0, obs="latent", device="cpu")
    plain = PPO(
        "MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16])
    )
    plain.learn(32)
    z, zm = torch.randn(6, LATENT_DIMS), torch.randn(6, LATENT_DIMS)
    with torch.no_grad():
        expected = 0.5 * (
            plain.policy.get_distribution(z).distribution.probs
            + plain.policy.get_distribution(zm).distribution.probs.flip(-1)
        )
        value = 0.5 * (plain.policy.predict_values(z) + plain.policy.predict_values(zm))
    agent = symmetrise(plain, action_mirror(cartpole_spec))
    assert isinstance(agent.policy, MirrorSymmetricPolicy) and agent.observation_space.shape == (2 * LATENT_DIMS,)
    pair = torch.cat([z, zm], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(agent.policy.get_distribution(pair).distribution.probs, expected)
        torch.testing.assert_close(agent.policy.predict_values(pair), value)
    agent.save(tmp_path / "sym.zip")
    loaded = PPO.load(tmp_path / "sym.zip", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded.policy.get_distribution(pair).distribution.probs, expected)
    with pytest.raises(ValueError, match="already mirror-symmetric"):
        symmetrise(loaded, action_mirror(cartpole_spec))
    env.close()
