"""The agents/ scripts, end to end: train in the dream, evaluate in reality, one pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS = REPO_ROOT / "agents"
sys.path.insert(0, str(AGENTS))
import evaluate  # noqa: E402

from neuralgym.dream.latent import LATENT_DIMS  # noqa: E402

import train_ppo  # noqa: E402


def run_script(name: str, args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, str(AGENTS / name), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_train_in_the_dream_then_evaluate_in_reality(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "agent"
    run_script(
        "train_ppo.py",
        ["--env", "neuralgym/CartPole-v0", "--timesteps", "512", "--n-envs", "4", "--seed", "3", "--out", str(out)],
        subprocess_env,
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".zip").is_file() and (tmp_path / "agent_tb").is_dir()
    # the CartPole latent recipe: an ensemble of three agents trained in truncated dreams,
    # clean observations, episodes from start frames
    assert meta["obs"] == "latent" and meta["drift_policy"] == "truncate"
    assert meta["obs_noise"] == 0.0 and meta["anchor_starts"] == 0.0
    assert meta["mirror"] is True  # saved mirror-symmetric: observations are the pair
    assert meta["timesteps"] == 512 and meta["n_envs"] == 4
    assert meta["compile"] is True and meta["linear_decay"] is False  # the dream's model under torch.compile
    assert meta["members"] == ["agent.zip", "agent.member1.zip", "agent.member2.zip"]
    assert all((tmp_path / name).is_file() for name in meta["members"])
    assert meta["member_seeds"][0] == 3 and len(set(meta["member_seeds"])) == 3
    assert sorted(p.name for p in (tmp_path / "agent_tb").iterdir()) == ["ppo_1", "ppo_member1_1", "ppo_member2_1"]

    stdout = run_script(
        "evaluate.py",
        [
            "--model",
            str(out.with_suffix(".zip")),
            "--env",
            "neuralgym/CartPole-real-v0",
            "--episodes",
            "3",
            "--seed",
            "5",
            "--json",
        ],
        subprocess_env,
    )
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["episodes"] == 3 and len(report["returns"]) == 3 and report["members"] == 3
    assert report["mean"] == pytest.approx(np.mean(report["returns"])) and report["std"] >= 0.0
    assert all(1 <= r <= 500 for r in report["returns"])  # CartPole: +1 a step, 500 steps at most


def test_train_options_are_recorded_and_checked(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "agent"
    run_script(
        "train_ppo.py",
        [
            "--env",
            "neuralgym/CartPole-v0",
            "--timesteps",
            "256",
            "--n-envs",
            "2",
            "--obs-noise",
            "0.2",
            "--anchor-starts",
            "0.5",
            "--members",
            "1",
            "--linear-decay",
            "--no-compile",
            "--no-mirror",
            "--out",
            str(out),
        ],
        subprocess_env,
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["obs_noise"] == 0.2 and meta["anchor_starts"] == 0.5
    assert meta["mirror"] is False
    assert meta["linear_decay"] is True and meta["compile"] is False
    # the saved agent carries the schedules: learning rate and clip range halfway down at mid-training
    agent = PPO.load(str(out.with_suffix(".zip")), device="cpu")
    lr, clip = train_ppo.DEFAULT_RECIPE["ppo"]["learning_rate"], train_ppo.DEFAULT_RECIPE["ppo"]["clip_range"]
    assert agent.lr_schedule(0.5) == pytest.approx(lr / 2) and agent.clip_range(0.5) == pytest.approx(clip / 2)
    assert agent.lr_schedule(0.0) == pytest.approx(0.0)
    assert meta["members"] == ["agent.zip"] and sorted(p.name for p in tmp_path.glob("*.zip")) == ["agent.zip"]
    assert agent.observation_space.shape == (LATENT_DIMS,) and type(agent.policy).__name__ == "ActorCriticPolicy"
    proc = subprocess.run(
        [sys.executable, str(AGENTS / "train_ppo.py"), "--env", "neuralgym/Pong-v0", "--mirror", "--out", str(out)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "--mirror needs --obs latent and a world whose spec declares" in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            str(AGENTS / "train_ppo.py"),
            "--env",
            "neuralgym/CartPole-v0",
            "--obs-noise",
            "-1",
            "--out",
            str(out),
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "--obs-noise must be >= 0" in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            str(AGENTS / "train_ppo.py"),
            "--env",
            "neuralgym/CartPole-v0",
            "--members",
            "0",
            "--out",
            str(out),
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "--members must be >= 1" in proc.stderr
    # an ensemble whose member file went missing is refused by name, not evaluated as a smaller one
    meta["members"] = ["agent.zip", "agent.member1.zip"]
    out.with_suffix(".json").write_text(json.dumps(meta))
    proc = subprocess.run(
        [
            sys.executable,
            str(AGENTS / "evaluate.py"),
            "--model",
            str(out.with_suffix(".zip")),
            "--env",
            "neuralgym/CartPole-real-v0",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "agent.member1.zip" in proc.stderr


def test_evaluate_refuses_a_missing_agent(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(AGENTS / "evaluate.py"),
            "--model",
            str(tmp_path / "nope.zip"),
            "--env",
            "neuralgym/CartPole-real-v0",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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


def _biased_agent(p_right: float):
    """A PPO agent on the constant env whose policy is P(action 1) = p_right everywhere."""
    import torch
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", _Constant(), n_steps=8, batch_size=8, seed=0, device="cpu")
    with torch.no_grad():
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.copy_(torch.tensor([0.0, float(np.log(p_right / (1 - p_right)))]))
    return model


def test_an_ensemble_acts_on_its_members_mean_probabilities() -> None:
    obs = np.zeros((2, 32), np.float32)
    # two members lean right (0.6), one is sure of left (0.1): the majority says right, the mean (0.43) left
    members = [_biased_agent(0.6), _biased_agent(0.6), _biased_agent(0.1)]
    ensemble = evaluate.PolicyEnsemble(members, seed=0)
    action, _ = ensemble.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, [0, 0])
    action, _ = evaluate.PolicyEnsemble(members[:2]).predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, [1, 1])
    # sampled: a member picked at random per lane, so P(right) is the mean probability
    import torch

    torch.manual_seed(0)
    draws = np.concatenate([ensemble.predict(obs, deterministic=False)[0] for _ in range(1500)])
    assert abs(draws.mean() - (0.6 + 0.6 + 0.1) / 3) < 0.03
