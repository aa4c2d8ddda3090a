"""Mirror symmetry: a left-right flip of a world's frames is the same world, with each
action replaced by its mirror image (CartPole: push left <-> push right).

A dream is never exactly symmetric: its small errors lean one way (CartPole's dreamt pole
drifts right of the real one under the same pushes, docs/agents.md), and an agent
trained in it learns to lean against that drift, which in reality is a push the wrong way.
An agent that acts on the mean of what it would do in the scene and in its mirror image
cannot lean either way, so a one-sided dream error cancels out of its actions.

* :func:`mirror_frames` / :func:`mirror_codes`: the mirror image of a history.
* :class:`MirrorSymmetricPolicy`: an SB3 actor-critic over the pair (features of the
  history, features of its mirror image) (``LatentEncoder(mirror=True)``), whose action
  probabilities are the mean of the two views' (the mirrored one's mapped back) and whose
  value is their mean. One network serves both views, so the policy is symmetric by
  construction. PPO can train it as it is;
* :func:`symmetrise`: turns a PPO agent trained on the plain latent into one (the same
  network, acting on both views), which is what ``agents/train_ppo.py --mirror`` saves.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from neuralgym.world.spec import WorldSpec, is_action_mirror


def action_mirror(spec: WorldSpec) -> tuple[int, ...]:
    """The world's action mirror (``mirror[i]`` is action i's mirror image), or a clear error."""
    if spec.actions.mirror is None:
        raise ValueError(f"world {spec.key!r} declares no mirror symmetry ([actions] mirror in its spec)")
    return spec.actions.mirror


def mirror_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames (..., H, W) flipped left-right."""
    return frames.flip(-1)


def mirror_codes(codes: torch.Tensor, mirror: tuple[int, ...]) -> torch.Tensor:
    """One-hot action codes (..., n) of actions a -> those of mirror[a] (an involution)."""
    return codes[..., list(mirror)]


class MirrorPairExtractor(BaseFeaturesExtractor):
    """(B, 2F) observations, the features of a history and of its mirror image, to a
    (2B, F) batch: rows 0..B-1 the histories, B..2B-1 their mirror images."""

    def __init__(self, observation_space: gym.spaces.Box):
        if len(observation_space.shape) != 1 or observation_space.shape[0] % 2:
            raise ValueError(f"a mirror pair needs flat observations of even size, got shape {observation_space.shape}")
        super().__init__(observation_space, observation_space.shape[0] // 2)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.cat(observations.chunk(2, dim=1))


class MirrorSymmetricPolicy(ActorCriticPolicy):
    """``MlpPolicy`` made exactly mirror-symmetric (discrete actions).

    ``mirror_actions``: the world's action mirror (:func:`action_mirror`).
    The observation must be the pair ``LatentEncoder(mirror=True)`` produces."""

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Any,
        mirror_actions: list[int] | tuple[int, ...] = (),
        **kwargs: Any,
    ):
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"MirrorSymmetricPolicy needs a Discrete action space, got {action_space}")
        mirror = [int(a) for a in mirror_actions]
        if not is_action_mirror(mirror, int(action_space.n)):
            raise ValueError(
                f"mirror_actions must map each of the {action_space.n} actions to its mirror image, each pair "
                f"both ways (e.g. [1, 0]), got {list(mirror_actions)}"
            )
        kwargs.pop(
            "features_extractor_class", None
        )  # always the pair extractor (also when SB3 rebuilds a saved policy)
        kwargs.pop("features_extractor_kwargs", None)
        if kwargs.get("share_features_extractor", True) is not True:
            raise ValueError("MirrorSymmetricPolicy shares one features extractor between actor and critic")
        self.mirror_actions = mirror
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=MirrorPairExtractor, **kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "mirror_actions": self.mirror_actions}

    def _both_views(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents (2B, .) of the actor and the critic over both views."""
        return self.mlp_extractor(self.extract_features(obs))

    def _distribution(self, latent_pi: torch.Tensor) -> Distribution:
        """The mean of the two views' action probabilities (the mirrored view's mapped back)."""
        logp, mirrored = torch.log_softmax(self.action_net(latent_pi), dim=-1).chunk(2)  # (B, n) each
        mean_logp = torch.logsumexp(torch.stack([logp, mirrored[:, self.mirror_actions]]), dim=0) - math.log(2.0)
        assert isinstance(self.action_dist, CategoricalDistribution)
        return self.action_dist.proba_distribution(action_logits=mean_logp)

    def _value(self, latent_vf: torch.Tensor) -> torch.Tensor:
        value, mirrored = self.value_net(latent_vf).chunk(2)  # (B, 1) each
        return 0.5 * (value + mirrored)

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self._both_views(obs)
        distribution = self._distribution(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, self._value(latent_vf), distribution.log_prob(actions)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self._both_views(obs)
        distribution = self._distribution(latent_pi)
        return self._value(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> Distribution:
        return self._distribution(self.mlp_extractor.forward_actor(self.extract_features(obs)))

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._value(self.mlp_extractor.forward_critic(self.extract_features(obs)))


def symmetrise(model: PPO, mirror: tuple[int, ...] | list[int]) -> PPO:
    """``model`` (a PPO agent with an ``MlpPolicy`` on flat latent observations of size F),
    made to act through :class:`MirrorSymmetricPolicy` on the pairs of size 2F: the same
    weights (optimizer state included), so it saves and loads as an ordinary SB3 agent."""
    space = model.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"symmetrise needs an agent on flat observations, got {space}")
    if isinstance(model.policy, MirrorSymmetricPolicy):
        raise ValueError("the agent is already mirror-symmetric")
    pair = gym.spaces.Box(
        np.concatenate([space.low, space.low]), np.concatenate([space.high, space.high]), dtype=space.dtype
    )
    kwargs = {**model.policy_kwargs, "mirror_actions": [int(a) for a in mirror]}
    policy = MirrorSymmetricPolicy(pair, model.action_space, model.lr_schedule, **kwargs).to(model.device)
    policy.load_state_dict(model.policy.state_dict())
    policy.optimizer.load_state_dict(model.policy.optimizer.state_dict())
    model.policy, model.policy_class, model.policy_kwargs, model.observation_space = (
        policy,
        MirrorSymmetricPolicy,
        kwargs,
        pair,
    )
    return model
