"""How long a training run has left: the steps' costs grow with the rollout length."""

from __future__ import annotations

from neuralgym.training.config import STEP_OVERHEAD, TrainConfig


def step_cost(cfg: TrainConfig, step: int) -> float:
    """What ``step`` costs, in rollout steps: its rollout (which grows during the run), its
    mean burn-in and the fixed part of every step."""
    return cfg.rollout(step) + cfg.burn_in / 2.0 + STEP_OVERHEAD


def eta_seconds(cfg: TrainConfig, first: int, done: int, seconds: float) -> float:
    """Seconds left, from ``seconds`` spent on steps ``first`` to ``done``."""
    spent = sum(step_cost(cfg, s) for s in range(first, done))
    return seconds / max(spent, 1e-9) * sum(step_cost(cfg, s) for s in range(done, cfg.steps))


def eta_line(cfg: TrainConfig, first: int, done: int, seconds: float) -> str:
    """One line: the seconds per step so far, the time left and what the last steps cost."""
    spent = sum(step_cost(cfg, s) for s in range(first, done))
    last = seconds / max(spent, 1e-9) * step_cost(cfg, cfg.steps - 1)
    return (
        f"~{seconds / max(1, done - first):.2f} s per step over steps {first + 1}-{done} "
        f"({(done - first) / max(seconds, 1e-9):.2f} steps/s); ETA {duration(eta_seconds(cfg, first, done, seconds))} "
        f"for {cfg.steps - done} more steps (rollouts grow to {cfg.rollout_max}: "
        f"the last steps take ~{last:.2f} s each)"
    )


def duration(seconds: float) -> str:
    """``seconds`` as 1h02m03s, 2m03s or 3s."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
