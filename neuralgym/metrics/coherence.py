"""Coherence: does a free-running dream keep showing frames the real env could show?

A dream runs for ``steps`` frames with no drift reset, no prompt after its start and no
episode limit beyond the world's own end (termination thresholded, ``temperature=0`` by
default), driven by a policy that acts on the dreamt frames the way a player would:

* CartPole: a PD balancer on the cart position and pole angle read off each frame (the
  labels of its nearest real render; velocities from their differences);
* Pong: a paddle that follows the ball it sees (25% random actions);
* any other world: random actions (say so when quoting it).

Each dreamt frame's *plausibility* is its PSNR to the nearest real frame
(:mod:`neuralgym.metrics.realframes`: exact for CartPole, a bank of real frames elsewhere). The
report: the share of frames >= ``good_psnr`` (35 dB), the median episode age at which a
frame first falls under it, plausibility by episode age, and a strip of every 250th
frame beside its nearest real frame. The same driver in the ``-real-v0`` env gives the
yardstick (``reference=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.common.files import atomic_write_bytes
from neuralgym.common.images import to_rgb
from neuralgym.metrics.objects import PRESENCE_CHECKS, pong_ball, pong_paddle
from neuralgym.metrics.realframes import index_for
from neuralgym.world.frameindex import RealFrameIndex
from neuralgym.world.spec import WorldSpec

GOOD_PSNR = 35.0
AGE_BUCKETS = ((1, 25), (26, 50), (51, 75), (76, 100), (101, 150), (151, 300), (301, 500), (501, 2000), (2001, 10**9))


class Driver:
    """Acts on a batch of frames: ``act(frames (n, H, W, C), nearest (n,) index rows) -> actions (n,)``;
    ``reset(lanes)`` forgets what it saw on those lanes."""

    def __init__(self, n: int, space: gym.Space, rng: np.random.Generator):
        self.n, self.space, self.rng = n, space, rng

    def reset(self, lanes: np.ndarray) -> None:
        pass

    def act(self, frames: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        return np.stack([self._sample() for _ in range(self.n)])

    def _sample(self) -> Any:
        if isinstance(self.space, gym.spaces.Discrete):
            return int(self.rng.integers(self.space.n))
        low, high = self.space.low, self.space.high
        return self.rng.uniform(low, high).astype(self.space.dtype)


class CartPoleBalancer(Driver):
    """PD balancing on (x, theta) read off each frame (its nearest real render's labels),
    velocities from the change over the last two steps (0.02 s each)."""

    def __init__(self, n: int, space: gym.Space, rng: np.random.Generator, labels: np.ndarray):
        super().__init__(n, space, rng)
        self.labels = labels
        self.history = np.full((n, 3, 2), np.nan)

    def reset(self, lanes: np.ndarray) -> None:
        self.history[lanes] = np.nan

    def act(self, frames: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        state = self.labels[nearest].astype(np.float64)  # (n, 2): x, theta
        self.history = np.concatenate([self.history[:, 1:], state[:, None]], axis=1)
        past = np.where(np.isnan(self.history[:, 0]), self.history[:, 1], self.history[:, 0])
        past = np.where(np.isnan(past), state, past)
        steps = np.where(np.isnan(self.history[:, 0, :1]), 1.0, 2.0)
        vel = (state - past) / (0.02 * steps)
        x, theta, x_dot, theta_dot = state[:, 0], state[:, 1], vel[:, 0], vel[:, 1]
        desired = np.clip(-0.05 * x - 0.1 * x_dot, -0.1, 0.1)
        return ((12.0 * (theta - desired) + 2.0 * theta_dot) > 0).astype(np.int64)


class PongFollower(Driver):
    """Moves the player's paddle towards the ball it sees; ``epsilon`` random actions."""

    UP, DOWN, NOOP = 2, 3, 0

    def __init__(self, n: int, space: gym.Space, rng: np.random.Generator, epsilon: float = 0.25):
        super().__init__(n, space, rng)
        self.epsilon = epsilon

    def act(self, frames: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n, np.int64)
        for i, f in enumerate(frames):
            ball, paddle = pong_ball(f), pong_paddle(f)
            if self.rng.random() < self.epsilon:
                out[i] = self._sample()
            elif ball is not None and paddle is not None:
                out[i] = self.UP if ball[0] < paddle - 2 else self.DOWN if ball[0] > paddle + 2 else self.NOOP
        return out


def driver_for(spec: WorldSpec, n: int, space: gym.Space, index: RealFrameIndex, seed: int) -> tuple[Driver, str]:
    rng = np.random.default_rng(seed)
    if spec.source_id == "CartPole-v1" and index.labels is not None:
        return CartPoleBalancer(n, space, rng, index.labels), "PD balancer on (x, theta) read off each frame"
    if spec.key == "pong":
        return PongFollower(n, space, rng), "paddle follows the ball it sees, 25% random actions"
    return Driver(n, space, rng), "random actions"


@dataclass
class CoherenceRun:
    plausibility: np.ndarray  # (N,) dB, dreamt frames in the order they were made (lane-major per step)
    age: np.ndarray  # (N,) the frame's step in its episode (1 = first dreamt frame)
    episode: np.ndarray  # (N,) a global episode number
    seconds: float
    driver: str
    index: str
    strip: list[tuple[int, float, np.ndarray, np.ndarray]] = field(default_factory=list)  # (step, dB, frame, nearest)
    present: dict[str, np.ndarray] = field(default_factory=dict)  # (N,) bool per PRESENCE_CHECKS object


def run_coherence(
    spec: WorldSpec,
    steps: int = 9000,
    lanes: int = 1,
    seed: int = 0,
    real: bool = False,
    weights: str | None = None,
    device: str = "auto",
    temperature: float = 0.0,
    strip_every: int = 250,
    index: RealFrameIndex | None = None,
) -> CoherenceRun:
    """Free-run the dream (or with ``real`` the real env) for ``steps`` frames over ``lanes`` lanes."""
    import time

    if steps < 1 or lanes < 1:
        raise ValueError(f"steps and lanes must be >= 1, got {steps} and {lanes}")
    index = index if index is not None else index_for(spec)
    if real:
        env = gym.make_vec(spec.real_id, num_envs=lanes, vectorization_mode="sync")
    else:
        kw: dict[str, Any] = {
            "drift_policy": "none",
            "temperature": temperature,
            "max_episode_steps": 10**9,
            "device": device,
        }
        if weights:
            kw["weights"] = weights
        env = gym.make_vec(spec.dream_id, num_envs=lanes, **kw)
    driver, driver_name = driver_for(spec, lanes, env.single_action_space, index, seed)
    obs, _ = env.reset(seed=seed)
    nearest, _ = index.nearest(obs)
    age = np.zeros(lanes, np.int64)
    episode = np.arange(lanes)
    next_episode = lanes
    starting = np.zeros(lanes, bool)  # NEXT_STEP autoreset: this step restarts the lane
    plaus, ages, eps = [], [], []
    checks = PRESENCE_CHECKS.get(spec.key, {})
    present: dict[str, list[bool]] = {name: [] for name in checks}
    strip: list[tuple[int, float, np.ndarray, np.ndarray]] = []
    t0 = time.time()
    made = t = 0
    while made < steps:
        actions = driver.act(obs, nearest)
        obs, _, term, trunc, _ = env.step(actions)
        nearest, p = index.nearest(obs)
        if starting.any():
            driver.reset(starting)
            age[starting] = 0
            episode[starting] = np.arange(next_episode, next_episode + starting.sum())
            next_episode += int(starting.sum())
        dreamt = ~starting
        age[dreamt] += 1
        for i in np.flatnonzero(dreamt)[: steps - made]:
            plaus.append(p[i])
            ages.append(age[i])
            eps.append(episode[i])
            for name, locate in checks.items():
                present[name].append(locate(obs[i]) is not None)
            if i == 0 and strip_every and age[0] >= 1 and (t % strip_every == 0):
                strip.append((t + 1, float(p[0]), obs[0].copy(), index.frames[nearest[0]].copy()))
            made += 1
        starting = term | trunc
        t += 1
    env.close()
    return CoherenceRun(
        np.asarray(plaus),
        np.asarray(ages),
        np.asarray(eps),
        time.time() - t0,
        driver_name,
        index.description,
        strip,
        {k: np.asarray(v, bool) for k, v in present.items()},
    )


def summarize_coherence(run: CoherenceRun, good_psnr: float = GOOD_PSNR) -> dict[str, Any]:
    """The coherence numbers of a free-running dream: the share of frames within ``good_psnr``
    of their nearest real frame, and per episode the first step that was not."""
    p, age, ep = run.plausibility, run.age, run.episode
    good = p >= good_psnr
    first_bad = []
    for e in np.unique(ep):
        mask = ep == e
        bad = np.flatnonzero(~good[mask])
        first_bad.append(int(age[mask][bad[0]]) if len(bad) else None)
    dropped = [s for s in first_bad if s is not None]
    out: dict[str, Any] = {
        "frames": int(len(p)),
        "episodes": int(len(first_bad)),
        "good_psnr": good_psnr,
        "share_good": float(good.mean()) if len(p) else None,
        "median_plausibility": float(np.median(p)) if len(p) else None,
        "median_first_bad_step": float(np.median(dropped)) if dropped else None,
        "episodes_never_bad": int(sum(s is None for s in first_bad)),
        "longest_episode": int(age.max()) if len(age) else 0,
        "driver": run.driver,
        "index": run.index,
        "seconds": run.seconds,
    }
    for name, seen in run.present.items():  # a proxy index cannot tell a frame that lost its ball from a real one
        out[f"share_with_{name}"] = float(seen.mean()) if len(seen) else None
    for lo, hi in AGE_BUCKETS:
        m = (age >= lo) & (age <= hi)
        if m.any():
            out[f"median_plausibility_age_{lo}_{hi if hi < 10**9 else 'up'}"] = float(np.median(p[m]))
    return out


def write_strip(path: Path, run: CoherenceRun, per_row: int = 12, scale: int = 2) -> None:
    """A PNG: every strip frame (top) over its nearest real frame (bottom), titled 'step: dB'."""
    from PIL import Image, ImageDraw

    if not run.strip:
        raise ValueError("the run kept no strip frames")
    h, w = run.strip[0][2].shape[:2]
    title = 12
    cell_w, cell_h = w * scale + 4, 2 * h * scale + title + 6
    rows = (len(run.strip) + per_row - 1) // per_row
    canvas = Image.new("RGB", (cell_w * min(per_row, len(run.strip)), cell_h * rows), (140, 140, 140))
    draw = ImageDraw.Draw(canvas)

    def rgb(frame: np.ndarray) -> Image.Image:
        return Image.fromarray(to_rgb(frame)).resize((w * scale, h * scale), Image.NEAREST)

    for i, (step, db, dream, real) in enumerate(run.strip):
        x, y = (i % per_row) * cell_w, (i // per_row) * cell_h
        draw.text((x + 2, y), f"{step}: {db:.1f}", fill=(0, 0, 0))
        canvas.paste(rgb(dream), (x + 2, y + title))
        canvas.paste(rgb(real), (x + 2, y + title + h * scale + 4))
    atomic_write_bytes(Path(path), lambda f: canvas.save(f, format="PNG"))
