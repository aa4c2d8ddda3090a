"""Where a world's small object is, as a cell of the model's fine grid, found in a batch of
frames: the targets of a world with object cells (``WorldModelConfig.object_cells``).

A one- or two-pixel object (Pong's ball) is too cheap for a frame loss to keep, and where
its next position is open (coming back off a paddle or going past it) a frame loss
averages the outcomes into a faint smear. A world with object cells instead classifies
which 4x4 cell of the next frame holds the object (or that none does), draws one cell as a
dream draws anything else, and then draws the frame around it. Training teaches the
classifier with the cells found here and the frame with the true cell.

A locator maps frames (B, C, H, W) in [0, 1] to (B,) cell indices on the grid of
``patch`` x ``patch`` cells, row-major; ``(H / patch) * (W / patch)`` means "no object".
``OBJECT_CELL_LOCATORS`` names each world's by its spec key.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CellLocator = Callable[[torch.Tensor, int], torch.Tensor]

#: Pong at 64x64: the paddles' columns (opponent left, player right) and the ball's
#: signature (a 2x2 block whose deviation from the background sums to ~190 grey levels)
PONG_OPPONENT_COLUMNS, PONG_PLAYER_COLUMNS = (6, 8), (56, 58)
PONG_PIXEL_MIN = 10  # a pixel this far from the background can be part of the ball
PONG_BALL_MASS_MIN = 60.0  # a third of a real ball's summed deviation


def pong_ball_cells(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """The cell of the ball's centre in each grey Pong frame (B, 1, H, W), found as
    ``neuralgym.metrics.objects.pong_ball`` finds it: the deviation-weighted centroid of the
    5x5 window around the strongest non-background pixel away from the paddles' columns;
    "no object" where that window holds less than a third of a ball."""
    b, _, h, w = frames.shape
    f = torch.round(frames[:, 0].float() * 255.0)  # (B, H, W) grey levels
    background = f.flatten(1).mode(dim=1).values  # (B,): the most common grey level
    d = (f - background[:, None, None]).abs()
    d[:, :, PONG_OPPONENT_COLUMNS[0] - 1 : PONG_OPPONENT_COLUMNS[1] + 1] = 0.0
    d[:, :, PONG_PLAYER_COLUMNS[0] - 1 : PONG_PLAYER_COLUMNS[1] + 1] = 0.0
    d = torch.where(d < PONG_PIXEL_MIN, torch.zeros_like(d), d)
    rows = torch.arange(h, dtype=d.dtype, device=d.device)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=d.dtype, device=d.device)[None, :].expand(h, w)
    stacked = torch.stack([d, d * rows, d * cols], dim=1)  # (B, 3, H, W)
    window = F.avg_pool2d(stacked, 5, stride=1, padding=2, count_include_pad=True) * 25.0  # 5x5 sums
    peak = d.flatten(1).argmax(dim=1)  # (B,)
    at = window.flatten(2).gather(2, peak[:, None, None].expand(b, 3, 1))[:, :, 0]  # (B, 3)
    mass = at[:, 0]
    present = (d.flatten(1).amax(dim=1) > 0) & (mass >= PONG_BALL_MASS_MIN)
    safe = mass.clamp(min=1e-6)
    r = (at[:, 1] / safe).floor().clamp(0, h - 1).long() // patch
    c = (at[:, 2] / safe).floor().clamp(0, w - 1).long() // patch
    none = (h // patch) * (w // patch)
    return torch.where(present, r * (w // patch) + c, torch.full_like(r, none))


#: each world with object cells: its locator, by spec key
OBJECT_CELL_LOCATORS: dict[str, CellLocator] = {"pong": pong_ball_cells}


def object_cell_locator(world: str) -> CellLocator:
    """The locator of ``world`` (a spec key); a clear error for a world that has none."""
    if world not in OBJECT_CELL_LOCATORS:
        raise ValueError(
            f"object cells need a locator of the world's object; {world!r} has none "
            f"(worlds with one: {', '.join(sorted(OBJECT_CELL_LOCATORS))})"
        )
    return OBJECT_CELL_LOCATORS[world]
