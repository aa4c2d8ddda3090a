"""Train a PPO agent (stable-baselines3) in a neuralgym env: dream or real.

    python agents/train_ppo.py --env neuralgym/CartPole-v0 --out runs/agents/cartpole_dream
    python agents/evaluate.py --model runs/agents/cartpole_dream.zip --env neuralgym/CartPole-real-v0 --episodes 50

The settings come from the world's recipe (its spec file's ``[agent.<obs>]`` table, see
``neuralgym.agents.recipe``); every flag left out keeps the recipe's value. Two
observation modes, identical in dream and reality:

* ``--obs latent`` (default): the world model's own encoder features of the last K
  frames and actions, a flat float vector; ``MlpPolicy``. Learns on a CPU in minutes.
* ``--obs pixels``: the 64x64 uint8 frames, 4 stacked; ``CnnPolicy``. For GPUs.

``--members M`` trains M independent agents at once (one process each) whose averaged
action probabilities are the policy; ``--mirror`` saves mirror-symmetric agents (a world
whose spec declares ``[actions] mirror``). Writes ``OUT.zip`` (+ ``OUT.member<i>.zip``),
``OUT.json`` and TensorBoard logs under ``OUT_tb/``. Measurements: docs/agents.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from neuralgym.agents.ppo import AgentRun, train_agent
from neuralgym.agents.recipe import OBS_MODES, recipe_for
from neuralgym.world.catalog import get_spec


@dataclass
class Args:
    env: str  # a neuralgym id: neuralgym/<World>-v0 (dream) or -real-v0
    out: str  # output path without extension (OUT.zip, OUT.json)
    obs: str = "latent"
    timesteps: int | None = None  # per member (default: the recipe's)
    n_envs: int | None = None
    members: int | None = None
    mirror: bool | None = None
    compile: bool | None = None
    drift_policy: str | None = None
    seed: int = 0
    weights: str | None = None  # world weights (default: the shipped world)
    temperature: float | None = None  # dream stochasticity (default: the env's)
    uncertainty_penalty: float = 0.0  # dream reward minus this x drift score
    device: str = "cpu"  # the world model's, and the CNN policy's in pixel mode (latent MLPs stay on the CPU)


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", required=True, help="a neuralgym id: neuralgym/<World>-v0 (dream) or -real-v0")
    p.add_argument("--out", required=True, help="output path without extension (OUT.zip, OUT.json)")
    p.add_argument("--obs", choices=OBS_MODES, default="latent")
    p.add_argument("--timesteps", type=int, help="PPO steps per member (default: the world's recipe)")
    p.add_argument("--n-envs", type=int, help="dream lanes (default: the world's recipe)")
    p.add_argument("--members", type=int, help="agents trained at once, acting by their mean action probabilities")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, help="save mirror-symmetric agents")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="the dream's model under torch.compile")
    p.add_argument("--drift-policy", help="the dream's drift policy while training (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="world weights (default: the shipped world)")
    p.add_argument("--temperature", type=float, help="dream stochasticity (default: the env's)")
    p.add_argument("--uncertainty-penalty", type=float, default=0.0, help="dream reward minus this x drift score")
    p.add_argument("--device", default="cpu", help="the world model's device, and the CNN policy's in pixel mode")
    return Args(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = get_spec(args.env)
    try:
        recipe = recipe_for(spec, args.obs).replace(
            timesteps=args.timesteps,
            n_envs=args.n_envs,
            members=args.members,
            mirror=args.mirror,
            compile=args.compile,
            drift_policy=args.drift_policy,
        )
        run = AgentRun(
            recipe=recipe,
            env_id=args.env,
            out=args.out,
            seed=args.seed,
            weights=args.weights,
            device=args.device,
            temperature=args.temperature,
            uncertainty_penalty=args.uncertainty_penalty,
        )
        meta = train_agent(run)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
