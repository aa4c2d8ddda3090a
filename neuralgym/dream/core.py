"""The dream's engine: N lanes of frame/action history and ONE batched model call per step.

:class:`DreamCore` is the single implementation behind every face of a dream: the
Gymnasium vector env, the one-lane Gymnasium env and the SB3 VecEnv are thin faces that
validate their own arguments and format what it returns. It owns

* every per-lane array: the last K frames (float in [0, 1], on the 8-bit grid) and the
  K-1 actions between them as device tensors; step counts, drift accumulators, the
  drift policy's hysteresis counts, which lanes must be reset and which restart next step;
* seeding: one numpy generator (the face's ``np_random``) and a torch generator drawn
  from it (:meth:`DreamCore.seed`);
* ``reset``: new start contexts from the start bank (or, with ``anchor_starts``, a real
  K-frame window of the anchor bank), or prompts of real frames;
* ``step``: one model call for all lanes, 8-bit rounding, seeded sampling of termination
  and reward, drift scoring and the drift-reset policy, non-finite guards, then the
  autoreset of the lanes that ended (Gymnasium's NEXT_STEP or SAME_STEP, or none), and
  the info dict (:mod:`neuralgym.dream.info`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from neuralgym.common.device import resolve_device
from neuralgym.common.precision import autocast, resolve_precision
from neuralgym.common.seeding import torch_seed
from neuralgym.dream.history import FrameRing
from neuralgym.dream.info import lanes_info, start_info
from neuralgym.dream.memory import check_lanes_fit
from neuralgym.dream.predictor import Predictor
from neuralgym.dream.prompt import Prompt, validate_prompt
from neuralgym.dream.sampling import sample_reward, sample_termination
from neuralgym.world.drift import DriftResetPolicy
from neuralgym.world.model import draw_noise, predicted_rmse
from neuralgym.world.spaces import (
    ResetNeededError,
    action_space_for,
    encode_actions,
    observation_space_for,
    validate_action,
    validate_action_batch,
)
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import World, load_world

#: per-step termination probabilities are pushed through sigmoid(logit / temperature)
DEFAULT_TEMPERATURE = 1.0
#: an episode limit that is never reached (the limit is a TimeLimit wrapper's)
NO_LIMIT = 2**62


def calibrated_threshold(info: dict[str, Any]) -> float | None:
    """The drift threshold training calibrated for these weights (``info["drift"]["threshold"]``), if any."""
    drift = info.get("drift")
    value = drift.get("threshold") if isinstance(drift, dict) else None
    return float(value) if value is not None else None


@dataclass
class StepResult:
    frames: torch.Tensor  # (N, C, H, W) uint8 on device: the observations (restarted lanes: their start frame)
    reward: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool  (time limit, drift reset or non-finite prediction)
    info: dict[str, np.ndarray]  # see neuralgym.dream.info
    done: np.ndarray  # (N,) bool: terminated | truncated
    final_frames: torch.Tensor | None = None  # SAME_STEP, some lane done: every lane's frame before the resets


class DreamCore:
    """Lanes of a dream of ``spec``'s world. See the module docstring.

    ``autoreset``: ``AutoresetMode.DISABLED`` (a lane that ended waits for ``reset``),
    ``NEXT_STEP`` or ``SAME_STEP`` (Gymnasium's vector autoreset modes)."""

    def __init__(
        self,
        spec: WorldSpec,
        num_envs: int = 1,
        weights: str | Path | None = None,
        device: str = "auto",
        drift_policy: Any = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_episode_steps: int | None = None,
        precision: str = "auto",
        compile: bool = False,
        anchor_starts: float = 0.0,
        autoreset: AutoresetMode = AutoresetMode.DISABLED,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if not isinstance(device, str):
            raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not np.isfinite(temperature)
            or temperature < 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if weights is not None and not isinstance(weights, (str, Path)):
            raise TypeError(f"weights must be a path to a .safetensors file, got {type(weights).__name__}")
        self.spec = spec
        self.num_envs = int(num_envs)
        self.autoreset = AutoresetMode(autoreset)
        self.device = resolve_device(device)
        check_lanes_fit(spec, self.num_envs, self.device)
        self.weights_path = Path(weights) if weights is not None else spec.weights_path
        self.world: World = load_world(self.weights_path, spec, self.device)
        self.model = self.world.model
        self.precision = resolve_precision(
            precision, self.device, self.num_envs, dense_decoder=bool(self.model.config.bottleneck)
        )
        self.predict = Predictor(self.model, self.device, compile)
        self.drift_policy = DriftResetPolicy.resolve(drift_policy, spec.drift, calibrated_threshold(self.world.info))
        self.temperature = float(temperature)
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be an int >= 1 or None, got {max_episode_steps!r}")
        self.max_episode_steps = int(max_episode_steps if max_episode_steps is not None else spec.max_episode_steps)
        self.observation_space = observation_space_for(spec)
        self.action_space = action_space_for(spec)
        k, (h, w, c), a = spec.context_length, spec.obs_shape, spec.actions.model_dim
        self.k, self.shape, self.action_dim = k, (h, w, c), a
        n, dev = self.num_envs, self.device
        self.history = FrameRing(n, k, c, h, w, dev)  # the last K frames, float on the 8-bit grid
        self.actions = torch.zeros(n, k - 1, a, device=dev)  # the K-1 actions between the frames
        self.t = np.zeros(n, np.int64)
        self.dream_step = np.zeros(n, np.int64)
        self.over = np.zeros(n, np.int64)  # consecutive over-threshold steps (drift hysteresis)
        self.drift_sq = np.zeros(n, np.float64)  # sum of squared predicted per-step errors since last real
        self.needs_reset = np.ones(n, bool)  # the lane's episode ended (or never started)
        self.pending = np.zeros(n, bool)  # NEXT_STEP: lanes that restart on the next step
        self.obs: torch.Tensor | None = None  # (N, C, H, W) uint8: the observations last returned; None before reset
        self.np_random = np.random.default_rng()
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(0)
        self._torch_seeded = False
        bank = self.world
        if (
            isinstance(anchor_starts, bool)
            or not isinstance(anchor_starts, (int, float))
            or not 0.0 <= anchor_starts <= 1.0
        ):
            raise ValueError(f"anchor_starts must be a number in [0, 1], got {anchor_starts!r}")
        if anchor_starts > 0 and len(bank.anchor_frames) == 0:
            raise ValueError(f"anchor_starts={anchor_starts} needs anchor windows, and {self.weights_path} has none")
        #: the share of episodes that start mid-motion, from a random real window of the anchor
        #: bank, instead of from a start frame (a training aid: model rollouts branched from real
        #: states, as MBPO branches them; the real env always starts from its own start states)
        self.anchor_starts = float(anchor_starts)
        self._starts = torch.from_numpy(bank.starts).to(dev).permute(0, 3, 1, 2).float().div_(255.0)  # (S, C, H, W)
        self._anchor_frames = torch.from_numpy(bank.anchor_frames).to(dev).permute(0, 1, 4, 2, 3).float().div_(255.0)
        self._anchor_actions = torch.from_numpy(bank.anchor_actions).to(dev)
        # training up-weighted terminations (pos_weight) and drew windows near them more
        # often (terminal_oversample): both shift the head's logit by their log, removed here
        train_cfg = bank.info.get("train", {})
        self._term_logit_offset = float(
            np.log(train_cfg.get("term_pos_weight", 1.0)) + np.log(max(1, train_cfg.get("terminal_oversample", 1)))
        )

    @property
    def frames(self) -> torch.Tensor:
        """Every lane's last K frames, (N, K, C, H, W) oldest first (a copy; :attr:`history` holds them)."""
        return self.history.ordered()

    @property
    def context_length(self) -> int:
        return self.k

    # ------------------------------------------------------------------ resets
    def seed(self, seed: int | None = None, rng: np.random.Generator | None = None) -> None:
        """Take ``rng`` (a Gymnasium face's ``np_random``, already seeded with ``seed``) as the
        lanes' numpy generator, or without it seed a new one from ``seed``. The torch
        generator follows it: drawn from it on the first reset and on every seeded one."""
        if rng is not None:
            self.np_random = rng
        elif seed is not None:
            self.np_random = np.random.default_rng(seed)
        if seed is not None or not self._torch_seeded:
            self.generator.manual_seed(torch_seed(self.np_random))
            self._torch_seeded = True

    def validate_prompt(self, options: dict[str, Any] | None) -> Prompt | None:
        """Check ``reset`` options (see :func:`~neuralgym.dream.prompt.validate_prompt`)."""
        return validate_prompt(options, self.spec, self.action_space)

    def reset(
        self,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        lanes: np.ndarray | None = None,
        prompt: Prompt | list[Prompt | None] | None = None,
    ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Seed (:meth:`seed`), then start ``lanes`` (a bool mask; default all) afresh, from
        ``prompt`` (one for all of them, or a list with one per lane, None for a start
        frame). Returns every lane's observation (N, C, H, W) and the start info."""
        self.seed(seed, rng)
        mask = np.ones(self.num_envs, bool) if lanes is None else np.asarray(lanes, bool)
        if mask.all():  # every history is rewritten: the ring starts over, so a seeded reset repeats exactly
            self.history.start = 0
        if isinstance(prompt, list):
            plain = mask & np.array([p is None for p in prompt])
            self.reset_lanes(plain)
            for i in np.flatnonzero(mask & ~plain):
                self.reset_lanes(np.array([i]), prompt[i])
        else:
            self.reset_lanes(mask, prompt)
        self.pending[mask] = False
        self.obs = self.observe()
        return self.obs, start_info(self.num_envs)

    def reset_lanes(self, lanes: np.ndarray, prompt: Prompt | None = None) -> None:
        """Start ``lanes`` (bool mask or index array) afresh: from ``prompt``, or a random start frame
        (with probability ``anchor_starts`` a random anchor window instead), drawn from ``np_random``.
        A prompt of n < K frames is padded in front with its first frame and all-zero action codes."""
        idx = np.flatnonzero(lanes) if np.asarray(lanes).dtype == bool else np.asarray(lanes, np.int64)
        if len(idx) == 0:
            return
        k, rng = self.k, self.np_random
        idx_t = torch.as_tensor(idx, device=self.device)
        if prompt is None:
            pick = torch.as_tensor(rng.integers(0, len(self._starts), size=len(idx)), device=self.device)
            first = self._starts[pick]  # (n, C, H, W)
            self.history.write(idx_t, first[:, None].expand(-1, k, -1, -1, -1))
            self.actions[idx_t] = 0.0
            if self.anchor_starts > 0:
                mid = rng.random(len(idx)) < self.anchor_starts
                if mid.any():
                    at = torch.as_tensor(idx[mid], device=self.device)
                    window = torch.as_tensor(
                        rng.integers(0, len(self._anchor_frames), size=int(mid.sum())), device=self.device
                    )
                    self.history.write(at, self._anchor_frames[window])
                    self.actions[at] = self._anchor_actions[window]
        else:
            frames, codes = prompt
            f = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (n, C, H, W)
            pad = k - f.shape[0]
            f = torch.cat([f[:1].expand(pad, -1, -1, -1), f]) if pad else f
            a = torch.from_numpy(codes).to(self.device)
            a = torch.cat([torch.zeros(pad, self.action_dim, device=self.device), a]) if pad else a
            self.history.write(idx_t, f[None])
            self.actions[idx_t] = a[None]
        self.t[idx] = 0
        self.dream_step[idx] = 0
        self.over[idx] = 0
        self.drift_sq[idx] = 0.0
        self.needs_reset[idx] = False

    def reanchor_lanes(self, idx: np.ndarray) -> None:
        """Swap each lane's context for the nearest real window of the anchor bank
        (nearest by the newest frame's pixels), keeping its episode going."""
        if len(idx) == 0 or len(self._anchor_frames) == 0:
            return
        idx_t = torch.as_tensor(idx, device=self.device)
        newest = self.history.newest(idx_t).flatten(1)  # (n, CHW)
        bank = self._anchor_frames[:, -1].flatten(1)  # (M, CHW)
        nearest = torch.cdist(newest, bank).argmin(dim=1)
        self.history.write(idx_t, self._anchor_frames[nearest])
        self.actions[idx_t] = self._anchor_actions[nearest]
        self.dream_step[idx] = 0
        self.over[idx] = 0
        self.drift_sq[idx] = 0.0

    # ------------------------------------------------------------------- steps
    def encode(self, actions: Any) -> torch.Tensor:
        """Validate a batch of actions and return their model codes (N, A) on the device."""
        return self.codes(validate_action_batch(self.action_space, actions, self.num_envs))

    def codes(self, batch: np.ndarray) -> torch.Tensor:
        """Model codes (N, A) on the device for an already validated batch of actions."""
        return torch.from_numpy(encode_actions(self.spec, batch)).to(self.device)

    def check_steppable(self) -> None:
        """Raise :class:`ResetNeededError` unless every lane can step now."""
        if self.obs is None:
            raise ResetNeededError("step() called before reset(): call env.reset() first")
        stuck = self.needs_reset & ~self.pending
        if stuck.any():
            if self.autoreset == AutoresetMode.DISABLED:
                raise ResetNeededError(
                    "the episode has ended (terminated or truncated): call env.reset() before step()"
                )
            # only after reset(options={"reset_mask": ...}) left lanes unstarted
            raise ResetNeededError(f"lanes {np.flatnonzero(stuck).tolist()} were never reset: reset them before step()")

    def step(self, actions: Any, single: bool = False) -> StepResult:
        """Advance every lane one step (``actions``: a batch, or with ``single`` the one
        lane's action), then autoreset the lanes that ended as ``autoreset`` says.
        Everything is validated before anything changes."""
        self.check_steppable()
        if single:
            codes = self.codes(np.asarray([validate_action(self.action_space, actions)]))
        else:
            codes = self.encode(actions)
        # NEXT_STEP: lanes whose episode ended last step restart now, ignoring their action;
        # they still ride along in the one batched model call and are overwritten after it
        restarting = self.pending.copy()
        self.needs_reset[restarting] = False
        frames, reward, terminated, truncated, drift, drift_step, drift_reset, nonfinite = self._advance(codes)
        dream_step = self.dream_step.copy()
        if restarting.any():  # the restarted lanes report their start frame, nothing else
            self.reset_lanes(restarting)
            frames = self._merge(restarting, frames)
            for values in (reward, terminated, truncated, drift, drift_step, drift_reset):
                values[restarting] = 0
            dream_step = self.dream_step.copy()
            nonfinite &= ~restarting
        done = terminated | truncated
        info = lanes_info(drift, drift_step, dream_step, drift_reset, nonfinite)
        final = None
        if self.autoreset == AutoresetMode.NEXT_STEP:
            self.pending = done
        elif self.autoreset == AutoresetMode.SAME_STEP and done.any():
            final = frames
            self.reset_lanes(done)
            frames = self._merge(done, frames)
        self.obs = frames
        return StepResult(frames, reward, terminated, truncated, info, done, final)

    def _merge(self, lanes: np.ndarray, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` with the just-reset ``lanes`` showing their new newest frame."""
        return torch.where(torch.as_tensor(lanes, device=self.device)[:, None, None, None], self.observe(), frames)

    @torch.no_grad()
    def _advance(self, codes: torch.Tensor) -> tuple[Any, ...]:
        """One batched model step of every lane with action codes (N, A); returns the new frames
        (N, C, H, W) uint8 and per-lane reward, terminated, truncated, drift, drift_step,
        drift_reset and nonfinite arrays (fresh, for the caller to edit)."""
        acts = torch.cat([self.actions, codes[:, None]], dim=1)  # (N, K, A)
        noise = draw_noise(self.model, codes.shape[0], self.temperature, self.generator)
        with autocast(self.precision, self.device):
            if self.predict.compiled:  # one graph: the frames in time order
                out = self.predict(self.history.ordered(), acts, noise=noise)
            else:  # the ring as it lies
                out = self.predict(self.history.buf, acts, start=self.history.start, noise=noise)
        frame = torch.round(out["frame"].clamp(0.0, 1.0) * 255.0)  # (N, C, H, W) on the 8-bit grid (clamp keeps NaN)
        finite = (
            torch.isfinite(frame).flatten(1).all(dim=1)
            & torch.isfinite(out["term_logit"])
            & torch.isfinite(out["reward"])
        )
        frame = torch.where(finite[:, None, None, None], frame, self.history.newest() * 255.0)
        logit = torch.nan_to_num(out["term_logit"]) - self._term_logit_offset
        term = sample_termination(logit, self.temperature, self.generator)
        reward = sample_reward(out, self.model, self.temperature, self.generator)
        drift = predicted_rmse(out["log_err"])  # grey levels
        drift = torch.where(finite, drift, torch.full_like(drift, 255.0))
        frame_u8 = frame.to(torch.uint8)
        self.history.push(frame / 255.0)
        self.actions = torch.cat([self.actions[:, 1:], codes[:, None]], dim=1)
        # one host sync for the small per-lane results (the frames stay on the device)
        small = torch.stack([reward, term.float(), drift, finite.float()], dim=1).cpu().numpy()
        reward_np, term_np = small[:, 0].astype(np.float32), small[:, 1] > 0.5
        step_err, finite_np = small[:, 2].astype(np.float32), small[:, 3] > 0.5
        # errors compound: the drift score is the root of the summed squared predicted
        # per-step errors since the context was last real (reset or re-anchor)
        self.drift_sq += np.square(step_err.astype(np.float64))
        drift_np = np.sqrt(self.drift_sq).astype(np.float32)
        self.t += 1
        self.dream_step += 1
        act = self.drift_policy.decide(drift_np, self.dream_step, self.over)
        drift_reset = act & ~term_np & finite_np
        truncated = (self.t >= self.max_episode_steps) | ~finite_np
        if self.drift_policy.mode == "truncate":
            truncated |= drift_reset
        elif self.drift_policy.mode == "reanchor":
            self.reanchor_lanes(np.flatnonzero(drift_reset & ~truncated))
        term_np &= finite_np
        reward_np[~finite_np] = 0.0
        self.needs_reset |= term_np | truncated
        return frame_u8, reward_np, term_np, truncated, drift_np, step_err, drift_reset, ~finite_np

    def observe(self) -> torch.Tensor:
        """The newest frame of every lane, (N, C, H, W) uint8 on the device."""
        return torch.round(self.history.newest() * 255.0).to(torch.uint8)

    def close(self) -> None:
        """Forget the last observations: stepping needs a reset again."""
        self.obs = None

    @staticmethod
    def to_numpy(frames: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) uint8 tensor -> new (N, H, W, C) uint8 numpy array (the one device copy)."""
        return np.ascontiguousarray(frames.permute(0, 2, 3, 1).cpu().numpy())
