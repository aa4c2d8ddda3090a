"""Evaluate a saved agent in any neuralgym id, dream or real.

    python agents/evaluate.py --model runs/agents/cartpole_dream.zip --env neuralgym/CartPole-real-v0 \
        --episodes 50 --seed 123 --json

Rebuilds the agent's observation pipeline from the ``.json`` saved beside the model
(observation mode, frame stacking, world weights, the mirror pair) and its policy (one SB3
model, or the ensemble of members ``train_ppo.py --members`` trained), runs ``--episodes``
full episodes with deterministic actions and reports the mean and standard deviation of the return.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from neuralgym.agents.ppo import evaluate_agent


@dataclass
class Args:
    model: str  # the agent's .zip (its .json must sit beside it)
    env: str  # any neuralgym id, dream or -real-v0
    episodes: int = 50
    seed: int = 0
    stochastic: bool = False  # sample actions instead of the policy's mode
    json: bool = False  # print one JSON object on stdout


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the agent's .zip (its .json must sit beside it)")
    p.add_argument("--env", required=True, help="any neuralgym id, dream or -real-v0")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return Args(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        r = evaluate_agent(args.model, args.env, args.episodes, args.seed, deterministic=not args.stochastic)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{r['env']}: {r['mean']:.1f} ± {r['std']:.1f} over {r['episodes']} episodes "
            f"(min {r['min']:.0f}, max {r['max']:.0f})"
        )


if __name__ == "__main__":
    main()
