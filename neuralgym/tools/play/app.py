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
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from neuralgym.world.keymap import Binding, action_for_keys, describe_action, key_code, noop_action, parse_keymap
from neuralgym.world.spec import WorldSpec, get_spec
from neuralgym.common.threads import torch_threads
from neuralgym.common.window import Pacer, require_pygame, upscale

# command, key names (first is the one shown in help), description
CONTROLS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("quit", ("escape",), "quit"),
    ("pause", ("space", "p"), "pause / resume"),
    ("step", ("period",), "single step (paused)"),
    ("reset", ("return", "kp_enter"), "reset episode"),
    ("switch", ("tab",), "switch dream <-> real"),
    ("record", ("r", "f9"), "start / stop recording"),
    ("screenshot", ("f12",), "save a screenshot"),
    ("help", ("f1",), "show / hide this help"),
)
_KEY_LABELS = {"escape": "Esc", "space": "Space", "period": ".", "return": "Enter", "kp_enter": "", "tab": "Tab"}

PANEL_W = 320
HUD_ROWS = 16  # the panel is at least this many text rows tall
COLOURS = {
    "title": (255, 255, 255),
    "text": (215, 215, 215),
    "dim": (135, 135, 140),
    "warn": (255, 95, 60),
    "rec": (255, 60, 60),
    "ok": (120, 215, 120),
}
BACKGROUND = (22, 22, 26)


class EnvUnavailable(RuntimeError):
    """The dream or real env of a world cannot be made (not registered, no weights...)."""


class RecordError(ValueError):
    """The mp4 file cannot be written."""


# --------------------------------------------------------------------------- pure logic


def control_keys(bindings: Sequence[Binding]) -> tuple[dict[int, str], list[tuple[str, str]]]:
    """Key code -> control command, and (key label, description) rows for the help.

    A key the world's keymap uses belongs to the keymap, so e.g. Space pauses only in
    worlds that do not bind it (P always does)."""
    taken = set().union(*(b.keys for b in bindings)) if bindings else set()
    codes: dict[int, str] = {}
    rows: list[tuple[str, str]] = []
    for command, names, description in CONTROLS:
        free = [n for n in names if key_code(n) not in taken]
        for n in free:
            codes[key_code(n)] = command
        if free:
            labels = [_KEY_LABELS.get(n, n.upper()) for n in free]
            rows.append((" / ".join(label for label in labels if label), description))
    return codes, rows


class FrameStats:
    """Achieved frame rate and frame times: recent (for the HUD) and over the whole run.

    Frame time is the interval between consecutive displayed frames (1000/fps when
    pacing holds); work time is the part of it spent stepping, drawing and recording."""

    def __init__(self, recent: int = 50):
        self.intervals: list[float] = []
        self.works: list[float] = []
        self._recent = recent
        self._last: float | None = None
        self._first: float | None = None

    def tick(self, now: float, work_s: float) -> None:
        """Record one displayed frame at time ``now`` (seconds) that took ``work_s`` of work."""
        if self._last is None:
            self._first = now
        else:
            self.intervals.append(now - self._last)
        self._last = now
        self.works.append(work_s)

    @property
    def frames(self) -> int:
        return len(self.works)

    def recent_fps(self) -> float:
        tail = self.intervals[-self._recent :]
        return len(tail) / sum(tail) if tail and sum(tail) > 0 else 0.0

    def recent_ms(self) -> tuple[float, float]:
        """Mean frame time and mean work time (ms) over the recent frames."""
        iv, wk = self.intervals[-self._recent :], self.works[-self._recent :]
        return (1e3 * float(np.mean(iv)) if iv else 0.0, 1e3 * float(np.mean(wk)) if wk else 0.0)

    def summary(self) -> dict[str, float]:
        iv = np.asarray(self.intervals) * 1e3
        wk = np.asarray(self.works) * 1e3
        elapsed = (self._last - self._first) if self._first is not None and self._last is not None else 0.0
        return {
            "frames": self.frames,
            "seconds": elapsed,
            "fps": len(iv) / elapsed if elapsed > 0 else 0.0,
            "frame_ms_mean": float(iv.mean()) if iv.size else 0.0,
            "frame_ms_p99": float(np.percentile(iv, 99)) if iv.size else 0.0,
            "work_ms_mean": float(wk.mean()) if wk.size else 0.0,
            "work_ms_p99": float(np.percentile(wk, 99)) if wk.size else 0.0,
        }


@dataclass
class HudView:
    """Everything the HUD shows, gathered from the loop's state each frame."""

    world: str
    dream: bool
    target_fps: float
    fps: float = 0.0
    frame_ms: float = 0.0
    work_ms: float = 0.0
    episode: int = 1
    step: int = 0
    episode_return: float = 0.0
    last_reward: float | None = None
    action: str = ""
    drift: float | None = None
    drift_threshold: float = math.inf
    drift_policy: str | None = None
    dream_step: int | None = None
    last_reset: str = "start"
    paused: bool = False
    recording: str | None = None
    recorded_frames: int = 0
    message: str = ""


