"""``neuralgym eval WORLD``: lockstep fidelity, drift AUROC and, optionally, coherence.

The measurements are :mod:`neuralgym.metrics.lockstep` and
:mod:`neuralgym.metrics.coherence`; this module is their command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuralgym.common.precision import PRECISIONS
from neuralgym.metrics.lockstep import EVAL_SEED_BASE, run_lockstep, summarize, write_gif
from neuralgym.tools.cliutil import print_json
from neuralgym.world.catalog import get_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("world", help="world key, e.g. cartpole")
    p.add_argument("--episodes", type=int, default=24, help="lockstep episodes (>= 20 for the contract metric)")
    p.add_argument("--horizon", type=int, default=50, help="steps after the prompt")
    p.add_argument("--seed", type=int, default=EVAL_SEED_BASE, help="first real-env seed (episode e uses seed + e)")
    p.add_argument("--weights", default=None, help="another weights file for the same world")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="the dream's inference precision (auto: bf16 where native)",
    )
    p.add_argument("--epsilon", type=float, default=0.25, help="fraction of random actions in the behaviour policy")
    p.add_argument(
        "--threshold", type=float, default=None, help="PSNR below which a step counts as drifted (default: the median)"
    )
    p.add_argument(
        "--drift-policy",
        default="none",
        help="the dream's drift policy: none (default: the metric), default, truncate, reanchor",
    )
    p.add_argument(
        "--gif", default=None, help="write a side-by-side GIF (real | dream | error) of the first episode here"
    )
    p.add_argument(
        "--coherence",
        type=int,
        default=0,
        metavar="N",
        help="also free-run the dream for N frames and score their plausibility (coherence, "
        "docs/world-quality.md; 9000 for the full metric; 0: skip)",
    )
    p.add_argument("--coherence-lanes", type=int, default=1, help="dreams run side by side for --coherence (default 1)")
    p.add_argument(
        "--coherence-real",
        action="store_true",
        help="also run the coherence driver in the real env for N frames (the yardstick)",
    )
    p.add_argument(
        "--strip",
        default=None,
        help="write the coherence strip (every 250th frame over its nearest real frame) here, PNG",
    )
    p.add_argument(
        "--returns",
        default=None,
        metavar="DATA_DIR",
        help="Pong: also count, teacher-forced on the recorded games in DATA_DIR, how often the world "
        "draws the ball coming back off the player's paddle (neuralgym.metrics.returns)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def main(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.horizon < 1:
        raise ValueError("--episodes and --horizon must be >= 1")
    if args.coherence < 0 or args.coherence_lanes < 1:
        raise ValueError("--coherence must be >= 0 and --coherence-lanes >= 1")
    spec = get_spec(args.world)
    if args.returns and spec.key != "pong":
        raise ValueError(f"--returns counts the ball coming back off Pong's paddle; world {spec.key!r} has none")
    ls = run_lockstep(
        args.world,
        args.episodes,
        args.horizon,
        args.seed,
        args.weights,
        args.device,
        args.epsilon,
        drift_policy=args.drift_policy,
        precision=args.precision,
    )
    result = summarize(ls, threshold=args.threshold, fidelity_psnr=spec.drift.fidelity_psnr)
    if args.gif and ls.videos:
        write_gif(Path(args.gif), ls.videos[0])
        result["gif"] = str(args.gif)
    if args.coherence:
        from neuralgym.metrics.coherence import run_coherence, summarize_coherence, write_strip
        from neuralgym.metrics.realframes import index_for

        index = index_for(spec)
        run = run_coherence(
            spec, args.coherence, args.coherence_lanes, args.seed, weights=args.weights, device=args.device, index=index
        )
        result.update({f"coherence_{k}": v for k, v in summarize_coherence(run).items()})
        if args.strip:
            write_strip(Path(args.strip), run)
            result["strip"] = str(args.strip)
        if args.coherence_real:
            real = run_coherence(spec, args.coherence, args.coherence_lanes, args.seed, real=True, index=index)
            result.update(
                {
                    f"coherence_real_{k}": v
                    for k, v in summarize_coherence(real).items()
                    if k in ("frames", "episodes", "share_good", "median_plausibility", "longest_episode")
                    or k.startswith("share_with_")
                }
            )
    if args.returns:
        from neuralgym.common.device import resolve_device
        from neuralgym.metrics.returns import paddle_returns
        from neuralgym.training.data import load_dataset
        from neuralgym.world.weights import load_world

        world = load_world(args.weights or spec.weights_path, spec, resolve_device(args.device))
        result.update(paddle_returns(world.model.eval(), spec, load_dataset(Path(args.returns), spec)))
    if args.json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}", file=sys.stdout)
    return 0
