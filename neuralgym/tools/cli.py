"""The ``neuralgym`` command: list worlds, collect data, train, and the play/eval/bench faces.

    neuralgym worlds [SPEC.toml ...] [--json]
    neuralgym new ENV_ID [--out PATH]
    neuralgym collect WORLD --steps N [--policy random|NAME|PATH.zip] [--out DIR] [--seed S]  (whole episodes)
    neuralgym train WORLD [--data DIR] [--steps N] ... [--resume] [--json]
    neuralgym play | eval | bench | exploit WORLD ...
    neuralgym learn WORLD [--real-steps N] [--out DIR] [--resume]

WORLD is a world's key, name or id, or the path of a spec file (``path/to/acrobot.toml``)
anywhere on disk. Outputs go under the working folder (``data/<world>``,
``runs/<world>``) or ``--out``; the shipped worlds' weights are never written.

Each subcommand lives in its own module of :mod:`neuralgym.tools`: ``worlds``, ``new`` and
``collect`` in :mod:`~neuralgym.tools.worlds`, ``train`` in :mod:`~neuralgym.tools.train`
(their parsers are always built), and ``play``, ``eval``, ``bench``, ``exploit`` and ``learn``, each
with ``add_arguments(parser)`` and ``main(args) -> int``, imported only when their
subcommand is the one asked for, so ``neuralgym --help`` stays fast and never breaks on
one face's import error.

With ``--json`` a command prints exactly one JSON object on stdout; everything else
(progress bars, log lines) goes to stderr. User errors (unknown world, bad arguments,
bad data or weights) print one ``error: ...`` line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from neuralgym.tools import train as train_command
from neuralgym.tools import worlds as world_commands
from neuralgym.tools.cliutil import EXIT_USAGE, CommandError, Parser, add_threads

# Subcommands whose code lives in another module: name -> (module, one-line help).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "play": (
        "neuralgym.tools.play",
        "play a world (dream or --real) in a window, or headless with SDL_VIDEODRIVER=dummy",
    ),
    "eval": ("neuralgym.tools.evaluate", "run dream and real env in lockstep: fidelity, fidelity gain, drift AUROC"),
    "bench": ("neuralgym.tools.bench", "dream latency and throughput across batch sizes, beside the real env's"),
    "exploit": (
        "neuralgym.tools.exploit",
        "blind action patterns in the dream and in reality: can a dream-trained agent cheat?",
    ),
    "learn": (
        "neuralgym.tools.learn",
        "the loop: collect real episodes with the agent, update the world, train the agent in "
        "the dream, repeat, within a budget of real steps",
    ),
}


def _unavailable(name: str, module: str, reason: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise CommandError(
            f"`neuralgym {name}` is unavailable: cannot load {module} ({type(reason).__name__}: {reason})"
        )

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
            add_threads(p)
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
        from neuralgym.world.catalog import is_spec_path

        if is_spec_path(world):
            from neuralgym.world.registry import register_world

            register_world(world)


def _selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first non-option word)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> Parser:
    """The full parser; of the lazy subcommands only the one named in ``argv`` is imported."""
    parser = Parser(prog="neuralgym", description="Learned world models as Gymnasium envs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    world_commands.add_parsers(sub)
    train_command.add_parser(sub)
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
