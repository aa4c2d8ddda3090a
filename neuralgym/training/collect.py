"""Collecting a dataset: whole episodes of the real env under a behaviour policy, resumable.

Episode ``i`` always uses seed ``seed + i`` and its own policy generator, so a collection
that was stopped and rerun ends with the same files as one that ran through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neuralgym.dream.real import RealWorldEnv
from neuralgym.training.data import (
    EPISODE_RE,
    Episode,
    dataset_lock,
    episode_paths,
    load_episode,
    prepare_folder,
    save_episode,
)
from neuralgym.training.policies import policy_factory
from neuralgym.world.spec import WorldSpec


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
    """Collect whole episodes until ``out_dir`` holds at least ``steps`` transitions.

    ``steps`` is a minimum: episodes are never cut short, so the last one runs to its
    end and the dataset may hold more (one Pong game is ~4,000 steps).
    Resumes from the files already there: episode ``i`` always uses seed ``seed + i``.
    Yields ``(episodes, steps)`` after each episode written. The folder is locked
    (:func:`dataset_lock`) while collecting: a second collector into it is refused.
    """
    out_dir = prepare_folder(Path(out_dir))
    with dataset_lock(out_dir):
        yield from _collect_locked(spec, out_dir, steps, policy, seed, progress)


def _collect_locked(
    spec: WorldSpec, out_dir: Path, steps: int, policy: str | None, seed: int, progress: bool
) -> Iterator[tuple[int, int]]:
    from tqdm import tqdm

    for stale in out_dir.glob(".episode_*.tmp*"):  # the folder is ours: any temporary is a killed write's
        stale.unlink()
    existing = episode_paths(out_dir)
    done_steps = 0
    for p in existing:
        done_steps += len(load_episode(p, spec.key))  # verifies: never extend a corrupt dataset silently
    next_index = 1 + max((int(EPISODE_RE.match(p.name).group(1)) for p in existing), default=-1)
    factory = policy_factory(policy or spec.collect_policy)
    env = RealWorldEnv(spec)
    bar = tqdm(
        total=steps, initial=min(done_steps, steps), unit="step", disable=not progress, desc=f"collect {spec.key}"
    )
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
