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

from neuralgym.agents.ensemble import PolicyEnsemble
from neuralgym.agents.recipe import GENERIC, AgentRecipe, recipe_for, recipe_from_table
from neuralgym.dream.latent import LATENT_DIMS
from neuralgym.world.catalog import get_spec

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS = REPO_ROOT / "agents"


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
    # the CartPole latent recipe: an ensemble of three agents trained in whole dreams,
    # clean observations, episodes from start frames
    assert meta["obs"] == "latent" and meta["drift_policy"] == "none"
    assert meta["mirror"] is True  # saved mirror-symmetric: observations are the pair
    assert meta["timesteps"] == 512 and meta["n_envs"] == 4
    assert meta["compile"] is True  # the dream's model under torch.compile
    assert meta["recipe"]["ppo"]["net_arch"] == [64, 64]  # the spec's [agent.latent.ppo]
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
            "--members",
            "1",
            "--no-compile",
            "--no-mirror",
            "--drift-policy",
            "none",
            "--out",
            str(out),
        ],
        subprocess_env,
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["mirror"] is False and meta["compile"] is False and meta["drift_policy"] == "none"
    agent = PPO.load(str(out.with_suffix(".zip")), device="cpu")
    assert agent.learning_rate == pytest.approx(recipe_for(get_spec("cartpole")).ppo.learning_rate)
    assert meta["members"] == ["agent.zip"] and sorted(p.name for p in tmp_path.glob("*.zip")) == ["agent.zip"]
    assert agent.observation_space.shape == (LATENT_DIMS,) and type(agent.policy).__name__ == "ActorCriticPolicy"
    proc = subprocess.run(
        [sys.executable, str(AGENTS / "train_ppo.py"), "--env", "neuralgym/Pong-v0", "--mirror", "--out", str(out)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "needs a world whose spec declares [actions] mirror" in proc.stderr
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
    assert proc.returncode != 0 and "members must be an int >= 1" in proc.stderr
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


def test_recipes_are_data_from_the_spec() -> None:
    cartpole = recipe_for(get_spec("cartpole"))
    assert cartpole.members == 3 and cartpole.mirror and cartpole.drift_policy == "none"
    assert cartpole.ppo.net_arch == (64, 64) and cartpole.ppo.ppo_kwargs()["policy_kwargs"] == {"net_arch": [64, 64]}
    assert recipe_for(get_spec("carracing")).ppo.ppo_kwargs()["policy_kwargs"]["log_std_init"] == -1.0
    assert recipe_for(get_spec("pong"), "pixels") == GENERIC["pixels"]  # no [agent.pixels]: the generic recipe
    assert cartpole.replace(members=1, timesteps=None).members == 1  # None keeps the recipe's value
    assert cartpole.replace(ppo={"gamma": 0.9}).ppo.gamma == 0.9
    with pytest.raises(ValueError, match="unknown recipe keys memebrs, ppo.lr"):
        recipe_from_table({"memebrs": 2, "ppo": {"lr": 1.0}}, "latent")
    with pytest.raises(ValueError, match="timesteps must be an int >= 1"):
        AgentRecipe(timesteps=0)
    with pytest.raises(ValueError, match="mirror-symmetric recipe needs obs = 'latent'"):
        AgentRecipe(obs="pixels", mirror=True)


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
    ensemble = PolicyEnsemble(members, seed=0)
    action, _ = ensemble.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, [0, 0])
    action, _ = PolicyEnsemble(members[:2]).predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, [1, 1])
    # sampled: a member picked at random per lane, so P(right) is the mean probability
    import torch

    torch.manual_seed(0)
    draws = np.concatenate([ensemble.predict(obs, deterministic=False)[0] for _ in range(1500)])
    assert abs(draws.mean() - (0.6 + 0.6 + 0.1) / 3) < 0.03


