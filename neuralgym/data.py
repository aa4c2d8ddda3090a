"""Episode files: collection from the real env, atomic writes, checksums, loading.

A dataset is a folder of ``episode_NNNNNN.npz`` files, one per episode, each holding
``frames`` (T+1, H, W, C) uint8, ``actions`` (T,) or (T, A), ``rewards``,
``terminated``, ``truncated`` (T,), the world key and a SHA-256 of the arrays. Files
are written to a temporary name and renamed, so a crash loses at most the episode in
progress; ``collect`` resumes from what is on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from neuralgym.spec import WorldSpec

EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")
ARRAY_KEYS = ("frames", "actions", "rewards", "terminated", "truncated")


class DatasetError(ValueError):
    """An episode file is missing, corrupt, or of another world."""


@dataclass
class Episode:
    frames: np.ndarray  # (T+1, H, W, C) uint8: frames[0] is the reset frame
    actions: np.ndarray  # (T,) int64 or (T, A) float32: actions[t] leads frames[t] -> frames[t+1]
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.actions)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in ARRAY_KEYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file, fsync it, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_episode(path: Path, episode: Episode, world: str) -> None:
    arrays = {k: getattr(episode, k) for k in ARRAY_KEYS}
    digest = _checksum(arrays)
    atomic_write_bytes(
        path,
        lambda f: np.savez_compressed(f, **arrays, world=np.array(world), sha256=np.array(digest)),
    )


def load_episode(path: Path, world: str | None = None) -> Episode:
    """Load and verify one episode file; raise :class:`DatasetError` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ARRAY_KEYS}
            stored = str(z["sha256"])
            stored_world = str(z["world"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DatasetError(f"{path}: unreadable or incomplete episode file ({e})") from e
    except Exception as e:  # zipfile.BadZipFile and friends
        raise DatasetError(f"{path}: corrupt episode file ({type(e).__name__}: {e})") from e
    if _checksum(arrays) != stored:
        raise DatasetError(f"{path}: checksum mismatch, the file is corrupt")
    if world is not None and stored_world != world:
        raise DatasetError(f"{path}: episode of world {stored_world!r}, expected {world!r}")
    ep = Episode(**arrays)
    if ep.frames.shape[0] != len(ep) + 1:
        raise DatasetError(f"{path}: {ep.frames.shape[0]} frames for {len(ep)} actions (expected actions + 1)")
    return ep


def episode_paths(data_dir: Path) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p for p in data_dir.iterdir() if EPISODE_RE.match(p.name))


def load_dataset(data_dir: Path, spec: WorldSpec) -> list[Episode]:
    """Every episode in ``data_dir``, verified, with frames of the world's shape."""
    paths = episode_paths(data_dir)
    if not paths:
        raise DatasetError(f"no episode files (episode_NNNNNN.npz) in {data_dir}")
    episodes = []
    for p in paths:
        ep = load_episode(p, spec.key)
        if ep.frames.shape[1:] != spec.obs_shape:
            raise DatasetError(f"{p}: frames of shape {ep.frames.shape[1:]}, world expects {spec.obs_shape}")
        if len(ep) >= 1:
            episodes.append(ep)
    return episodes


def run_episode(env, policy, seed: int, max_steps: int) -> Episode:
    obs, _ = env.reset(seed=seed)
    frames, actions, rewards, terms, truncs = [obs], [], [], [], []
    for _ in range(max_steps):
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        if terminated or truncated:
            break
    act_dtype = np.int64 if env.action_space.shape == () else np.float32
    return Episode(
        frames=np.stack(frames).astype(np.uint8),
        actions=np.asarray(actions, dtype=act_dtype),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.asarray(terms, dtype=bool),
        truncated=np.asarray(truncs, dtype=bool),
    )


def collect(
    spec: WorldSpec,
    out_dir: Path,
    steps: int,
    policy: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Iterator[tuple[int, int]]:
    """Collect episodes until ``out_dir`` holds at least ``steps`` transitions.

    Resumes from the files already there: episode ``i`` always uses seed ``seed + i``.
    Yields ``(episodes, steps)`` after each episode written.
    """
    from tqdm import tqdm

    from neuralgym.policies import policy_factory
    from neuralgym.real import RealWorldEnv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".episode_*.tmp*"):
        stale.unlink()
    existing = episode_paths(out_dir)
    done_steps = 0
    for p in existing:
        done_steps += len(load_episode(p, spec.key))  # verifies: never extend a corrupt dataset silently
    next_index = 1 + max((int(EPISODE_RE.match(p.name).group(1)) for p in existing), default=-1)
    factory = policy_factory(policy or spec.collect_policy)
    env = RealWorldEnv(spec)
    bar = tqdm(total=steps, initial=min(done_steps, steps), unit="step", disable=not progress, desc=f"collect {spec.key}")
    try:
        while done_steps < steps:
            episode_seed = seed + next_index
            rng = np.random.default_rng([seed, next_index])
            ep = run_episode(env, factory(env, rng), episode_seed, spec.max_episode_steps)
            save_episode(out_dir / f"episode_{next_index:06d}.npz", ep, spec.key)
            done_steps += len(ep)
            next_index += 1
            bar.update(min(len(ep), max(0, steps - bar.n)))
            yield next_index, done_steps
    finally:
        bar.close()
        env.close()
