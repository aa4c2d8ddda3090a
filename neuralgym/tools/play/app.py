"""``neuralgym play WORLD``: play a world (the dream, or ``--real``) in a pygame window.

The window shows the observation scaled up (nearest neighbour) with a HUD panel beside
it. Keys come from the world's ``[play] keymap`` (``neuralgym.world.keymap``); with no bound key
held the world's no-op action is sent. Each displayed frame is one env step (or the
reset that follows an episode end), paced to ``--fps`` on an absolute schedule.

Controls: Esc quit, Space pause (P when the keymap uses Space), ``.`` single step
while paused, Enter reset, Tab switch dream <-> real, R start/stop recording, F12
screenshot, F1 help. A control whose key the keymap uses is left to the keymap.

Recording (``--record PATH.mp4`` from the start, or R): the whole window as the
player sees it, game and HUD (``--record-game-only``: just the scaled game frame,
what the agent saw), one video frame per env step (and per reset), at the world's
``render_fps``, so the video plays at game speed whatever ``--fps`` was. Paused
time is not recorded.

Headless: with ``SDL_VIDEODRIVER=dummy`` it runs without a display; ``--max-frames``
ends it. At exit it prints one summary line (frames, achieved fps, frame times).

The pieces: :mod:`~neuralgym.tools.play.session` (the env played), ``controls`` (keys),
``hud`` (what the panel shows), ``window``, ``recorder`` and ``args``; this module is the
loop that ties them together.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralgym.common.threads import torch_threads
from neuralgym.common.window import Pacer, require_pygame, upscale
from neuralgym.tools.play.args import add_arguments, parse_args
from neuralgym.tools.play.controls import control_keys, poll
from neuralgym.tools.play.hud import FrameStats, HudView, help_lines, hud_lines, summary_line
from neuralgym.tools.play.recorder import Recorder, RecordError, default_path
from neuralgym.tools.play.session import EnvUnavailable, Session
from neuralgym.tools.play.window import PlayWindow
from neuralgym.world.catalog import get_spec
from neuralgym.world.keymap import Binding, action_for_keys, describe_action, parse_keymap
from neuralgym.world.spec import WorldSpec

__all__ = ["add_arguments", "main"]


@dataclass
class _Loop:
    """The play loop's mutable state besides the env."""

    held: list[int] = field(default_factory=list)
    paused: bool = False
    step_once: bool = False
    show_help: bool = False
    running: bool = True
    recorder: Recorder | None = None
    recorded: np.ndarray | None = None  # the last session frame written to the recorder
    recordings: list[tuple[Path, int]] = field(default_factory=list)
    message: str = ""
    message_until: float = 0.0

    def say(self, text: str, seconds: float = 3.0) -> None:
        self.message, self.message_until = text, time.perf_counter() + seconds


def _start_recording(loop: _Loop, path: Path, session: Session, window: PlayWindow, args: argparse.Namespace) -> None:
    h, w = session.frame.shape[:2]
    size = window.size if args.record_hud else (w * args.scale, h * args.scale)
    loop.recorder = Recorder(path, session.spec.play.render_fps, size)
    loop.recorded = None


def _stop_recording(loop: _Loop) -> None:
    if loop.recorder is not None:
        loop.recorder.close()
        loop.recordings.append((loop.recorder.path, loop.recorder.frames))
        loop.recorder = None


def _apply(command: str, loop: _Loop, session: Session, window: PlayWindow, args: argparse.Namespace) -> None:
    if command == "quit":
        loop.running = False
    elif command == "pause":
        loop.paused = not loop.paused
    elif command == "step":
        loop.step_once = loop.paused
    elif command == "reset":
        session.reset("manual")
    elif command == "switch":
        try:
            loop.say(session.switch())
        except EnvUnavailable as e:
            loop.say(f"{'real' if session.dream else 'dream'} unavailable (see terminal)", 5.0)
            print(f"neuralgym play: {e}", file=sys.stderr)
    elif command == "help":
        loop.show_help = not loop.show_help
    elif command == "record":
        if loop.recorder:
            _stop_recording(loop)
            loop.say(f"saved {loop.recordings[-1][0].name}")
        else:
            path = args.record if args.record and not loop.recordings else default_path(session.spec.key, ".mp4")
            try:
                _start_recording(loop, path, session, window, args)
                loop.say(f"recording {path.name}")
            except RecordError as e:
                loop.say("recording failed (see terminal)", 5.0)
                print(f"neuralgym play: {e}", file=sys.stderr)
    elif command == "screenshot":
        path = default_path(session.spec.key, ".png")
        window.save(path)
        loop.say(f"saved {path.name}")


def _hud(session: Session, loop: _Loop, stats: FrameStats, fps: float, action: Any) -> list[tuple[str, str]]:
    frame_ms, work_ms = stats.recent_ms()
    info, spec = session.info, session.spec
    drift = info.get("drift")
    return hud_lines(
        HudView(
            world=spec.name,
            dream=session.dream,
            target_fps=fps,
            fps=stats.recent_fps(),
            frame_ms=frame_ms,
            work_ms=work_ms,
            episode=session.episode,
            step=session.step_count,
            episode_return=session.episode_return,
            last_reward=session.last_reward,
            action=describe_action(spec, action),
            drift=None if drift is None else float(drift),
            drift_threshold=_drift_threshold(session),
            drift_policy=session.drift_policy,
            dream_step=None if info.get("dream_step") is None else int(info["dream_step"]),
            last_reset=session.last_reset,
            paused=loop.paused,
            recording=str(loop.recorder.path) if loop.recorder else None,
            recorded_frames=loop.recorder.frames if loop.recorder else 0,
            message=loop.message if time.perf_counter() < loop.message_until else "",
        )
    )


