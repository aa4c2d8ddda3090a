"""The latent observation mode: the world's own encoder features of the frame history.

Learning from 64x64 pixels costs far more CPU than learning from a compact vector
(see docs/agents.md). An agent may instead observe the world model's encoder
features of the last K frames and K-1 actions, as World Models' controller saw its
VAE's z. :class:`LatentObservation` applies the SAME encoder, with the SAME history
padding as the dream (a new episode repeats its first frame, all-zero action codes;
a dream started from a prompt or an anchor window hands over its own context),
to any env with the world's spaces, the dream or ``-real-v0`` alike, so an agent
trained in one sees in the other exactly the same kind of vector.

The features are standardised with constants computed from the world file's banks
of real contexts, so nothing learned during agent training needs saving beside the
agent: the world file (``weights``) is the whole observation pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from neuralgym.common.device import resolve_device
from neuralgym.dream.mirror import action_mirror, mirror_codes, mirror_frames
from neuralgym.world.catalog import get_spec
from neuralgym.world.spaces import encode_actions, validate_action, validate_action_batch
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import World, load_world

#: principal components of the encoder features that agents observe (0: all the features)
LATENT_DIMS = 32


class LatentEncoder:
    """Standardised encoder features of a batch of histories, for one world file.

    The raw features (864 numbers for a 48-channel context grid) are projected on their
    ``dims`` principal axes over the world file's real contexts and scaled to unit
    variance: an MLP policy then faces a few dozen decorrelated inputs instead of
    hundreds of redundant ones (CartPole, measured: real return 130 after 300k dream
    steps against 54-71 on the full features, docs/agents.md).

    ``mirror=True`` (a world with a mirror symmetry): the features of each history and,
    after them, those of its mirror image (``2 * dims`` numbers), for
    :class:`~neuralgym.dream.mirror.MirrorSymmetricPolicy`."""

    def __init__(
        self,
        spec: WorldSpec,
        weights: str | Path | None = None,
        device: str = "cpu",
        world: World | None = None,
        dims: int = LATENT_DIMS,
        mirror: bool = False,
    ):
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 0:
            raise ValueError(f"dims must be an int >= 0 (0: every feature), got {dims!r}")
        self.spec = spec
        self.device = resolve_device(device)
        self.world = world if world is not None else load_world(weights or spec.weights_path, spec, self.device)
        self.model = self.world.model
        self.mirror = action_mirror(spec) if mirror else None
        self.centre, self.axes, self.std = self._standardisation(dims)
        self.dim = int(self.std.shape[0]) * (2 if mirror else 1)

    #: on a CPU the encoder runs the batch in blocks of this many histories: beyond ~16 its
    #: activations leave the cache and the cost per history doubles (measured, CartPole world,
    #: one thread: 0.27 ms per history in batches of 8-16, 0.63 ms in batches of 24)
    cpu_block: int = 16

    @torch.no_grad()
    def raw(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """frames (B, K, C, H, W) float in [0, 1]; actions (B, K-1, A): the features (B, F)."""
        acts = torch.cat([actions, torch.zeros_like(actions[:, :1])], dim=1)  # the next action is unknown
        n, block = frames.shape[0], self.cpu_block
        if n > block and frames.device.type == "cpu":
            return torch.cat(
                [self.model.encode(frames[i : i + block], acts[i : i + block]) for i in range(0, n, block)]
            )
        return self.model.encode(frames, acts)

    def _standardisation(self, dims: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Centre, principal axes (F, dims) or None, and the projected features' spread,
        all from the world file's real contexts (start frames and anchor windows)."""
        w = self.world
        k = self.spec.context_length
        starts = torch.from_numpy(w.starts).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
        ctx = [starts[:, None].expand(-1, k, -1, -1, -1)]
        acts = [torch.zeros(len(starts), k - 1, self.spec.actions.model_dim, device=self.device)]
        if len(w.anchor_frames):
            ctx.append(torch.from_numpy(w.anchor_frames).to(self.device).permute(0, 1, 4, 2, 3).float().div(255.0))
            acts.append(torch.from_numpy(w.anchor_actions).to(self.device))
        feats = torch.cat([self.raw(f, a) for f, a in zip(ctx, acts)])  # (N, F)
        centre = feats.mean(dim=0)
        if dims == 0 or dims >= feats.shape[1]:
            return centre, None, (feats - centre).std(dim=0).clamp(min=1e-3)
        if dims >= feats.shape[0]:
            raise ValueError(
                f"{dims} principal axes need more than {dims} real contexts in the world file's banks, "
                f"it has {feats.shape[0]}; pass dims=0 to observe every feature"
            )
        # in float64 on the CPU, signs fixed (largest loading positive): the same axes on any device
        _, _, vt = torch.linalg.svd((feats - centre).double().cpu(), full_matrices=False)
        axes = vt[:dims].t()  # (F, dims)
        axes = axes * torch.sign(axes.gather(0, axes.abs().argmax(dim=0, keepdim=True)))
        axes = axes.float().to(self.device)
        return centre, axes, ((feats - centre) @ axes).std(dim=0).clamp(min=1e-3)

    def __call__(self, frames: torch.Tensor, actions: torch.Tensor) -> np.ndarray:
        """frames (B, K, C, H, W) in [0, 1]; actions (B, K-1, A): observations (B, dim)."""
        z = self._project(self.raw(frames, actions))
        if self.mirror is not None:  # the mirror image's beside: (B, 2 dims)
            z = torch.cat(
                [z, self._project(self.raw(mirror_frames(frames), mirror_codes(actions, self.mirror)))], dim=1
            )
        return z.cpu().numpy().astype(np.float32)

    def _project(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> standardised principal components (B, dims)."""
        z = raw - self.centre
        if self.axes is not None:
            z = z @ self.axes
        return (z / self.std).clamp(-10.0, 10.0)

    @property
    def observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-10.0, 10.0, (self.dim,), dtype=np.float32)


class LatentObservation(gym.Wrapper):
    """Observe the world's standardised encoder features instead of pixels.

    Wraps a single env with the world's spaces (``neuralgym/<World>-v0`` or
    ``-real-v0``); the observation is ``Box(-10, 10, (F,), float32)``.
    ``encoder`` may be shared between wrappers (it holds the world model).
    """

    def __init__(
        self,
        env: gym.Env,
        world: str | None = None,
        weights: str | Path | None = None,
        device: str = "cpu",
        encoder: LatentEncoder | None = None,
    ):
        super().__init__(env)
        spec = get_spec(world) if world else getattr(env.unwrapped, "world_spec", None) or env.unwrapped.spec_world
        self.encoder = encoder or LatentEncoder(spec, weights or getattr(env.unwrapped, "weights_path", None), device)
        self.observation_space = self.encoder.observation_space
        k, a = spec.context_length, spec.actions.model_dim
        self._spec = spec
        self._frames = torch.zeros(1, k, *reversed(spec.obs_shape), device=self.encoder.device).permute(0, 1, 2, 4, 3)
        self._actions = torch.zeros(1, k - 1, a, device=self.encoder.device)

    def _frame(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(obs)).to(self.encoder.device).permute(2, 0, 1).float().div(255.0)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        core = getattr(self.env.unwrapped, "core", None)
        if core is not None:  # a dream: its own context (a padded start frame, a prompt or an anchor window)
            self._frames = core.history.ordered(slice(0, 1)).to(self.encoder.device)
            self._actions = core.actions[:1].to(self.encoder.device).clone()
        else:
            f = self._frame(obs)
            self._frames = f[None, None].expand(1, self._spec.context_length, *f.shape).clone()
            self._actions.zero_()
        info["pixels"] = obs
        return self.encoder(self._frames, self._actions)[0], info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        code = torch.from_numpy(
            encode_actions(self._spec, np.asarray([validate_action(self.env.action_space, action)]))
        )
        self._frames = torch.cat([self._frames[:, 1:], self._frame(obs)[None, None]], dim=1)
        self._actions = torch.cat([self._actions[:, 1:], code.to(self.encoder.device)[:, None]], dim=1)
        info["pixels"] = obs
        return self.encoder(self._frames, self._actions)[0], reward, terminated, truncated, info


class VecLatent(VecEnvWrapper):
    """The latent observation mode for SB3 VecEnvs of a world, dream or real alike:
    per-lane histories as tensors, one batched encoder call per step. Terminal
    observations (``infos[i]["terminal_observation"]``) are turned into latents too."""

    def __init__(self, venv: VecEnv, encoder: LatentEncoder):
        super().__init__(venv, observation_space=encoder.observation_space)
        spec = encoder.spec
        self.encoder, self._spec = encoder, spec
        k, (h, w, c), a = spec.context_length, spec.obs_shape, spec.actions.model_dim
        self._frames = torch.zeros(self.num_envs, k, c, h, w, device=encoder.device)
        self._hist_actions = torch.zeros(self.num_envs, k - 1, a, device=encoder.device)
        self._pending: np.ndarray | None = None

    def _to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(obs)).to(self.encoder.device).permute(0, 3, 1, 2).float().div(255.0)

    def _restart(self, lanes: np.ndarray, obs: np.ndarray) -> None:
        idx = torch.as_tensor(np.flatnonzero(lanes), device=self.encoder.device)
        core = getattr(self.venv, "core", None)
        if core is not None:  # a dream: its own context (a padded start frame or an anchor window)
            at = idx.to(core.device)
            self._frames[idx] = core.history.ordered(at).to(self.encoder.device)
            self._hist_actions[idx] = core.actions[at].to(self.encoder.device)
            return
        f = self._to_tensor(obs[lanes])
        self._frames[idx] = f[:, None].expand(-1, self._spec.context_length, -1, -1, -1)
        self._hist_actions[idx] = 0.0

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._restart(np.ones(self.num_envs, bool), obs)
        return self.encoder(self._frames, self._hist_actions)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = validate_action_batch(self.venv.action_space, actions, self.num_envs)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        codes = torch.from_numpy(encode_actions(self._spec, self._pending)).to(self.encoder.device)
        newest = obs.copy()
        for i in np.flatnonzero(dones):
            newest[i] = infos[i]["terminal_observation"]
        self._frames = torch.cat([self._frames[:, 1:], self._to_tensor(newest)[:, None]], dim=1)
        self._hist_actions = torch.cat([self._hist_actions[:, 1:], codes[:, None]], dim=1)
        z = self.encoder(self._frames, self._hist_actions)
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = z[i].copy()
            self._restart(dones, obs)
            z[dones] = self.encoder(self._frames[torch.as_tensor(dones)], self._hist_actions[torch.as_tensor(dones)])
        return z, rewards, dones, infos
