"""Does a Pong world draw the ball coming back off the player's paddle? Teacher-forced, on
recorded games.

At 64x64 the ball hides in the player's paddle for two steps, then shows again: in front
of it on the third (returned) or behind it a step later (missed). Fed the real frames up to
that step, a world draws its next frame (each of its futures, if it has several). Over the
returns and the misses of recorded episodes this counts the share in which some future shows
the ball where reality does (the same side of the paddle, rows within ``ROW_TOLERANCE``), and
the share of the future head's probability on such futures: what a dream at temperature 1
draws. A world whose futures never draw the return loses the ball there and pays a point
that reality did not (docs/worlds/pong.md). For a world with object cells it also reports the
share of the object head's probability on the cells where reality shows the ball (their
centres judged as a drawn ball is): where a dream at temperature 1 places it.
"""

from __future__ import annotations

import numpy as np
import torch

from neuralgym.metrics.objects import PONG_PLAYER_COLUMNS, pong_ball
from neuralgym.training.data import Episode
from neuralgym.world.spaces import encode_actions
from neuralgym.world.spec import WorldSpec

ARRIVAL_COLUMN = 50.0  # a ball heading right from this column on is at the player's paddle
ROW_TOLERANCE = 4.0  # rows between the drawn and the real ball that still count as the same


def paddle_arrivals(frames: np.ndarray) -> list[tuple[int, bool]]:
    """``(t, returned)`` for each time the ball, heading right at the player's paddle, hides
    in it: ``t`` is the step at which it shows again (within 4 steps), ``returned`` whether in
    front of the paddle (else behind it, missed). ``frames`` (T, H, W, C) uint8."""
    balls = [pong_ball(f) for f in frames]
    found = []
    for t in range(2, len(frames)):
        before, last = balls[t - 2], balls[t - 1]
        if before is None or last is None or balls[t] is not None:
            continue
        if last[1] < ARRIVAL_COLUMN or last[1] <= before[1]:
            continue
        shows = next((j for j in range(t + 1, min(t + 4, len(frames))) if balls[j] is not None), None)
        if shows is not None:
            found.append((shows, balls[shows][1] < PONG_PLAYER_COLUMNS[0]))
    return found


def paddle_returns(model: torch.nn.Module, spec: WorldSpec, episodes: list[Episode]) -> dict[str, float | int]:
    """``returns`` and ``misses`` counted in ``episodes``; ``returns_any`` / ``misses_any``:
    the share in which some future draws the ball where reality shows it; ``returns_drawn`` /
    ``misses_drawn``: the mean probability the future head gives such futures; for a world
    with object cells, ``returns_cell`` / ``misses_cell``: the mean probability its object
    head gives the cells where reality shows the ball."""
    k = spec.context_length
    device = next(model.parameters()).device
    tally: dict[bool, list[tuple[float, ...]]] = {True: [], False: []}
    centres = _cell_centres(model) if getattr(getattr(model, "config", None), "object_cells", 0) else []
    for ep in episodes:
        actions = encode_actions(spec, ep.actions)
        for t, returned in paddle_arrivals(ep.frames):
            if t < k:
                continue
            frames = torch.from_numpy(ep.frames[t - k : t]).permute(0, 3, 1, 2).float()[None].to(device) / 255.0
            target = torch.from_numpy(ep.frames[t]).permute(2, 0, 1).float()[None].to(device) / 255.0
            with torch.no_grad():
                out = model(frames, torch.from_numpy(actions[t - k : t])[None].float().to(device), target=target)
            futures = out["futures"][0] if "futures" in out else out["frame"]  # (M, C, H, W)
            probs = torch.softmax(out["future_logits"][0], 0) if "future_logits" in out else torch.ones(1)
            real = pong_ball(ep.frames[t])
            right = [_same_ball(_ball(f), real) for f in futures]
            row = (any(right), float(sum(p for p, r in zip(probs.tolist(), right) if r)))
            if "object_logits" in out:
                cells = torch.softmax(out["object_logits"][0, :-1].float(), 0).cpu().numpy()
                row += (float(sum(p for p, c in zip(cells, centres) if _same_ball(c, real))),)
            tally[returned].append(row)
    report: dict[str, float | int] = {"returns": len(tally[True]), "misses": len(tally[False])}
    keys = ["any", "drawn"] + (["cell"] if centres else [])
    for returned, name in ((True, "returns"), (False, "misses")):
        rows = np.array(tally[returned], dtype=np.float64).reshape(-1, len(keys))
        for i, key in enumerate(keys):
            report[f"{name}_{key}"] = float(rows[:, i].mean()) if len(rows) else float("nan")
    return report


def _cell_centres(model: torch.nn.Module) -> list[tuple[float, float]]:
    """The centre (row, col) of each of a world's object cells, in their order."""
    c = model.config
    cols = c.width // c.patch
    return [
        ((i // cols) * c.patch + (c.patch - 1) / 2, (i % cols) * c.patch + (c.patch - 1) / 2)
        for i in range((c.height // c.patch) * cols)
    ]


def _ball(frame: torch.Tensor) -> tuple[float, float] | None:
    return pong_ball(torch.round(frame.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy())


def _same_ball(drawn: tuple[float, float] | None, real: tuple[float, float] | None) -> bool:
    if drawn is None or real is None:
        return False
    behind = PONG_PLAYER_COLUMNS[0]
    return (drawn[1] < behind) == (real[1] < behind) and abs(drawn[0] - real[0]) <= ROW_TOLERANCE