def _drift_threshold(session: Any) -> float:
    """The threshold the dream applies (the spec's, or the one training calibrated)."""
    core = getattr(getattr(session.env, "unwrapped", None), "core", None)
    policy = getattr(core, "drift_policy", None)
    return float(policy.threshold) if policy is not None else session.spec.drift.threshold


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run ``neuralgym play``; returns the exit status."""
    args = parse_args(args)
    try:
        spec = get_spec(args.world)
        pg = require_pygame()
        bindings = parse_keymap(spec)
        controls, control_rows = control_keys(bindings)
    except Exception as e:
        print(f"neuralgym play: {e}", file=sys.stderr)
        return 2
    with torch_threads(args.threads):
        return _run(args, spec, pg, bindings, controls, control_rows)


def no_display() -> bool:
    """True on a Linux machine with no X11/Wayland display where the user did not pick an
    SDL video driver: SDL would quietly render off-screen and nobody would see the game."""
    if os.environ.get("SDL_VIDEODRIVER") or not sys.platform.startswith("linux"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def headless_demo(spec: WorldSpec, args: argparse.Namespace, reason: str) -> int:
    """No display at all: instead of a window, write a short side-by-side GIF of the
    real env and the dream in lockstep (real | dream | error), and say where it is."""
    from neuralgym.metrics.lockstep import run_lockstep, summarize, write_gif  # only without a display

    frames = min(args.max_frames or 150, 500)
    path = Path(f"{spec.key}_dream_vs_real.gif")
    print(
        f"neuralgym play: no display ({reason}); writing {frames} lockstep frames of real | dream | error "
        f"to {path} instead",
        file=sys.stderr,
    )
    ls = run_lockstep(
        spec.key,
        episodes=1,
        horizon=frames,
        seed=args.seed if args.seed is not None else 0,
        weights=args.weights,
        device=args.device or "auto",
    )
    if not ls.videos:
        print("neuralgym play: the episode ended before any frame was recorded", file=sys.stderr)
        return 1
    write_gif(path, ls.videos[0], fps=spec.play.render_fps)
    s = summarize(ls, horizons=(1, 10, 25))
    psnr = ", ".join(f"h={h}: {s[f'psnr@{h}']:.1f} dB" for h in (1, 10, 25) if f"psnr@{h}" in s)
    print(f"wrote {path.resolve()} ({len(ls.videos[0])} frames; dream vs real PSNR {psnr})")
    return 0


def _run(
    args: argparse.Namespace,
    spec: WorldSpec,
    pg: Any,
    bindings: list[Binding],
    controls: dict[int, str],
    control_rows: list[tuple[str, str]],
) -> int:
    """Make the env and the window, then the loop: poll keys, step, draw, record, pace."""
    if no_display():
        return headless_demo(spec, args, reason="DISPLAY and WAYLAND_DISPLAY are unset")
    fps = float(args.fps or spec.play.render_fps)
    options = {"weights": args.weights, "device": args.device, "drift_policy": args.drift_policy}
    dream_kwargs = {k: v for k, v in options.items() if v}
    try:
        session = Session(spec, dream=not args.real, seed=args.seed, dream_kwargs=dream_kwargs)
    except EnvUnavailable as e:
        print(f"neuralgym play: {e}; train the world first, or play the real env with --real", file=sys.stderr)
        return 1
    h, w = session.frame.shape[:2]
    try:
        window = PlayWindow(f"neuralgym: {spec.name}", (w * args.scale, h * args.scale))
    except pg.error as e:
        session.close()
        if not os.environ.get("SDL_VIDEODRIVER"):
            return headless_demo(spec, args, reason=str(e))
        hint = "to run headless set SDL_VIDEODRIVER=dummy and pass --max-frames"
        print(f"neuralgym play: cannot open a window ({e}); {hint}", file=sys.stderr)
        return 1
    if pg.display.get_driver() in ("dummy", "offscreen") and not args.max_frames:
        print("neuralgym play: headless with no --max-frames: stop it with Ctrl-C", file=sys.stderr)

    relevant = set().union(*(b.keys for b in bindings)) if bindings else set()
    help_rows = help_lines(spec, bindings, control_rows)
    loop, stats, pacer = _Loop(), FrameStats(), Pacer(fps)
    status = 0
    try:
        if args.record:
            _start_recording(loop, args.record, session, window, args)
        while loop.running:
            t0 = time.perf_counter()
            for command in poll(pg, loop.held, relevant, controls):
                _apply(command, loop, session, window, args)
            if not loop.running:
                break
            action = action_for_keys(loop.held, bindings, spec)
            if not loop.paused or loop.step_once:
                session.advance(action)
                loop.step_once = False
            game = upscale(session.frame, args.scale)
            hud = _hud(session, loop, stats, fps, action)
            window.draw(game, hud, help_rows if loop.show_help else None)
            if loop.recorder and loop.recorded is not session.frame:  # each new game frame once
                loop.recorder.write(window.snapshot() if args.record_hud else game)
                loop.recorded = session.frame
            work = time.perf_counter() - t0
            pacer.wait()
            stats.tick(time.perf_counter(), work)
            if args.max_frames and stats.frames >= args.max_frames:
                break
    except KeyboardInterrupt:
        status = 130
    except RecordError as e:
        print(f"neuralgym play: {e}", file=sys.stderr)
        status = 1
    finally:
        _stop_recording(loop)
        if args.screenshot:
            window.save(args.screenshot)
        window.close()
        session.close()
    print(summary_line(spec, session.dream, stats.summary(), fps, loop.recordings))
    return status


if __name__ == "__main__":
    sys.exit(main())
