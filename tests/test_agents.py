"""The agents/ scripts, end to end: train in the dream, evaluate in reality, one pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS = REPO_ROOT / "agents"
sys.path.insert(0, str(AGENTS))
import train_ppo  # noqa: E402


def run_script(name: str, args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, str(AGENTS / name), *args], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_train_in_the_dream_then_evaluate_in_reality(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "agent"
    run_script("train_ppo.py", ["--env", "neuralgym/CartPole-v0", "--timesteps", "512", "--n-envs", "4", "--seed", "3",
                                "--out", str(out)], subprocess_env)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".zip").is_file() and (tmp_path / "agent_tb").is_dir()
    # the CartPole latent recipe: truncated dreams, clean observations, episodes from start frames
    assert meta["obs"] == "latent" and meta["drift_policy"] == "truncate"
    assert meta["obs_noise"] == 0.0 and meta["anchor_starts"] == 0.0
    assert meta["timesteps"] == 512 and meta["n_envs"] == 4

    stdout = run_script("evaluate.py", ["--model", str(out.with_suffix(".zip")), "--env", "neuralgym/CartPole-real-v0",
                                        "--episodes", "3", "--seed", "5", "--json"], subprocess_env)
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["episodes"] == 3 and len(report["returns"]) == 3
    assert report["mean"] == pytest.approx(np.mean(report["returns"])) and report["std"] >= 0.0
    assert all(1 <= r <= 500 for r in report["returns"])  # CartPole: +1 a step, 500 steps at most


def test_train_options_are_recorded_and_checked(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "agent"
    run_script("train_ppo.py", ["--env", "neuralgym/CartPole-v0", "--timesteps", "256", "--n-envs", "2",
                                "--obs-noise", "0.2", "--anchor-starts", "0.5", "--out", str(out)], subprocess_env)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["obs_noise"] == 0.2 and meta["anchor_starts"] == 0.5
    proc = subprocess.run([sys.executable, str(AGENTS / "train_ppo.py"), "--env", "neuralgym/CartPole-v0", "--obs-noise",
                           "-1", "--out", str(out)], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--obs-noise must be >= 0" in proc.stderr


def test_evaluate_refuses_a_missing_agent(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, str(AGENTS / "evaluate.py"), "--model", str(tmp_path / "nope.zip"),
                           "--env", "neuralgym/CartPole-real-v0"], env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "no agent at" in proc.stderr


class _Constant(DummyVecEnv):
    """Two lanes that always observe zeros."""

    def __init__(self) -> None:
        import gymnasium as gym

        class Zeros(gym.Env):
            observation_space = gym.spaces.Box(-10.0, 10.0, (32,), np.float32)
            action_space = gym.spaces.Discrete(2)

            def reset(self, seed=None, options=None):
                return np.zeros(32, np.float32), {}

            def step(self, action):
                return np.zeros(32, np.float32), 1.0, False, False, {}

        super().__init__([Zeros, Zeros])


def test_observation_noise_has_the_asked_spread_and_is_seeded() -> None:
    def sample(seed: int) -> np.ndarray:
        env = train_ppo.ObservationNoise(_Constant(), sigma=0.1, seed=seed)
        obs = [env.reset()]
        for _ in range(200):
            obs.append(env.step(np.zeros(2, dtype=np.int64))[0])
        return np.stack(obs)

    a, b = sample(7), sample(7)
    assert a.dtype == np.float32 and a.shape == (201, 2, 32)
    np.testing.assert_array_equal(a, b)  # the same seed, the same noise
    assert abs(a.std() - 0.1) < 0.005 and abs(a.mean()) < 0.005
    assert not np.array_equal(a, sample(8))
