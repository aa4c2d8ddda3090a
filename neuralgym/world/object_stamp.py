"""The object cells' stage of a filter world (``WorldModelConfig.object_cells``): the head
that names the cell of the next frame holding the world's small object, the draw of one
cell, and its stamp on the fine grid, around which the frame is then drawn
(world/object_cells.py says why)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

WorldModel = Any  # neuralgym.world.model.WorldModel, which imports this module


def object_stamp(
    model: WorldModel,
    fine: torch.Tensor,
    pooled: torch.Tensor,
    out: dict[str, torch.Tensor],
    target: torch.Tensor | None,
    noise: torch.Tensor | None,
    skip: int,
) -> torch.Tensor:
    """The object's cell, classified from the fine grid (B, Wf, h, w) and the pooled context
    (B, 16 Wc + 64), or ``target`` (B,) where given; returns its stamp on the fine grid
    (B, Wf, h, w) and records ``object_logits`` (B, h w + 1; the last: no object) and
    ``object`` (B,) in ``out``. ``noise``'s columns from ``skip`` on draw the cell."""
    b, _, h, w = fine.shape
    logits = torch.cat([model.object_head(fine).flatten(1), model.object_absent(pooled)], dim=1).float()
    out["object_logits"] = logits
    if target is None:
        target = (logits if noise is None else logits + noise[:, skip:].float()).argmax(dim=1)
    out["object"] = target
    onehot = F.one_hot(target.long(), h * w + 1)[:, : h * w].view(b, 1, h, w).to(fine.dtype)
    return model.object_stamp(onehot.contiguous(memory_format=torch.channels_last))
