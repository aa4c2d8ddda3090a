"""Evaluate a saved agent in any neuralgym id, dream or real.

    python agents/evaluate.py --model runs/agents/cartpole_dream.zip --env neuralgym/CartPole-real-v0 --episodes 50 --seed 123 --json

Rebuilds the agent's observation pipeline from the ``.json`` saved beside the model
(observation mode, frame stacking, world weights, the mirror pair) and its policy (one SB3 model, or the
ensemble of members that ``train_ppo.py --members`` trained), runs ``--episodes`` full
episodes with deterministic actions and reports the mean and standard deviation of the return.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_ppo import make_env  # noqa: E402  (the one pipeline shared with training)


class PolicyEnsemble:
    """Several SB3 agents acting as one, with SB3's ``predict`` signature.

    Deterministic: the action with the highest mean probability over the members
    (discrete actions), or the members' mean action (continuous). Stochastic: each
    lane's action is sampled from a member picked uniformly at random, which is exactly
    a sample of the members' mean distribution."""

    def __init__(self, models: list, seed: int = 0):
        if not models:
            raise ValueError("an ensemble needs at least one member")
        self.models = models
        self.action_space = models[0].action_space
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: np.ndarray, state=None, episode_start=None, deterministic: bool = False):
        if not deterministic:
            actions = np.stack([m.predict(obs, deterministic=False)[0] for m in self.models])  # (M, n, ...)
            pick = self.rng.integers(len(self.models), size=actions.shape[1])
            return actions[pick, np.arange(actions.shape[1])], None
        if isinstance(self.action_space, spaces.Discrete):
            with torch.no_grad():
                probs = [
                    m.policy.get_distribution(m.policy.obs_to_tensor(obs)[0]).distribution.probs for m in self.models
                ]
            return torch.stack(probs).mean(dim=0).argmax(dim=-1).cpu().numpy(), None
        return np.mean([m.predict(obs, deterministic=True)[0] for m in self.models], axis=0), None


def load_agent(zip_path: Path, meta: dict, seed: int = 0):
    """The SB3 model at ``zip_path``, or the ensemble its ``.json`` lists (files beside it)."""
    names = meta.get("members") or [zip_path.name]
    paths = [zip_path.parent / name for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"error: the agent's members are missing: {', '.join(missing)}")
    models = [PPO.load(str(p), device="cpu") for p in paths]
    return models[0] if len(models) == 1 else PolicyEnsemble(models, seed)


def evaluate(model_path: str, env_id: str, episodes: int, seed: int, deterministic: bool = True) -> dict:
    zip_path = Path(model_path if model_path.endswith(".zip") else model_path + ".zip")
    if not zip_path.is_file():
        raise SystemExit(f"error: no agent at {zip_path}")
    meta_path = zip_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"obs": "pixels"}
    # evaluation runs the env as it is (its own drift policy); only the observation pipeline is rebuilt
    env = make_env(
        env_id,
        meta["obs"],
        1,
        seed,
        meta.get("weights"),
        meta.get("temperature"),
        0.0,
        "cpu",
        meta.get("drift_policy"),
        mirror=meta.get("mirror", False),
    )
    model = load_agent(zip_path, meta, seed)
    returns, lengths = [], []
    obs = env.reset()
    while len(returns) < episodes:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, _, dones, infos = env.step(action)
        if dones[0] and "episode" in infos[0]:
            returns.append(float(infos[0]["episode"]["r"]))
            lengths.append(int(infos[0]["episode"]["l"]))
    env.close()
    return {
        "env": env_id,
        "model": str(zip_path),
        "obs": meta["obs"],
        "members": len(getattr(model, "models", [model])),
        "episodes": episodes,
        "seed": seed,
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "min": float(np.min(returns)),
        "max": float(np.max(returns)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the agent's .zip (its .json must sit beside it)")
    p.add_argument("--env", required=True, help="any neuralgym id, dream or -real-v0")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args()
    r = evaluate(args.model, args.env, args.episodes, args.seed, deterministic=not args.stochastic)
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{r['env']}: {r['mean']:.1f} ± {r['std']:.1f} over {r['episodes']} episodes (min {r['min']:.0f}, max {r['max']:.0f})"
        )


if __name__ == "__main__":
    main()