def test_readme_latent_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's two-minute agent, on a tiny budget: the same code, fewer steps and episodes."""
    readme = (REPO_ROOT / "README.md").read_text()
    agents = readme[readme.index("## Agents") :]
    code = agents[agents.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    assert ".learn(150_000)" in code and "n_eval_episodes=20" in code
    code = code.replace(".learn(150_000)", ".learn(1024)").replace("n_eval_episodes=20", "n_eval_episodes=2")
    exec(compile(code, "README.md", "exec"), {})
    mean, std = eval(capsys.readouterr().out.strip().splitlines()[-1].replace("np.float64", ""))
    assert 1.0 <= mean <= 500.0 and std >= 0.0


class _Recorder(DummyVecEnv):
    """Four lanes that record the actions they are given; lane 0's episodes last 3 steps."""

    def __init__(self) -> None:
        import gymnasium as gym

        taken: list[list[int]] = [[] for _ in range(4)]
        self.taken = taken

        def lane(i: int):
            class Lane(gym.Env):
                observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
                action_space = gym.spaces.Discrete(3)

                def reset(self, seed=None, options=None):
                    self.t = 0
                    return np.zeros(1, np.float32), {}

                def step(self, action):
                    self.t += 1
                    taken[i].append(int(action))
                    return np.zeros(1, np.float32), 0.0, i == 0 and self.t == 3, False, {}

            return Lane

        super().__init__([lane(i) for i in range(4)])


def test_sticky_actions_repeat_the_last_action_while_training() -> None:
    from neuralgym.agents.sticky import VecStickyActions

    venv = _Recorder()
    env = VecStickyActions(venv, 0.75, seed=0)
    env.reset()
    asked = np.random.default_rng(1).integers(3, size=(400, 4))
    for a in asked:
        env.step(a)
    taken = np.array(venv.taken).T  # (steps, lanes)
    # lanes 1-3 never end: 3/4 of their steps repeat the last action, which differs from the
    # one asked for 2/3 of the time; every other step takes the action asked for
    overridden = (taken[1:, 1:] != asked[1:, 1:]).mean()
    assert 0.45 < overridden < 0.55
    assert np.all((taken[1:] == asked[1:]) | (taken[1:] == taken[:-1]))
    # an episode's first step takes the agent's action: lane 0 starts anew every 3 steps
    assert np.array_equal(taken[3::3, 0], asked[3::3, 0])
    assert np.array_equal(taken[0], asked[0])
    env0 = VecStickyActions(_Recorder(), 0.0)
    env0.reset()
    for a in asked[:20]:
        env0.step(a)
    assert np.array_equal(np.array(env0.venv.taken).T, asked[:20])  # p = 0: the agent's actions
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        VecStickyActions(_Recorder(), 1.0)
    with pytest.raises(ValueError, match="recipe sticky must be a probability"):
        AgentRecipe(sticky=1.5)
    assert GENERIC["latent"].sticky == 0.75 and recipe_for(get_spec("cartpole")).sticky == 0.0


def test_an_agent_can_start_from_another_agents_weights(tmp_path: Path) -> None:
    """``AgentRun.init_from``: the new agent's policy starts as the old one's (with a zero
    learning rate it ends there too), and a policy of another shape is refused by name."""
    import torch

    from neuralgym.agents.ppo import AgentRun, train_agent

    recipe = AgentRecipe(timesteps=64, n_envs=2, compile=False).replace(ppo={"n_steps": 32, "batch_size": 32})
    first = AgentRun(recipe, "neuralgym/CartPole-v0", str(tmp_path / "first"), seed=1, progress=False)
    train_agent(first)
    still = recipe.replace(ppo={"learning_rate": 0.0})
    meta = train_agent(
        AgentRun(still, first.env_id, str(tmp_path / "second"), seed=2, progress=False, init_from=first.out)
    )
    assert meta["init_from"] == str((tmp_path / "first.zip").resolve())
    a, b = (PPO.load(tmp_path / f"{name}.zip", device="cpu").policy.state_dict() for name in ("first", "second"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = train_agent(AgentRun(still, first.env_id, str(tmp_path / "fresh"), seed=2, progress=False))
    c = PPO.load(tmp_path / "fresh.zip", device="cpu").policy.state_dict()
    assert fresh["init_from"] is None and not all(torch.equal(a[k], c[k]) for k in a)
    wider = recipe.replace(ppo={"net_arch": [8]})
    with pytest.raises(ValueError, match="does not fit this recipe's policy"):
        train_agent(AgentRun(wider, first.env_id, str(tmp_path / "third"), progress=False, init_from=first.out))
