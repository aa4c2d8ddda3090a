"""The ``neuralgym`` command: list worlds, collect data, train, and the play/eval/bench faces.

    neuralgym worlds [SPEC.toml ...] [--json]
    neuralgym new ENV_ID [--out PATH]
    neuralgym collect WORLD --steps N [--policy random|NAME|PATH.zip] [--out DIR] [--seed S]  (N: at least, whole episodes)
    neuralgym train WORLD [--data DIR] [--steps N] ... [--resume] [--json]
    neuralgym play | eval | bench | exploit WORLD ...

WORLD is a world's key, name or id, or the path of a spec file (``path/to/acrobot.toml``)
anywhere on disk. Outputs go under the working folder (``data/<world>``,
``runs/<world>``) or ``--out``; the shipped worlds' weights are never written.

``play``, ``eval`` and ``bench`` live in their own modules (``neuralgym.tools.play``,
``neuralgym.metrics.lockstep``, ``neuralgym.tools.bench``), each with ``add_arguments(parser)`` and
``main(args) -> int``. They are imported only when their subcommand is the one asked
for, so ``neuralgym --help`` stays fast and never breaks on one face's import error.

With ``--json`` a command prints exactly one JSON object on stdout; everything else
(progress bars, log lines) goes to stderr. User errors (unknown world, bad arguments,
bad data or weights) print one ``error: ...`` line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

EXIT_USAGE = 2

# Subcommands whose code lives in another module: name -> (module, one-line help).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "play": ("neuralgym.tools.play", "play a world (dream or --real) in a window, or headless with SDL_VIDEODRIVER=dummy"),
    "eval": ("neuralgym.metrics.lockstep", "run dream and real env in lockstep: fidelity, fidelity gain, drift AUROC"),
    "bench": ("neuralgym.tools.bench", "dream latency and throughput across batch sizes, beside the real env's"),
    "exploit": ("neuralgym.metrics.exploit", "blind action patterns in the dream and in reality: can a dream-trained agent cheat?"),
}


class CommandError(Exception):
    """A user-facing failure with a message that needs no traceback."""


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one ``error: ...`` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------------- helpers


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else an error saying ``what`` was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _jsonable(value: Any) -> Any:
    """Plain JSON: paths as strings, numpy scalars as numbers, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: dict[str, Any]) -> None:
    """The one JSON object a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(_jsonable(obj), sort_keys=False) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While a ``--json`` command works, anything printed goes to stderr, so stdout holds
    only the final JSON object."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _is_main_process() -> bool:
    """Under torchrun only rank 0 reports."""
    return os.environ.get("RANK", "0") == "0"


# ---------------------------------------------------------------------------- worlds


def _world_row(spec: Any) -> dict[str, Any]:
    from neuralgym.world.spaces import action_space_for

    return {
        "key": spec.key,
        "name": spec.name,
        "dream_id": spec.dream_id,
        "real_id": spec.real_id,
        "source_id": spec.source_id,
        "obs_shape": list(spec.obs_shape),
        "action_space": str(action_space_for(spec)),
        "context_length": spec.context_length,
        "weights_file": str(spec.weights_path),
        "weights_exist": spec.weights_path.is_file(),
        "spec_file": str(spec.path) if spec.path else None,
        "shipped": spec.shipped,
    }


def cmd_worlds(args: argparse.Namespace) -> int:
    from neuralgym.world.spec import ENVS_DIR, all_specs, get_spec, search_dirs

    specs = all_specs()
    for path in args.specs:
        spec = get_spec(path)
        specs.setdefault(spec.key, spec)
    rows = [_world_row(spec) for spec in specs.values()]
    if args.json:
        print_json({"envs_dir": str(ENVS_DIR), "search_path": [str(d) for d in search_dirs()], "worlds": rows})
        return 0
    if not rows:
        print(f"no worlds in {', '.join(map(str, search_dirs()))}")
        return 0
    header = ("key", "dream id", "real id", "obs", "actions", "K", "weights")
    table = [header] + [
        (
            r["key"],
            r["dream_id"],
            r["real_id"],
            "x".join(map(str, r["obs_shape"])),
            r["action_space"],
            str(r["context_length"]),
            f"{Path(r['weights_file']).name} ({'ok' if r['weights_exist'] else 'missing'})",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for r in rows:
        if not r["shipped"]:
            print(f"{r['key']}: spec {r['spec_file']}, weights {r['weights_file']}")
    return 0


# ---------------------------------------------------------------------------- collect


def _dataset_size(data_dir: Path) -> tuple[int, int]:
    """(episodes, transitions) of the episode files in ``data_dir``."""
    import numpy as np

    from neuralgym.training.data import DatasetError, episode_paths, is_npz_archive, not_an_episode_message

    paths = episode_paths(data_dir)
    steps = 0
    for p in paths:
        if not is_npz_archive(p):
            raise DatasetError(not_an_episode_message(p))
        try:
            with np.load(p, allow_pickle=False) as z:
                steps += len(z["actions"])
        except Exception as e:  # noqa: BLE001 - any unreadable file is a dataset error
            reason = "not a plain array file" if "pickle" in str(e).lower() else f"{type(e).__name__}: {e}"
            raise DatasetError(f"{p}: unreadable episode file ({reason}); delete it and rerun collect") from e
    return len(paths), steps


def cmd_collect(args: argparse.Namespace) -> int:
    from neuralgym.training.data import collect
    from neuralgym.world.spec import get_spec

    spec = get_spec(args.world)
    out = Path(args.out) if args.out else Path("data") / spec.key
    _dataset_size(out)  # an unreadable episode already there is a one-line error, not a traceback
    from neuralgym.common.threads import torch_threads

    with _stdout_to_stderr(args.json), torch_threads(args.threads):
        for _ in collect(spec, out, args.steps, policy=args.policy, seed=args.seed, progress=not args.no_progress):
            pass
    episodes, steps = _dataset_size(out)
    summary = {"world": spec.key, "out": str(out), "episodes": episodes, "steps": steps, "steps_requested": args.steps,
               "policy": args.policy or spec.collect_policy, "seed": args.seed}
    if args.json:
        print_json(summary)
    else:
        more = (f" (--steps {args.steps} is a minimum: episodes are kept whole, so the last one ran to its end)"
                if steps > args.steps else "")
        print(f"{out}: {episodes} episodes, {steps} steps of {spec.key}{more}")
    return 0


# ---------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from neuralgym.world.spec import get_spec
    from neuralgym.training.loop import TrainConfig, train

    spec = get_spec(args.world)
    data = Path(args.data) if args.data else Path("data") / spec.key
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
        "reward_balance": args.reward_balance,
        "reward_oversample": args.reward_oversample,
    }
    cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    with _stdout_to_stderr(args.json):
        result = train(spec, data, out, run_dir, cfg, resume=args.resume, progress=not args.no_progress)
    if not _is_main_process():
        return 0
    report = {"world": spec.key, "weights": str(out), "run_dir": str(run_dir), **result}
    if args.json:
        print_json(report)
    else:
        print(f"wrote {out} after {result['steps']} steps ({result['seconds']:.0f} s; checkpoint in {run_dir})")
        if "drift_threshold" in result:
            print(f"calibrated drift threshold {result['drift_threshold']:.2f} (stored in {out.name}; "
                  f"used unless the spec's [drift] sets one)")
        if out.resolve() != spec.weights_path.resolve():
            print(f"the world reads {spec.weights_path}: copy {out} there, or pass --weights {out} "
                  f"to eval/play/bench/exploit", file=sys.stderr)
    return 0


def default_train_out(key: str) -> Path:
    """Where ``train`` writes a world by default: ``runs/<world>/<world>.safetensors`` in the
    working folder, never inside the package."""
    return Path("runs") / key / f"{key}.safetensors"


def refuse_shipped_weights(out: Path) -> None:
    """The shipped worlds' weights are package data: no command overwrites them."""
    from neuralgym.world.spec import ENVS_DIR, WEIGHTS_DIR, all_specs

    target = out.expanduser().resolve()
    shipped = {s.weights_path.resolve() for s in all_specs(ENVS_DIR).values()}
    if target in shipped or target.parent == WEIGHTS_DIR.resolve():
        raise CommandError(f"--out {out} is inside the package's shipped weights folder {WEIGHTS_DIR}: "
                           f"expected a path outside it (default: {default_train_out('<world>')})")


