"""Real episodes played by an agent, recorded as a world's training data.

The agent acts through its own observation pipeline (latent features from a world file,
or stacked pixels) while :class:`EpisodeRecorder`, beneath that pipeline, keeps the real
frames, actions, rewards and terminations of every lane as :class:`~neuralgym.data.Episode`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecFrameStack

from neuralgym.training.data import EPISODE_RE, Episode, episode_paths, save_episode
from neuralgym.world.spec import WorldSpec


class EpisodeRecorder(VecEnvWrapper):
    """Hands every finished episode of every lane to ``on_episode`` (the pixel VecEnv beneath
    an agent's observation wrappers: frames are what the env returned, uint8 HWC)."""

    def __init__(self, venv: VecEnv, on_episode: Callable[[int, Episode], None]):
        super().__init__(venv)
        self.on_episode = on_episode
        self._lanes: list[dict[str, list]] = []
        self._actions: np.ndarray | None = None
        self.steps = 0  # env steps taken, all lanes together

    def _start(self, obs: np.ndarray) -> dict[str, list]:
        return {"frames": [obs.copy()], "actions": [], "rewards": [], "terminated": [], "truncated": []}

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._lanes = [self._start(o) for o in obs]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += self.num_envs
        for i, lane in enumerate(self._lanes):
            done = bool(dones[i])
            truncated = done and bool(infos[i].get("TimeLimit.truncated", False))
            lane["frames"].append(infos[i]["terminal_observation"] if done else obs[i])
            lane["actions"].append(self._actions[i])
            lane["rewards"].append(float(rewards[i]))
            lane["terminated"].append(done and not truncated)
            lane["truncated"].append(truncated)
            if done:
                self.on_episode(i, _episode(lane, self.action_space.shape == ()))
                self._lanes[i] = self._start(obs[i])
        return obs, rewards, dones, infos


def _episode(lane: dict[str, list], discrete: bool) -> Episode:
    return Episode(
        frames=np.stack(lane["frames"]).astype(np.uint8),
        actions=np.asarray(lane["actions"], dtype=np.int64 if discrete else np.float32),
        rewards=np.asarray(lane["rewards"], dtype=np.float32),
        terminated=np.asarray(lane["terminated"], dtype=bool),
        truncated=np.asarray(lane["truncated"], dtype=bool),
    )


def next_episode_index(data_dir: Path) -> int:
    return 1 + max((int(EPISODE_RE.match(p.name).group(1)) for p in episode_paths(data_dir)), default=-1)


@dataclass
class Collected:
    episodes: int
    steps: int  # real env steps taken (also those of episodes cut off at the end)
    returns: list[float]  # of the episodes written
    lengths: list[int]


def play_agent(
    spec: WorldSpec,
    agent: Any,
    meta: dict[str, Any],
    data_dir: Path,
    *,
    seed: int,
    epsilons: Sequence[float],
    episodes: int | None = None,
    steps: int | None = None,
    n_envs: int = 8,
    weights: str | None = None,
) -> Collected:
    """Play ``agent`` in ``spec``'s real env and save every finished episode in ``data_dir``.

    Each episode acts at random with a probability drawn (per episode, cycling per lane)
    from ``epsilons``, else by the agent's deterministic action. Stops after ``episodes``
    episodes (each lane plays whole episodes; the first ``episodes`` to finish are not
    favoured: lane ``i`` contributes its first ``ceil(episodes / n_envs)`` ones), or once
    ``steps`` real steps are taken (episodes still running then are dropped)."""
    from neuralgym.dream.sb3 import make_sb3_vec_env

    if (episodes is None) == (steps is None):
        raise ValueError("play_agent needs exactly one of episodes and steps")
    if episodes is not None:
        n_envs = max(1, min(n_envs, episodes))
    per_lane = None if episodes is None else -(-episodes // n_envs)
    data_dir.mkdir(parents=True, exist_ok=True)
    index = next_episode_index(data_dir)
    rng = np.random.default_rng(seed)
    eps_of_lane = np.array([epsilons[i % len(epsilons)] for i in range(n_envs)], dtype=float)
    done_of_lane = np.zeros(n_envs, int)
    out = Collected(0, 0, [], [])

    def keep(lane: int, ep: Episode) -> None:
        nonlocal index
        if per_lane is not None and done_of_lane[lane] >= per_lane:
            return
        done_of_lane[lane] += 1
        eps_of_lane[lane] = epsilons[(lane + done_of_lane[lane] * n_envs) % len(epsilons)]
        save_episode(data_dir / f"episode_{index:06d}.npz", ep, spec.key)
        index += 1
        out.episodes += 1
        out.returns.append(float(ep.rewards.sum()))
        out.lengths.append(len(ep))

    real_id = f"neuralgym/{spec.name}-real-v0"
    recorder = EpisodeRecorder(make_sb3_vec_env(real_id, n_envs, seed=seed), keep)
    env: VecEnv = recorder  # the agent's observation wrappers (as in make_agent_env) go on top
    if meta["obs"] == "latent":
        from neuralgym.dream.latent import LatentEncoder, VecLatent

        env = VecLatent(recorder, LatentEncoder(spec, weights or meta.get("weights"), mirror=meta.get("mirror", False)))
    else:
        env = VecFrameStack(recorder, n_stack=meta.get("frame_stack", 4))
    space = recorder.action_space
    obs = env.reset()
    while True:
        if per_lane is not None and (done_of_lane >= per_lane).all():
            break
        if steps is not None and recorder.steps >= steps:
            break
        action, _ = agent.predict(obs, deterministic=True)
        action = np.array(action)
        explore = rng.random(n_envs) < eps_of_lane
        for i in np.flatnonzero(explore):
            action[i] = space.sample() if space.shape != () else rng.integers(space.n)
        obs, _, _, _ = env.step(action)
    out.steps = recorder.steps
    env.close()
    return out
