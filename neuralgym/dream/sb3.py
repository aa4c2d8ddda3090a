"""The stable-baselines3 face: ``make_sb3_vec_env(env_id, n_envs)``.

For a dream id it returns :class:`DreamSB3VecEnv`, an SB3 ``VecEnv`` backed by ONE
batched dream (not ``n_envs`` copies): lanes that end reset in the same step, with
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` so PPO
bootstraps through truncations (time limit and drift resets alike). Any other id gets
SB3's usual ``DummyVecEnv`` of ``gym.make(env_id)``. Observations are HWC uint8, which
SB3 transposes for ``CnnPolicy`` by itself.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from neuralgym.dream.core import DreamCore
from neuralgym.common.seeding import check_seed, torch_seed
from neuralgym.world.catalog import get_spec
from neuralgym.world.spaces import ResetNeededError
from neuralgym.world.spec import WorldSpec

#: options of the dream that its real twin does not take (dropped when ``env_id`` is a real id)
DREAM_ONLY_KWARGS = ("temperature", "uncertainty_penalty", "precision", "compile", "anchor_starts")


def is_dream_id(env_id: str) -> bool:
    return env_id.startswith("neuralgym/") and env_id.endswith("-v0") and not env_id.endswith("-real-v0")


def make_sb3_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, obs: str = "pixels",
                     latent_mirror: bool = False, **kwargs: Any) -> VecEnv:
    """An SB3 VecEnv of ``n_envs`` lanes of ``env_id``. ``kwargs`` go to the env
    (``weights``, ``device``, ``drift_policy``, ``temperature``, ``uncertainty_penalty``...).

    ``obs="latent"`` observes the world's encoder features instead of pixels, through
    the one :class:`~neuralgym.dream.latent.VecLatent` wrapper, for dream and real ids alike
    (for a real id, ``weights`` names the world file whose encoder to use);
    ``latent_mirror=True`` appends the features of the mirrored history (a world with a
    mirror symmetry, for :class:`~neuralgym.dream.mirror.MirrorSymmetricPolicy`)."""
    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; `neuralgym worlds` lists the registered ones")
    if obs not in ("pixels", "latent"):
        raise ValueError(f"obs must be 'pixels' or 'latent', got {obs!r}")
    if latent_mirror and obs != "latent":
        raise ValueError(f"latent_mirror applies to obs='latent' only, got obs={obs!r}")
    if is_dream_id(env_id):
        env: VecEnv = DreamSB3VecEnv(get_spec(env_id), n_envs, **kwargs)
    else:
        real_kwargs = {k: v for k, v in kwargs.items() if k not in DREAM_ONLY_KWARGS}
        env = DummyVecEnv([lambda: gym.make(env_id, **real_kwargs) for _ in range(n_envs)])
    if seed is not None:
        env.seed(seed)
    if obs == "latent":
        from neuralgym.dream.latent import LatentEncoder, VecLatent

        spec = get_spec(env_id)
        world = env.core.world if isinstance(env, DreamSB3VecEnv) else None
        device = kwargs.get("device", "cpu") if world is None else str(env.core.device)
        encoder = LatentEncoder(spec, kwargs.get("weights"), device=device, world=world,
                                mirror=latent_mirror)
        env = VecLatent(env, encoder)
    return env


class DreamSB3VecEnv(VecEnv):
    """``n_envs`` dream lanes as an SB3 ``VecEnv`` with same-step autoreset."""

    def __init__(self, world: str | WorldSpec, n_envs: int = 1, render_mode: str | None = None, uncertainty_penalty: float = 0.0,
                 **kwargs: Any):
        if isinstance(uncertainty_penalty, bool) or not isinstance(uncertainty_penalty, (int, float)) \
                or not np.isfinite(uncertainty_penalty) or uncertainty_penalty < 0:
            raise ValueError(f"uncertainty_penalty must be a finite number >= 0, got {uncertainty_penalty!r}")
        self.core = DreamCore(world if isinstance(world, WorldSpec) else get_spec(world), n_envs, **kwargs)
        #: the reward is lowered by this times the per-step drift estimate (grey levels of predicted RMSE)
        self.uncertainty_penalty = float(uncertainty_penalty)
        self.render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": self.core.spec.play.render_fps}
        super().__init__(n_envs, self.core.observation_space, self.core.action_space)
        self._actions: np.ndarray | None = None
        self._rng = np.random.default_rng()
        self._torch_seeded = False
        self._last: np.ndarray | None = None

    @property
    def context_length(self) -> int:
        return self.core.k

    def reset(self) -> np.ndarray:
        """Reset every lane. Seeds from ``seed()`` and prompts from ``set_options()``
        (per lane, ``{"frames": ..., "actions": ...}`` as in ``gym.make``'s ``reset``) apply once."""
        seed = check_seed(self._seeds[0] if self._seeds else None)
        options = self._options if isinstance(self._options, list) else [self._options] * self.num_envs
        if len(options) != self.num_envs:
            raise ValueError(f"set_options() needs one dict per env ({self.num_envs}), got {len(options)}")
        prompts = []
        for opts in options:  # validate all before anything changes
            if opts and "reset_mask" in opts:
                raise ValueError("reset option 'reset_mask' is not supported by the SB3 VecEnv")
            prompts.append(self.core.validate_prompt(opts or None))
        if seed is not None or not self._torch_seeded:
            if seed is not None:
                self._rng = np.random.default_rng(seed)
            self.core.seed(torch_seed(self._rng))
            self._torch_seeded = True
        self._reset_seeds()
        self._reset_options()
        plain = np.array([p is None for p in prompts])
        self.core.reset_lanes(plain, self._rng)
        for i in np.flatnonzero(~plain):
            self.core.reset_lanes(np.array([i]), self._rng, prompts[i])
        self._last = DreamCore.to_numpy(self.core.observe())
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._last.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._last is None:
            raise ResetNeededError("step() called before reset(): call env.reset() first")
        codes = self.core.encode(self._actions)
        res = self.core.step(codes)
        obs = DreamCore.to_numpy(res.frames)
        dones = res.terminated | res.truncated
        infos: list[dict[str, Any]] = [
            {"drift": float(res.drift[i]), "drift_step": float(res.drift_step[i]), "dream_step": int(res.dream_step[i]),
             "drift_reset": bool(res.drift_reset[i])}
            for i in range(self.num_envs)
        ]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(res.truncated[i] and not res.terminated[i])
                if res.nonfinite[i]:
                    infos[i]["nonfinite"] = True
            self.core.reset_lanes(dones, self._rng)
            fresh = DreamCore.to_numpy(self.core.observe())
            obs[dones] = fresh[dones]
        self._last = obs
        reward = res.reward - self.uncertainty_penalty * res.drift_step if self.uncertainty_penalty else res.reward
        return obs.copy(), reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self._last = None

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self._last is None:
            return [None] * self.num_envs
        return [np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f.copy() for f in self._last]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [self.render_mode for _ in self._get_indices(indices)]
        value = getattr(self.core, attr_name) if hasattr(self.core, attr_name) else getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.core, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        method = getattr(self.core, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
