"""The options of ``neuralgym play``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the command's one-line description
DESCRIPTION = "``neuralgym play WORLD``: play a world (the dream, or ``--real``) in a pygame window."


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _mp4(text: str) -> Path:
    if not text.lower().endswith(".mp4"):
        raise argparse.ArgumentTypeError(f"the recording must be an .mp4 file, got {text}")
    return Path(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``neuralgym play``."""
    add = parser.add_argument
    add("world", metavar="WORLD", help="world to play, e.g. cartpole (see `neuralgym worlds`)")
    add("--real", action="store_true", help="play the real env instead of the dream")
    add("--fps", type=_positive(float), help="frames (env steps) per second; default: the world's render_fps")
    add("--scale", type=_positive(int), default=8, help="integer upscaling of the observation (default 8)")
    add("--record", type=_mp4, metavar="PATH.mp4", help="record the game frames (no HUD) from the start")
    add(
        "--record-game-only",
        dest="record_hud",
        action="store_false",
        help="record only the scaled game frame, without the HUD (default: the whole window, as the player sees it)",
    )
    add("--max-frames", type=_positive(int), metavar="N", help="quit after N frames (ends headless runs)")
    add("--seed", type=int, help="seed of the first reset")
    add("--weights", help="dream: another weights file for the world")
    add("--device", help="dream: auto, cpu or cuda (default: the env's)")
    add("--drift-policy", help="dream: override the drift-reset policy (e.g. none)")
    add(
        "--threads",
        type=_positive(int),
        default=1,
        help="torch CPU threads (default 1: a batch-1 step gains little from more, and loses a lot on busy cores)",
    )
    add("--screenshot", type=Path, help=argparse.SUPPRESS)  # save the window at exit


def parse_args(args: argparse.Namespace | Sequence[str] | None) -> argparse.Namespace:
    """``args`` as parsed options (a Namespace passes through: the ``neuralgym`` command parsed it)."""
    if isinstance(args, argparse.Namespace):
        return args
    parser = argparse.ArgumentParser(prog="neuralgym play", description=DESCRIPTION)
    add_arguments(parser)
    return parser.parse_args(args)