# ---------------------------------------------------------------------------- new


def cmd_new(args: argparse.Namespace) -> int:
    from neuralgym.tools.newworld import write_new_spec

    path = write_new_spec(args.env_id, Path(args.out) if args.out else None, force=args.force, name=args.name)
    print(f"wrote {path}; next, in its folder: `neuralgym collect {path.name} --steps 20000`, "
          f"`neuralgym train {path.name}`, `neuralgym eval {path.name}`")
    return 0


# ---------------------------------------------------------------------------- parser


def _add_world(p: argparse.ArgumentParser) -> None:
    p.add_argument("world", help="world key, name or id (see `neuralgym worlds`), e.g. cartpole, "
                                 "or the path of a spec file, e.g. path/to/acrobot.toml")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: 1 on a machine with at most 2 cores, else torch's)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _unavailable(name: str, module: str, reason: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise CommandError(f"`neuralgym {name}` is unavailable: cannot load {module} "
                           f"({type(reason).__name__}: {reason})")

    return run


def _add_lazy(sub: argparse._SubParsersAction, name: str, load: bool) -> None:
    """Register a subcommand implemented in another module; import it only if ``load``."""
    module_name, help_text = LAZY_COMMANDS[name]
    p = sub.add_parser(name, help=help_text, description=help_text)
    if not load:
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    try:
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        if "--threads" in p._option_string_actions:  # the module picks its own (play)
            p.set_defaults(func=module.main)
        else:
            _add_threads(p)
            p.set_defaults(func=_with_threads(module.main))
    except Exception as e:  # noqa: BLE001 - a broken face must not break the others
        p.description = f"{help_text}\n\n(unavailable: {type(e).__name__}: {e})"
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_unavailable(name, module_name, e))


