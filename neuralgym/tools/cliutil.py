"""What every ``neuralgym`` subcommand shares: argument types, one-JSON-object output, and
the error a user can fix (one line, exit status 2, no traceback)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure with a message that needs no traceback."""


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one ``error: ...`` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


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


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")


def _float_where(what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number for which ``ok`` holds, else an error saying ``what`` was expected."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


positive_float = _float_where("a positive number", lambda v: v > 0)
unit_float = _float_where("a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)  # a share that may be 0


def share(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text}")
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
def stdout_to_stderr(active: bool) -> Iterator[None]:
    """While a ``--json`` command works, anything printed goes to stderr, so stdout holds
    only the final JSON object."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def is_main_process() -> bool:
    """Under torchrun only rank 0 reports."""
    return os.environ.get("RANK", "0") == "0"


def add_world(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "world",
        help="world key, name or id (see `neuralgym worlds`), e.g. cartpole, "
        "or the path of a spec file, e.g. path/to/acrobot.toml",
    )


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default: 1 on a machine with at most 2 cores, else torch's)",
    )


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
