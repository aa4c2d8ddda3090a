"""Evaluate a saved agent in any neuralgym id, dream or real.

    python agents/evaluate.py --model runs/agents/cartpole_dream.zip --env neuralgym/CartPole-real-v0 --episodes 50 --seed 123 --json

Rebuilds the agent's observation pipeline from the ``.json`` saved beside the model
(observation mode, frame stacking, world weights), runs ``--episodes`` full episodes
with deterministic actions and reports the mean and standard deviation of the return.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_ppo import make_env  # noqa: E402  (the one pipeline shared with training)


def evaluate(model_path: str, env_id: str, episodes: int, seed: int, deterministic: bool = True) -> dict:
    zip_path = Path(model_path if model_path.endswith(".zip") else model_path + ".zip")
    if not zip_path.is_file():
        raise SystemExit(f"error: no agent at {zip_path}")
    meta_path = zip_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"obs": "pixels"}
    # evaluation runs the env as it is (its own drift policy); only the observation pipeline is rebuilt
    env = make_env(env_id, meta["obs"], 1, seed, meta.get("weights"), meta.get("temperature"), 0.0, "cpu",
                   meta.get("drift_policy"))
    model = PPO.load(str(zip_path), device="cpu")
    returns, lengths = [], []
    obs = env.reset()
    while len(returns) < episodes:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, _, dones, infos = env.step(action)
        if dones[0] and "episode" in infos[0]:
            returns.append(float(infos[0]["episode"]["r"]))
            lengths.append(int(infos[0]["episode"]["l"]))
    env.close()
    return {"env": env_id, "model": str(zip_path), "obs": meta["obs"], "episodes": episodes, "seed": seed,
            "mean": float(np.mean(returns)), "std": float(np.std(returns)), "min": float(np.min(returns)),
            "max": float(np.max(returns)), "mean_length": float(np.mean(lengths)), "returns": returns}


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
        print(f"{r['env']}: {r['mean']:.1f} ± {r['std']:.1f} over {r['episodes']} episodes (min {r['min']:.0f}, max {r['max']:.0f})")


if __name__ == "__main__":
    main()