def _with_threads(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` under ``--threads`` torch threads."""

    def wrapped(args: argparse.Namespace) -> int:
        from neuralgym.common.threads import torch_threads

        with torch_threads(args.threads):
            return run(args)

    return wrapped


def _register_spec_file(args: argparse.Namespace) -> None:
    """A WORLD given as a spec file path gets its Gymnasium ids, so every command can make it."""
    world = getattr(args, "world", None)
    if isinstance(world, str):
        from neuralgym.world.spec import is_spec_path

        if is_spec_path(world):
            from neuralgym import register_world

            register_world(world)


def _selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first non-option word)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> Parser:
    """The full parser; of play/eval/bench only the one named in ``argv`` is imported."""
    parser = Parser(prog="neuralgym", description="Learned world models as Gymnasium envs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("worlds", help="list every world found (shipped, NEURALGYM_WORLDS, the user folder)",
                       description="List every world: the shipped ones, those in the folders of NEURALGYM_WORLDS "
                                   "(os.pathsep-separated) and in the user worlds folder, and the spec files named.")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="spec files to list as well")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    p.set_defaults(func=cmd_worlds)

    p = sub.add_parser("new", help="write a commented spec for any Gymnasium env",
                       description="Write a commented world spec for a Gymnasium env, from what the env says about "
                                   "itself (spaces, render size and fps, action names); edit it, then collect and train.")
    p.add_argument("env_id", help="a Gymnasium env id, e.g. Acrobot-v1 (module:Id also works)")
    p.add_argument("--out", default=None, help="spec file to write (default: <world>.toml in the working folder)")
    p.add_argument("--name", default=None, help="the world's CamelCase name (default: from the env id)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("collect", help="collect episodes from the real env (resumable)",
                       description="Collect whole episodes from the real env until --out holds at least --steps "
                                   "transitions. Rerunning continues where the last run stopped. The folder is "
                                   "locked while collecting: a second collect into it is refused.")
    _add_world(p)
    p.add_argument("--steps", type=_positive_int, required=True,
                   help="the least number of transitions the dataset should hold: episodes are kept whole, so the "
                        "last one runs to its end and the total may exceed it (one Pong game is ~4,000 steps)")
    p.add_argument("--policy", default=None,
                   help="behaviour policy: 'random', a built-in name, or an SB3 .zip (default: the spec's)")
    p.add_argument("--out", default=None, help="dataset folder (default: data/<world>)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i (default: 0)")
    _add_threads(p)
    _add_common(p)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="train a world model on collected episodes",
                       description="Train a world model; writes checkpoints to --run-dir and the world "
                                   "(safetensors) to --out. Works under `torchrun -m neuralgym train ...`.")
    _add_world(p)
    p.add_argument("--data", default=None, help="dataset folder (default: data/<world>)")
    p.add_argument("--steps", type=_non_negative_int, default=None,
                   help="optimizer steps (0 with --init-from: rebuild the world's banks from --data, model unchanged)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="global batch size")
    p.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate")
    p.add_argument("--rollout-max", type=_positive_int, default=None,
                   help="longest rollout on the model's own predictions")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="steps between checkpoints")
    p.add_argument("--init-from", default=None, help="start from this world file's tensors (those whose names and shapes fit)")
    p.add_argument("--heads-only", action="store_true",
                   help="train only the reward/termination/error heads; every frame prediction stays as it was")
    p.add_argument("--burn-in", type=_non_negative_int, default=None,
                   help="up to this many free-running steps (no gradient) before each scored rollout: "
                        "learn from the model's own long-dream contexts (default: 0)")
    p.add_argument("--context-noise", type=float, default=None,
                   help="std (0..1 frame units) of Gaussian noise on half the batch's context frames (default: 0)")
    p.add_argument("--reward-classes", type=_non_negative_int, default=None,
                   help="reward as a classifier over up to this many values from the data; 0: regressed (default: 0)")
    p.add_argument("--reward-balance", type=float, default=None,
                   help="reward classes weigh frequency ** -B in the loss (0: plain, 1: balanced; default 0.5)")
    p.add_argument("--reward-oversample", type=_positive_int, default=None,
                   help="draw windows holding a reward event this many times per epoch (default 1)")
    p.add_argument("--change-weight", type=float, default=None,
                   help="extra loss weight of the pixels that change from one frame to the next (small moving "
                        "objects such as a ball; default: 0)")
    p.add_argument("--run-dir", default=None, help="checkpoints and TensorBoard logs (default: runs/<world>)")
    p.add_argument("--out", default=None,
                   help="weights file to write (default: runs/<world>/<world>.safetensors in the working folder)")
    p.add_argument("--resume", action="store_true", help="continue from --run-dir's checkpoint if there is one")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    selected = _selected_command(argv)
    for name in LAZY_COMMANDS:
        _add_lazy(sub, name, load=name == selected)
    return parser


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralgym`` console script and ``python -m neuralgym``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    try:
        _register_spec_file(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError, FloatingPointError) as e:
        # DatasetError, WeightsError and SpecError are ValueErrors: all are the user's to fix.
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
