"""``DreamVectorEnv``: the native batched dream (``gym.make_vec("neuralgym/<World>-v0", num_envs=N)``).

A thin face over :class:`~neuralgym.dream.core.DreamCore`, which steps, autoresets (in
either of Gymnasium's modes) and builds the info; this class checks Gymnasium's reset
arguments and lays the results out as Gymnasium's vector API wants them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from neuralgym.common.images import to_rgb
from neuralgym.common.seeding import check_seed, fold_seeds
from neuralgym.dream.core import DEFAULT_TEMPERATURE, DreamCore
from neuralgym.world.catalog import get_spec
from neuralgym.world.spaces import ResetNeededError
from neuralgym.world.spec import WorldSpec


class DreamVectorEnv(VectorEnv):
    """N dreams of one world, advanced by ONE batched forward pass per ``step``.

    ## Observation space
    ``Box(0, 255, (num_envs, H, W, C), uint8)``: each lane's newest predicted frame.
    With ``obs_backend="torch"`` observations stay on the device as uint8 torch tensors.

    ## Action space
    The world's action space batched: ``MultiDiscrete`` or a batched ``Box``.

    ## Rewards and episode end
    Reward from the model's reward head. ``terminated`` is sampled from its termination
    head (``temperature`` 0 thresholds it at p = 0.5). ``truncated`` comes from the time
    limit, the drift-reset policy, or a non-finite prediction (``info["nonfinite"]``).

    ## Autoreset
    ``autoreset_mode`` ``NEXT_STEP`` (gymnasium's default: the step after an episode
    ends resets that lane and ignores its action) or ``SAME_STEP`` (the lane resets
    in the step that ended it; its last frame is in ``info["final_obs"]``).

    ## Info
    ``drift`` and ``drift_step`` (float, N), ``dream_step`` (int, N), ``drift_reset`` (bool, N)
    (see :mod:`neuralgym.dream.info`).

    ## Arguments
    ``world`` (key or spec), ``num_envs``, ``weights`` (path), ``device`` ("auto",
    "cpu", "cuda"), ``drift_policy`` (see :class:`~neuralgym.world.drift.DriftResetPolicy`),
    ``temperature``, ``max_episode_steps``, ``render_mode`` ("rgb_array"), ``obs_backend``,
    ``anchor_starts`` (share of episodes started from a real window of the anchor bank).
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "render_fps": 30,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        world: str | WorldSpec = "cartpole",
        num_envs: int = 1,
        weights: str | Path | None = None,
        device: str = "auto",
        drift_policy: Any = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        obs_backend: str = "numpy",
        precision: str = "auto",
        compile: bool = False,
        anchor_starts: float = 0.0,
        limit_by_wrapper: bool = False,
    ):
        # limit_by_wrapper comes with the registration, for the one-lane env; gym.make_vec
        # passes the registered episode limit (or its own max_episode_steps) here directly
        del limit_by_wrapper
        spec = world if isinstance(world, WorldSpec) else get_spec(world)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode for a vector dream must be 'rgb_array' or None, got {render_mode!r}")
        if obs_backend not in ("numpy", "torch"):
            raise ValueError(f"obs_backend must be 'numpy' or 'torch', got {obs_backend!r}")
        try:
            autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError as e:
            raise ValueError(
                f"autoreset_mode must be AutoresetMode.NEXT_STEP or SAME_STEP, got {autoreset_mode!r}"
            ) from e
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode}")
        self.core = DreamCore(
            spec,
            num_envs,
            weights,
            device,
            drift_policy,
            temperature,
            max_episode_steps,
            precision,
            compile,
            anchor_starts,
            autoreset=autoreset_mode,
        )
        self.world_spec = spec
        self.num_envs = self.core.num_envs
        self.render_mode = render_mode
        self.obs_backend = obs_backend
        self.metadata = {**self.metadata, "render_fps": spec.play.render_fps, "autoreset_mode": autoreset_mode}
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def context_length(self) -> int:
        return self.core.k

    @property
    def weights_path(self) -> Path:
        return self.core.weights_path

    @property
    def device(self) -> torch.device:
        return self.core.device

    def _present(self, frames: torch.Tensor) -> Any:
        """(N, C, H, W) device frames as the observations: numpy (N, H, W, C), or a device tensor."""
        return frames.permute(0, 2, 3, 1).contiguous() if self.obs_backend == "torch" else DreamCore.to_numpy(frames)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        # validate everything before anything changes
        if isinstance(seed, (list, tuple)):  # gymnasium allows a list of per-env seeds: fold them into one
            seed = fold_seeds(seed, self.num_envs)
        seed = check_seed(seed)
        prompt = self.core.validate_prompt(options)
        mask = None
        if options and "reset_mask" in options:
            try:
                mask = np.asarray(options["reset_mask"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)") from e
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask!r}"
                )
        super().reset(seed=seed)  # seeds self._np_random, which the core then draws from
        frames, info = self.core.reset(seed, self.np_random, mask, prompt)
        return self._present(frames), info

    def step(self, actions: Any):
        res = self.core.step(actions)
        info: dict[str, Any] = res.info
        if res.final_frames is not None:  # SAME_STEP: the ended lanes' last frames and info, Gymnasium's way
            done = res.done
            final = self._present(res.final_frames)
            final_obs = np.full(self.num_envs, None, dtype=object)  # (N,) of frames, not (N, H, W, C) of objects
            for i in np.flatnonzero(done):
                final_obs[i] = final[i]
            info["final_obs"] = final_obs
            info["_final_obs"] = done.copy()
            info["final_info"] = {k: v.copy() for k, v in info.items() if not k.startswith(("final", "_final"))}
            info["_final_info"] = done.copy()
        return self._present(res.frames), res.reward, res.terminated, res.truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        if self.core.obs is None:
            raise ResetNeededError("render() called before reset(): call env.reset() first")
        return tuple(to_rgb(DreamCore.to_numpy(self.core.obs)))

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()
