"""The stable-baselines3 face: ``make_sb3_vec_env(env_id, n_envs)``.

For a dream id it returns :class:`DreamSB3VecEnv`, an SB3 ``VecEnv`` backed by ONE
batched dream (not ``n_envs`` copies): lanes that end reset in the same step, with
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` so PPO
bootstraps through truncations (time limit and drift resets alike). Any other id gets
SB3's usual ``DummyVecEnv`` of ``gym.make(env_id)``. Observations are HWC uint8, which
SB3 transposes for ``CnnPolicy`` by itself. Like the Gymnasium faces, it is a thin face
over :class:`~neuralgym.dream.core.DreamCore` (which resets the ended lanes, SAME_STEP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from neuralgym.common.images import to_rgb
from neuralgym.common.seeding import check_seed
from neuralgym.dream.core import DreamCore
from neuralgym.dream.info import lane_info
from neuralgym.world.catalog import get_spec
from neuralgym.world.spec import WorldSpec

#: options of the dream that its real twin does not take (dropped when ``env_id`` is a real id)
DREAM_ONLY_KWARGS = ("temperature", "uncertainty_penalty", "precision", "compile", "anchor_starts")


def is_dream_id(env_id: str) -> bool:
    return env_id.startswith("neuralgym/") and env_id.endswith("-v0") and not env_id.endswith("-real-v0")


def make_sb3_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    obs: str = "pixels",
    latent_mirror: bool = False,
    **kwargs: Any,
) -> VecEnv:
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
        encoder = LatentEncoder(spec, kwargs.get("weights"), device=device, world=world, mirror=latent_mirror)
        env = VecLatent(env, encoder)
    return env


class DreamSB3VecEnv(VecEnv):
    """``n_envs`` dream lanes as an SB3 ``VecEnv`` with same-step autoreset."""

    def __init__(
        self,
        world: str | WorldSpec,
        n_envs: int = 1,
        render_mode: str | None = None,
        uncertainty_penalty: float = 0.0,
        **kwargs: Any,
    ):
        if (
            isinstance(uncertainty_penalty, bool)
            or not isinstance(uncertainty_penalty, (int, float))
            or not np.isfinite(uncertainty_penalty)
            or uncertainty_penalty < 0
        ):
            raise ValueError(f"uncertainty_penalty must be a finite number >= 0, got {uncertainty_penalty!r}")
        spec = world if isinstance(world, WorldSpec) else get_spec(world)
        self.core = DreamCore(spec, n_envs, autoreset=AutoresetMode.SAME_STEP, **kwargs)
        #: the reward is lowered by this times the per-step drift estimate (grey levels of predicted RMSE)
        self.uncertainty_penalty = float(uncertainty_penalty)
        self.render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": self.core.spec.play.render_fps}
        super().__init__(n_envs, self.core.observation_space, self.core.action_space)
        self._actions: np.ndarray | None = None

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
        self._reset_seeds()
        self._reset_options()
        frames, _ = self.core.reset(seed, prompt=prompts)  # seeds the core's own generator (SB3 has no np_random)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return DreamCore.to_numpy(frames)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        res = self.core.step(self._actions)
        infos = [lane_info(res.info, i) for i in range(self.num_envs)]
        if res.final_frames is not None:  # lanes that ended were reset in this step (SAME_STEP)
            final = DreamCore.to_numpy(res.final_frames)
            for i in np.flatnonzero(res.done):
                infos[i]["terminal_observation"] = final[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(res.truncated[i] and not res.terminated[i])
        reward = (
            res.reward - self.uncertainty_penalty * res.info["drift_step"] if self.uncertainty_penalty else res.reward
        )
        return DreamCore.to_numpy(res.frames), reward.astype(np.float32), res.done, infos

    def close(self) -> None:
        self.core.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.core.obs is None:
            return [None] * self.num_envs
        return list(to_rgb(DreamCore.to_numpy(self.core.obs)))

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