def _fmt_threshold(t: float) -> str:
    return "off" if not math.isfinite(t) or t >= 1e9 else f"{t:.3g}"


def drift_warning(drift: float | None, threshold: float) -> bool:
    """True once the drift score has crossed the world's threshold (never for inf/NaN)."""
    return drift is not None and math.isfinite(threshold) and drift > threshold


def hud_lines(v: HudView) -> list[tuple[str, str]]:
    """The HUD as (text, style) rows; style is a key of :data:`COLOURS`."""
    rows: list[tuple[str, str]] = [
        (f"{v.world}  {'DREAM' if v.dream else 'REAL'}", "title"),
        (f"fps   {v.fps:5.1f} / {v.target_fps:g}", "text"),
        (f"frame {v.frame_ms:5.1f} ms  work {v.work_ms:4.1f} ms", "text"),
        ("", "text"),
        (f"episode {v.episode}  step {v.step}", "text"),
        (f"return  {v.episode_return:.2f}", "text"),
        (f"reward  {'-' if v.last_reward is None else f'{v.last_reward:+.2f}'}", "text"),
        (f"action  {v.action}", "text"),
    ]
    if v.dream:
        warn = drift_warning(v.drift, v.drift_threshold)
        drift = "-" if v.drift is None else f"{v.drift:.4g}"
        rows.append((f"drift   {drift}  (thr {_fmt_threshold(v.drift_threshold)})", "warn" if warn else "text"))
        if v.drift_policy == "none":
            rows.append(("        drift resets off", "dim"))
        rows.append((f"dream step {'-' if v.dream_step is None else v.dream_step}", "text"))
    else:
        rows.append(("drift   n/a (real env)", "dim"))
    reset_style = "warn" if v.last_reset == "drift" else "text"
    rows.append((f"last reset: {v.last_reset}{' (drift reset)' if v.last_reset == 'drift' else ''}", reset_style))
    rows.append(("", "text"))
    if v.paused:
        rows.append(("PAUSED  ('.' steps)", "warn"))
    if v.recording:
        rows.append((f"REC {Path(v.recording).name} ({v.recorded_frames})", "rec"))
    if v.message:
        rows.append((v.message, "ok"))
    rows.append(("F1 help", "dim"))
    return rows


def help_lines(spec: WorldSpec, bindings: Sequence[Binding], controls: Sequence[tuple[str, str]]) -> list[str]:
    """The F1 overlay: controls, then the world's keys and what they do."""
    lines = ["Controls"] + [f"  {k:<11} {d}" for k, d in controls]
    lines += ["", f"{spec.name} keys"]
    lines += [f"  {b.name:<11} {describe_action(spec, b.action)}" for b in bindings]
    lines.append(f"  {'(no key)':<11} {describe_action(spec, noop_action(spec))}")
    return lines


def default_path(world: str, suffix: str) -> Path:
    """A new file in the working directory: ``neuralgym-<world>-<time>[-n]<suffix>``."""
    stem = f"neuralgym-{world}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path(stem + suffix), 1
    while path.exists():
        n += 1
        path = Path(f"{stem}-{n}{suffix}")
    return path


# --------------------------------------------------------------------------- envs


def make_env(spec: WorldSpec, dream: bool, **kwargs: Any) -> gym.Env:
    """The world's dream or real env through ``gym.make`` of its registered id."""
    env_id = spec.dream_id if dream else spec.real_id
    if env_id not in gym.registry:
        if not dream:  # fallback until `import neuralgym` registers the -real-v0 ids
            from neuralgym.dream.real import RealWorldEnv

            return RealWorldEnv(spec, render_mode="rgb_array")
        raise EnvUnavailable(f"{env_id} is not registered")
    try:
        return gym.make(env_id, render_mode="rgb_array", **kwargs)
    except Exception as e:  # shown to the player, who can still play the other env
        raise EnvUnavailable(f"could not make {env_id}: {type(e).__name__}: {' '.join(str(e).split())}") from e


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


