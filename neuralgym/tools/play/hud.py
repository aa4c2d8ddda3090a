"""What play shows beside the game: the HUD panel's rows, the F1 help, the frame-rate
statistics, and the summary line printed at exit. Pure functions of the play loop's
state, so they are tested without a window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralgym.world.keymap import Binding, describe_action, noop_action
from neuralgym.world.spec import WorldSpec

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
