"""``neuralgym learn``: the command and the Python entry point of the loop in
:mod:`neuralgym.tools.learn_loop` (collect real episodes with the agent, update the world,
train the agent in the dream, repeat, within a budget of real steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neuralgym.tools.learn_config import LearnConfig, learn_config
from neuralgym.tools.learn_loop import REPORT, STATE, Loop

__all__ = ["REPORT", "STATE", "LearnConfig", "Loop", "learn", "learn_config", "main"]


def learn(
    world: str,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    reference: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Run (or ``resume``) the loop for ``world`` (a name or a spec file) into ``out``; return the
    report. ``reference``: also train the agent recipe in the real env on the same real steps."""
    from neuralgym.world.catalog import get_spec, is_spec_path
    from neuralgym.world.registry import register_world

    if is_spec_path(world):
        register_world(world)
    spec = get_spec(world)
    cfg = learn_config(spec, **overrides)
    return Loop(spec, cfg, Path(out), resume=resume, progress=progress, reference=reference).run()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``neuralgym learn`` flags."""
    p.add_argument("world", help="a world name or a spec file")
    p.add_argument("--real-steps", type=int, help="real env steps for the whole loop (default: the spec's [learn])")
    p.add_argument("--iterations", type=int, help="rounds of (world, agent, evaluation, collection)")
    p.add_argument("--init", help="'shipped' (default), 'scratch' or a world file to start from")
    p.add_argument("--world-steps", type=int, help="training steps of each world update")
    p.add_argument("--agent-timesteps", type=int, help="dream steps of each agent (default: the recipe's)")
    p.add_argument("--eval-episodes", type=int, help="real episodes that evaluate each agent")
    p.add_argument("--obs", choices=["latent", "pixels"], help="the agent's observations (default: latent)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--device", default=None, help="the world's and the dream's device: auto, cpu or cuda (default: cpu)"
    )
    p.add_argument("--out", default=None, help="the run's folder (default: runs/<world>/learn)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished phase")
    p.add_argument(
        "--reference",
        action="store_true",
        help="then train the same agent recipe in the real env on the loop's real steps, and compare "
        "both agents on the same real episodes (works on a finished run with --resume)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every core: the loop is the only job it runs)",
    )


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from neuralgym.world.catalog import get_spec, is_spec_path

    if is_spec_path(args.world):
        from neuralgym.world.registry import register_world

        register_world(args.world)
    out = args.out or str(Path("runs") / get_spec(args.world).key / "learn")
    agent = {"timesteps": args.agent_timesteps} if args.agent_timesteps else None
    report = learn(
        args.world,
        out,
        resume=args.resume,
        progress=not args.no_progress,
        reference=args.reference,
        real_steps=args.real_steps,
        iterations=args.iterations,
        init=args.init,
        world_steps=args.world_steps,
        eval_episodes=args.eval_episodes,
        obs=args.obs,
        seed=args.seed,
        device=args.device,
        agent=agent,
    )
    return report


def main(args: argparse.Namespace) -> int:
    """``neuralgym learn``: runs the loop; prints the report (without the per-iteration details) as JSON."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    report = run_from_args(args)
    print(json.dumps({k: v for k, v in report.items() if k != "iterations"}))
    return 0