class Session:
    """The env being played (dream or real), its episode counters, and the other env for Tab.

    The last K observations and the actions between them are kept so that switching
    from real to dream prompts the dream with them: the dream continues where you were.
    """

    def __init__(self, spec: WorldSpec, dream: bool, seed: int | None, dream_kwargs: dict[str, Any]):
        self.spec = spec
        self.dream = dream
        self._seed = seed
        self._dream_kwargs = dream_kwargs
        self.drift_policy = str(dream_kwargs.get("drift_policy") or spec.drift.policy)
        self._envs: dict[bool, gym.Env] = {}
        self._seeded: set[bool] = set()
        self.episode = 0
        self.env = self._get(dream)
        k = int(getattr(self.env.unwrapped, "context_length", spec.context_length))
        self._frames: deque[np.ndarray] = deque(maxlen=k)
        self._actions: deque[Any] = deque(maxlen=k - 1)
        self.reset("start")

    def _get(self, dream: bool) -> gym.Env:
        if dream not in self._envs:
            self._envs[dream] = make_env(self.spec, dream, **(self._dream_kwargs if dream else {}))
        return self._envs[dream]

    def _after(self, obs: np.ndarray) -> None:
        self._frames.append(np.asarray(obs))
        frame = self.env.render()
        self.frame = _rgb(frame if frame is not None else obs)

    def reset(self, reason: str, options: dict[str, Any] | None = None) -> None:
        seed = self._seed if self.dream not in self._seeded else None
        self._seeded.add(self.dream)
        self._frames.clear()
        self._actions.clear()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self.step_count = 0
        self.episode_return = 0.0
        self.last_reward: float | None = None
        self.info: dict[str, Any] = dict(info)
        self.done = False
        self.end_reason = ""
        self.last_reset = reason
        self._after(obs)

    def step(self, action: Any) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step_count += 1
        self.episode_return += float(reward)
        self.last_reward = float(reward)
        self.info = dict(info)
        self.done = bool(terminated or truncated)
        if self.done:
            self.end_reason = "drift" if info.get("drift_reset") else ("terminated" if terminated else "truncated")
        self._actions.append(action)
        self._after(obs)

    def advance(self, action: Any) -> None:
        """One displayed frame: the next step, or the reset after an episode's end."""
        if self.done:
            self.reset(self.end_reason)
        else:
            self.step(action)

    def switch(self) -> str:
        """Tab: play the other env; from real to dream, the dream starts from the last
        real frames. Returns a message for the HUD; raises :class:`EnvUnavailable`."""
        target = not self.dream
        env = self._get(target)
        options = None
        if target and self._frames:  # n frames and the n-1 actions between them
            options = {"frames": np.stack(list(self._frames)), "actions": list(self._actions)}
        self.dream, self.env = target, env
        try:
            self.reset("switch", options)
        except (ValueError, TypeError):  # the dream refused the prompt: a fresh start
            self.reset("switch")
        return f"switched to {'dream' if target else 'real'}"

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class Recorder:
    """mp4 through OpenCV ('mp4v'): RGB frames in, one video frame each."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RecordError(f"could not create the folder of {path}: {e}") from e
        self.path = path
        self.frames = 0
        self._size = size_wh
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size_wh)
        if not self._writer.isOpened():
            raise RecordError(f"could not open {path} for writing an mp4 video")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()


# --------------------------------------------------------------------------- window


class PlayWindow:
    """The game frame on the left, the HUD panel on the right, help drawn over the game."""

    def __init__(self, title: str, game_wh: tuple[int, int]):
        pg = self._pg = require_pygame()
        pg.display.init()
        pg.font.init()
        self.font = pg.font.SysFont("dejavusansmono,liberationmono,monospace", 16)
        self.line_h = self.font.get_linesize()
        self.game_wh = game_wh
        height = max(game_wh[1], HUD_ROWS * self.line_h + 20)
        pg.display.set_caption(title)
        self.screen = pg.display.set_mode((game_wh[0] + PANEL_W, height))

    def draw(self, game_rgb: np.ndarray, hud: Sequence[tuple[str, str]], help_rows: Sequence[str] | None) -> None:
        pg = self._pg
        self.screen.fill(BACKGROUND)
        self.screen.blit(pg.surfarray.make_surface(game_rgb.swapaxes(0, 1)), (0, 0))
        x = self.game_wh[0] + 14
        for i, (text, style) in enumerate(hud):
            if text:
                self.screen.blit(self._fit(text, PANEL_W - 24, COLOURS[style]), (x, 10 + i * self.line_h))
        if help_rows:
            self._draw_help(help_rows)
        pg.display.flip()

    def _fit(self, text: str, width: int, colour: tuple[int, int, int]) -> Any:
        """Render ``text``, cut with "..." to ``width`` pixels."""
        while len(text) > 4 and self.font.size(text)[0] > width:
            text = text[:-4] + "..."
        return self.font.render(text, True, colour)

    def _draw_help(self, rows: Sequence[str]) -> None:
        pg = self._pg
        w, h = self.game_wh
        box_h = min(h, len(rows) * self.line_h + 20)
        overlay = pg.Surface((w, box_h), pg.SRCALPHA)
        overlay.fill((0, 0, 0, 200))
        self.screen.blit(overlay, (0, 0))
        for i, text in enumerate(rows):
            self.screen.blit(self._fit(text, w - 20, COLOURS["text"]), (12, 10 + i * self.line_h))

    @property
    def size(self) -> tuple[int, int]:
        return self.screen.get_size()

    def snapshot(self) -> np.ndarray:
        """The window as an (H, W, 3) uint8 RGB array."""
        return np.ascontiguousarray(self._pg.surfarray.array3d(self.screen).swapaxes(0, 1))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pg.image.save(self.screen, str(path))

    def close(self) -> None:
        self._pg.display.quit()


# --------------------------------------------------------------------------- CLI


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
    add("--record-game-only", dest="record_hud", action="store_false",
        help="record only the scaled game frame, without the HUD (default: the whole window, as the player sees it)")
    add("--max-frames", type=_positive(int), metavar="N", help="quit after N frames (ends headless runs)")
    add("--seed", type=int, help="seed of the first reset")
    add("--weights", help="dream: another weights file for the world")
    add("--device", help="dream: auto, cpu or cuda (default: the env's)")
    add("--drift-policy", help="dream: override the drift-reset policy (e.g. none)")
    add("--threads", type=_positive(int), default=1,
        help="torch CPU threads (default 1: a batch-1 step gains little from more, and loses a lot on busy cores)")
    add("--screenshot", type=Path, help=argparse.SUPPRESS)  # save the window at exit


def _parse(args: argparse.Namespace | Sequence[str] | None) -> argparse.Namespace:
    if isinstance(args, argparse.Namespace):
        return args
    parser = argparse.ArgumentParser(prog="neuralgym play", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser.parse_args(args)


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


def _poll(pg: Any, loop: _Loop, relevant: set[int], controls: dict[int, str]) -> list[str]:
    """Update the held keys from pygame events; return the control commands pressed."""
    commands = []
    for event in pg.event.get():
        if event.type == pg.QUIT:
            commands.append("quit")
        elif event.type == pg.KEYDOWN:
            if event.key in relevant:
                if event.key not in loop.held:
                    loop.held.append(event.key)
            elif event.key in controls:
                commands.append(controls[event.key])
        elif event.type == pg.KEYUP and event.key in loop.held:
            loop.held.remove(event.key)
        elif event.type == getattr(pg, "WINDOWFOCUSLOST", -1):
            loop.held.clear()  # no stuck keys after alt-tab
    return commands


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


def summary_line(
    spec: WorldSpec, dream: bool, s: dict[str, float], target_fps: float, recordings: list[tuple[Path, int]]
) -> str:
    """The one line printed at exit."""
    line = (
        f"neuralgym play: {spec.name} {'dream' if dream else 'real'}: "
        f"{s['frames']} frames in {s['seconds']:.2f} s, "
        f"{s['fps']:.1f} fps (target {target_fps:g}), frame time mean {s['frame_ms_mean']:.2f} ms "
        f"p99 {s['frame_ms_p99']:.2f} ms, work mean {s['work_ms_mean']:.2f} ms p99 {s['work_ms_p99']:.2f} ms"
    )
    for path, n in recordings:
        line += f"; recorded {n} frames to {path}"
    return line


def _drift_threshold(session: Any) -> float:
    """The threshold the dream applies (the spec's, or the one training calibrated)."""
    core = getattr(getattr(session.env, "unwrapped", None), "core", None)
    policy = getattr(core, "drift_policy", None)
    return float(policy.threshold) if policy is not None else session.spec.drift.threshold


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run ``neuralgym play``; returns the exit status."""
    args = _parse(args)
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
    from neuralgym.metrics.lockstep import run_lockstep, summarize, write_gif

    frames = min(args.max_frames or 150, 500)
    path = Path(f"{spec.key}_dream_vs_real.gif")
    print(f"neuralgym play: no display ({reason}); writing {frames} lockstep frames of real | dream | error "
          f"to {path} instead", file=sys.stderr)
    ls = run_lockstep(spec.key, episodes=1, horizon=frames, seed=args.seed if args.seed is not None else 0,
                      weights=args.weights, device=args.device or "auto")
    if not ls.videos:
        print("neuralgym play: the episode ended before any frame was recorded", file=sys.stderr)
        return 1
    write_gif(path, ls.videos[0], fps=spec.play.render_fps)
    s = summarize(ls, horizons=(1, 10, 25))
    psnr = ", ".join(f"h={h}: {s[f'psnr@{h}']:.1f} dB" for h in (1, 10, 25) if f"psnr@{h}" in s)
    print(f"wrote {path.resolve()} ({len(ls.videos[0])} frames; dream vs real PSNR {psnr})")
    return 0


def _run(args: argparse.Namespace, spec: WorldSpec, pg: Any, bindings: list[Binding],
         controls: dict[int, str], control_rows: list[tuple[str, str]]) -> int:
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
            for command in _poll(pg, loop, relevant, controls):
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
