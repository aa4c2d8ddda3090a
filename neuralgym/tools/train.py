"""``neuralgym train``: train a world model on collected episodes (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuralgym.tools.cliutil import (
    CommandError,
    add_common,
    add_world,
    is_main_process,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    share,
    stdout_to_stderr,
    unit_float,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand."""
    p = sub.add_parser(
        "train",
        help="train a world model on collected episodes",
        description="Train a world model; writes checkpoints to --run-dir and the world "
        "(safetensors) to --out. Works under `torchrun -m neuralgym train ...`.",
    )
    add_world(p)
    p.add_argument(
        "--data",
        nargs="+",
        default=None,
        metavar="DIR",
        help="dataset folder(s): the episodes of all of them (default: data/<world>)",
    )
    p.add_argument(
        "--steps",
        type=non_negative_int,
        default=None,
        help="optimizer steps (0 with --init-from: rebuild the world's banks from --data, model unchanged)",
    )
    p.add_argument("--batch-size", type=positive_int, default=None, help="global batch size")
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    p.add_argument(
        "--rollout-max", type=positive_int, default=None, help="longest rollout on the model's own predictions"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, help="steps between checkpoints")
    p.add_argument(
        "--init-from", default=None, help="start from this world file's tensors (those whose names and shapes fit)"
    )
    p.add_argument(
        "--heads-only",
        action="store_true",
        help="train only the reward, termination, error and future heads; every future's frame stays as it was",
    )
    p.add_argument(
        "--burn-in",
        type=non_negative_int,
        default=None,
        help="up to this many free-running steps (no gradient) before each scored rollout: "
        "learn from the model's own long-dream contexts; with --heads-only the reward head then "
        "learns what the recording paid from what the dream shows (default: 0)",
    )
    p.add_argument(
        "--context-noise",
        type=float,
        default=None,
        help="std (0..1 frame units) of Gaussian noise on half the batch's context frames (default: 0)",
    )
    p.add_argument(
        "--reward-classes",
        type=non_negative_int,
        default=None,
        help=(
            "reward as a classifier over up to this many values from the data (data that pays one "
            "value every step makes a world that pays exactly it); 0: regressed (default: 0)"
        ),
    )
    p.add_argument(
        "--reward-balance",
        type=float,
        default=None,
        help="reward classes weigh frequency ** -B in the loss (0: plain, 1: balanced; default 0.5)",
    )
    p.add_argument(
        "--reward-oversample",
        type=positive_int,
        default=None,
        help="draw windows holding a reward event this many times per epoch (default 1)",
    )
    p.add_argument(
        "--reward-window",
        type=positive_int,
        default=None,
        help="with --reward-oversample: how many of a window's first targets are searched for an event (default 8)",
    )
    p.add_argument(
        "--reward-after",
        type=non_negative_int,
        default=None,
        help=(
            "with --reward-oversample, also the windows whose first targets hold the step S after "
            "a reward event (what a point sets off after a fixed pause, e.g. Pong's next serve; default 0: not)"
        ),
    )
    p.add_argument(
        "--gated-futures",
        action="store_true",
        help="with several futures: each other future departs from future 0 only where its gate (one per "
        "4x4 cell) opens, so a rare outcome drawn right is not outweighed by the rest of the frame "
        "(a world trained with it keeps it)",
    )
    p.add_argument(
        "--object-cells",
        action="store_true",
        help="a head classifies which 4x4 cell of the next frame holds the world's small object (Pong's "
        "ball), a dream draws one, and the frame is drawn around it (a world trained with it keeps it)",
    )
    p.add_argument(
        "--object-weight",
        type=positive_float,
        default=None,
        help="with object cells: the weight of the object head's loss against the frame loss (default 0.2)",
    )
    p.add_argument(
        "--object-jitter",
        type=unit_float,
        default=None,
        help="with object cells: the share of training frames drawn around a cell next to the object's "
        "true one, so a frame places the object by its motion and takes from the cell which way it went "
        "(default 0)",
    )
    p.add_argument(
        "--hard-oversample",
        type=positive_int,
        default=None,
        help="draw the windows the starting world predicts worst (--hard-share of them, scored once, "
        "teacher-forced) this many times per epoch: a rare decisive frame it averages away (default 1: not)",
    )
    p.add_argument(
        "--hard-share",
        type=share,
        default=None,
        help="with --hard-oversample, the share of the windows that count as hard (default 0.05)",
    )
    p.add_argument(
        "--futures-relax",
        type=unit_float,
        default=None,
        help="a world with several futures: the share of the frame loss spread over every future, the "
        "rest on the one closest to reality (default 0.05; 0: winner takes all, the futures part most)",
    )
    p.add_argument(
        "--change-weight",
        type=float,
        default=None,
        help="extra loss weight of the pixels that change from one frame to the next (small moving "
        "objects such as a ball; default: 0)",
    )
    p.add_argument(
        "--bottleneck",
        type=non_negative_int,
        default=None,
        help="decode each frame from a code of this many numbers instead of filtering the last "
        "frame: long dreams cannot pile up debris (default: 0, off; a world trained with it keeps it)",
    )
    p.add_argument(
        "--decoder-width",
        type=positive_int,
        default=None,
        help="channels of the bottleneck decoder's maps (default: 48)",
    )
    p.add_argument(
        "--decoder-pretrain",
        type=non_negative_int,
        default=None,
        help="with --bottleneck: first train the fresh decoder this many steps as a frame "
        "autoencoder's, so the world starts from sharp frames (default: 0)",
    )
    p.add_argument(
        "--decoder-hold",
        type=non_negative_int,
        default=None,
        help="with --decoder-pretrain: the pretrained decoder stays fixed this many steps while "
        "the trunk learns to make its codes (default: 500)",
    )
    p.add_argument(
        "--futures",
        type=positive_int,
        default=None,
        help="the output stage draws this many next frames and a head predicts which comes, so a "
        "dream picks one future where the frames leave several open, such as a ball that may pass "
        "the paddle or bounce off it (default: 1; a world trained with more keeps them; not with --bottleneck)",
    )
    p.add_argument("--run-dir", default=None, help="checkpoints and TensorBoard logs (default: runs/<world>)")
    p.add_argument(
        "--out",
        default=None,
        help="weights file to write (default: runs/<world>/<world>.safetensors in the working folder)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --run-dir's checkpoint if there is one")
    add_common(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from neuralgym.training.config import train_config
    from neuralgym.training.loop import train
    from neuralgym.world.catalog import get_spec

    spec = get_spec(args.world)
    data = [Path(d) for d in args.data] if args.data else [Path("data") / spec.key]
    out = Path(args.out) if args.out else default_train_out(spec.key)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / spec.key
    refuse_shipped_weights(out)
    if out.is_dir():  # found now, not after the whole run
        raise CommandError(f"--out {out} is a folder, not a file: expected the path of a .safetensors weights file")
    if run_dir.exists() and not run_dir.is_dir():
        raise CommandError(f"--run-dir {run_dir} is a file, not a folder: expected a folder for checkpoints and logs")
    overrides = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rollout_max": args.rollout_max,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "checkpoint_every": args.checkpoint_every,
        "init_from": args.init_from,
        "heads_only": args.heads_only or None,
        "burn_in": args.burn_in,
        "context_noise": args.context_noise,
        "reward_classes": args.reward_classes,
        "change_weight": args.change_weight,
        "hard_oversample": args.hard_oversample,
        "hard_share": args.hard_share,
        "futures_relax": args.futures_relax,
        "object_weight": args.object_weight,
        "object_jitter": args.object_jitter,
        "reward_balance": args.reward_balance,
        "reward_oversample": args.reward_oversample,
        "reward_window": args.reward_window,
        "reward_after": args.reward_after,
        "decoder_pretrain": args.decoder_pretrain,
        "decoder_hold": args.decoder_hold,
    }
    try:
        cfg = train_config(spec, **overrides)
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from e
    if args.bottleneck is not None:
        cfg.model.bottleneck = args.bottleneck
    if args.decoder_width is not None:
        cfg.model.decoder_width = args.decoder_width
    if args.futures is not None:
        cfg.model.futures = args.futures
    if args.gated_futures:
        cfg.model.gated_futures = 1
    if args.object_cells:
        cfg.model.object_cells = 1
    with stdout_to_stderr(args.json):
        result = train(spec, data, out, run_dir, cfg, resume=args.resume, progress=not args.no_progress)
    if not is_main_process():
        return 0
    report = {"world": spec.key, "weights": str(out), "run_dir": str(run_dir), **result}
    if args.json:
        print_json(report)
    else:
        print(f"wrote {out} after {result['steps']} steps ({result['seconds']:.0f} s; checkpoint in {run_dir})")
        if "drift_threshold" in result:
            print(
                f"calibrated drift threshold {result['drift_threshold']:.2f} (stored in {out.name}; "
                f"used unless the spec's [drift] sets one)"
            )
        if out.resolve() != spec.weights_path.resolve():
            print(
                f"the world reads {spec.weights_path}: copy {out} there, or pass --weights {out} "
                f"to eval/play/bench/exploit",
                file=sys.stderr,
            )
    return 0


def default_train_out(key: str) -> Path:
    """Where ``train`` writes a world by default: ``runs/<world>/<world>.safetensors`` in the
    working folder, never inside the package."""
    return Path("runs") / key / f"{key}.safetensors"


def refuse_shipped_weights(out: Path) -> None:
    """The shipped worlds' weights are package data: no command overwrites them."""
    from neuralgym.world.catalog import all_specs
    from neuralgym.world.spec import ENVS_DIR, WEIGHTS_DIR

    target = out.expanduser().resolve()
    shipped = {s.weights_path.resolve() for s in all_specs(ENVS_DIR).values()}
    if target in shipped or target.parent == WEIGHTS_DIR.resolve():
        raise CommandError(
            f"--out {out} is inside the package's shipped weights folder {WEIGHTS_DIR}: "
            f"expected a path outside it (default: {default_train_out('<world>')})"
        )
