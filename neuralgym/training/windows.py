"""Training windows: (K context frames + R rollout targets) cut from episodes.

Every transition of every episode starts one window. Each episode is padded at its
start with K-1 copies of its first frame and all-zero action codes, exactly as the
dream pads a short prompt, so the model also learns to start from a single frame.
Steps past an episode's end are masked out of the loss.

An epoch is one seeded permutation of all window starts; a global batch is the next
slice of it. Under DDP every rank draws the same permutation and takes its own part
of each global batch, so no window is seen twice in an epoch and the global batch is
the same as in a single process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neuralgym.training.data import Episode
from neuralgym.world.spaces import encode_actions
from neuralgym.world.spec import WorldSpec


@dataclass
class Batch:
    frames: torch.Tensor  # (B, K+R, C, H, W) float in [0, 1]
    actions: torch.Tensor  # (B, K+R-1, A) float: actions[:, j] leads frames[:, j] -> frames[:, j+1]
    rewards: torch.Tensor  # (B, R)
    terminated: torch.Tensor  # (B, R) float
    mask: torch.Tensor  # (B, R) float: 1 where the target frame exists
    # (B,) how much each window counts where the heads learn how often things happen: 1 / how
    # often an epoch draws it, so oversampled windows are practised more, not believed more
    weight: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(
            *(
                t.to(device, non_blocking=True)
                for t in (self.frames, self.actions, self.rewards, self.terminated, self.mask, self.weight)
            )
        )


class WindowDataset:
    """All episodes of a dataset in flat uint8 buffers, cut into windows on demand."""

    def __init__(self, episodes: list[Episode], spec: WorldSpec):
        k = spec.context_length
        self.k = k
        frames, actions, rewards, terms, starts, ends, origins = [], [], [], [], [], [], []
        offset = 0
        for ep in episodes:
            t = len(ep)
            f = np.concatenate([np.repeat(ep.frames[:1], k - 1, axis=0), ep.frames])  # (T+K, H, W, C)
            a = encode_actions(spec, ep.actions)
            a = np.concatenate([np.zeros((k - 1, a.shape[1]), np.float32), a])  # (T+K-1, A)
            frames.append(f)
            actions.append(np.concatenate([a, np.zeros((1, a.shape[1]), np.float32)]))  # pad to T+K rows
            rewards.append(np.concatenate([np.zeros(k - 1, np.float32), ep.rewards, [0.0]]))
            terms.append(np.concatenate([np.zeros(k - 1, np.float32), ep.terminated.astype(np.float32), [0.0]]))
            # window start s (padded coords) predicts frame s+K from frames s..s+K-1; valid while s+K <= T+K-1
            starts.append(offset + np.arange(t))
            ends.append(np.full(t, offset + t + k - 1))  # index of the episode's last frame
            origins.append(np.full(t, offset + k - 1))  # the transition into the episode's first target
            offset += t + k
        self.frames = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W) uint8
        self.actions = torch.from_numpy(np.concatenate(actions))
        self.rewards = torch.from_numpy(np.concatenate(rewards).astype(np.float32))
        self.terminated = torch.from_numpy(np.concatenate(terms).astype(np.float32))
        self.starts = np.concatenate(starts)
        self.ends = np.concatenate(ends)
        self.origins = np.concatenate(origins)

    def __len__(self) -> int:
        return len(self.starts)

    def population(
        self,
        terminal_oversample: int = 1,
        terminal_window: int = 40,
        reward_oversample: int = 1,
        reward_window: int = 8,
        reward_after: int = 0,
        hard: np.ndarray | None = None,
        hard_oversample: int = 1,
    ) -> np.ndarray:
        """Window ids for one epoch: every window once, the windows whose first target
        lies within ``terminal_window`` steps of a termination ``terminal_oversample``
        times, and those with a reward event (a reward other than the most common one)
        among their first ``reward_window`` targets ``reward_oversample`` times, and with
        ``reward_after`` S > 0 also the windows whose first ``reward_window`` targets hold the
        step S after such an event in the same episode. Falls, crashes and points are rare in
        any behaviour policy's data, yet they are where the dynamics are least forgiving and
        what decides an agent's return; and what a point sets off after a fixed pause comes
        once per point too (Pong serves its next ball 18-19 steps after a point). The window
        ids ``hard`` (:mod:`~neuralgym.training.hard_windows`) are drawn ``hard_oversample`` times."""
        ids = np.arange(len(self.starts))
        parts = [ids]
        if terminal_oversample > 1:
            ends_in_term = self.terminated[self.ends - 1].numpy() > 0.5
            near = ends_in_term & (self.ends - (self.starts + self.k - 1) <= terminal_window)
            parts.append(np.repeat(ids[near], terminal_oversample - 1))
        if reward_oversample > 1 and len(self.rewards):
            r = self.rewards.numpy()
            values, counts = np.unique(r, return_counts=True)
            event = np.r_[(r != values[counts.argmax()]).astype(np.int64), np.zeros(reward_window, np.int64)]
            csum = np.r_[0, np.cumsum(event)]
            first = self.starts + self.k - 1  # the transition into each window's first target
            has = (csum[np.minimum(first + reward_window, len(event))] - csum[first]) > 0
            if reward_after > 0:  # events S steps before the first targets, in the same episode
                lo = np.maximum(first - reward_after, self.origins)
                hi = np.maximum(first - reward_after + reward_window, self.origins)
                has |= (csum[hi] - csum[lo]) > 0
            parts.append(np.repeat(ids[has], reward_oversample - 1))
        if hard is not None and hard_oversample > 1:
            parts.append(np.repeat(np.asarray(hard, dtype=ids.dtype), hard_oversample - 1))
        return np.concatenate(parts)

    def batch(self, window_ids: np.ndarray, rollout: int) -> Batch:
        """The windows ``window_ids`` with ``rollout`` targets each, each weighing 1 for the
        heads (training sets :attr:`Batch.weight` from :func:`draw_weights`)."""
        k, r = self.k, rollout
        s = torch.from_numpy(self.starts[window_ids])[:, None]
        end = torch.from_numpy(self.ends[window_ids])[:, None]
        fidx = (s + torch.arange(k + r)[None]).clamp(max=end)  # past the end: repeat the last frame
        frames = self.frames[fidx].float().div_(255.0)  # (B, K+R, C, H, W)
        aidx = (s + torch.arange(k + r - 1)[None]).clamp(max=end - 1)
        tidx = (s + k - 1 + torch.arange(r)[None]).clamp(max=end - 1)  # transitions into the targets
        mask = ((s + k - 1 + torch.arange(r)[None]) < end).float()
        weight = torch.ones(len(window_ids))
        return Batch(frames, self.actions[aidx], self.rewards[tidx] * mask, self.terminated[tidx] * mask, mask, weight)


def draw_weights(population: np.ndarray, n: int) -> np.ndarray:
    """(n,) per window id: 1 / how often ``population`` (one epoch's draws) holds it, scaled to
    mean 1 over those draws. Weighing a head's loss by it undoes the oversampling: the head
    learns how often an event happens in the data, while the frames still practise it often."""
    counts = np.bincount(population, minlength=n).astype(np.float64)
    weight = np.divide(1.0, counts, out=np.zeros(n), where=counts > 0)
    return weight * len(population) / max(1, int((counts > 0).sum()))


class EpochSampler:
    """Seeded epoch permutations of window ids; ``next(global_batch)`` gives this rank's part.

    ``population`` is the number of windows or the array of window ids of one epoch
    (ids may repeat, see :meth:`WindowDataset.population`)."""

    def __init__(
        self,
        population: int | np.ndarray,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
        position: int = 0,
    ):
        self.population = np.arange(population) if np.ndim(population) == 0 else np.asarray(population)
        self.n, self.seed, self.rank, self.world_size = len(self.population), seed, rank, world_size
        self.epoch, self.position = epoch, position
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        return self.population[np.random.default_rng([self.seed, self.epoch]).permutation(self.n)]

    def next(self, global_batch: int) -> np.ndarray:
        if self.position + global_batch > self.n:
            self.epoch, self.position = self.epoch + 1, 0
            self._perm = self._permutation()
        ids = self._perm[self.position : self.position + global_batch]
        self.position += global_batch
        per_rank = global_batch // self.world_size
        return ids[self.rank * per_rank : (self.rank + 1) * per_rank]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}
