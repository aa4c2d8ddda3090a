"""Several PPO agents acting as one: their mean action probabilities (or mean actions)."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO


class PolicyEnsemble:
    """Deterministic: the argmax of the members' mean action probabilities (Discrete) or
    their mean action (Box). Stochastic: each lane samples from one random member."""

    def __init__(self, models: list[PPO], seed: int = 0):
        if not models:
            raise ValueError("an ensemble needs at least one member")
        self.models = models
        self.action_space = models[0].action_space
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: np.ndarray, state=None, episode_start=None, deterministic: bool = False):
        if not deterministic:
            actions = np.stack([m.predict(obs, deterministic=False)[0] for m in self.models])  # (M, n, ...)
            pick = self.rng.integers(len(self.models), size=actions.shape[1])
            return actions[pick, np.arange(actions.shape[1])], None
        if isinstance(self.action_space, spaces.Discrete):
            with torch.no_grad():
                probs = [
                    m.policy.get_distribution(m.policy.obs_to_tensor(obs)[0]).distribution.probs for m in self.models
                ]
            return torch.stack(probs).mean(dim=0).argmax(dim=-1).cpu().numpy(), None
        return np.mean([m.predict(obs, deterministic=True)[0] for m in self.models], axis=0), None
