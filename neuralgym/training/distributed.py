"""Training under ``torchrun``: joining the process group, agreeing on the setup, averaging.

One trainer serves a single process and ``torchrun`` alike: under torchrun it joins the
process group (gloo on CPU, nccl on CUDA) and every rank checks that it trains the same
thing as rank 0 before the first collective; logged numbers are averaged over ranks.
"""

from __future__ import annotations

import atexit
import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's place in the job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we created the process group, so we destroy it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_timeout() -> timedelta:
    """How long a collective waits for a silent rank before the job fails: env
    ``NEURALGYM_DIST_TIMEOUT`` (seconds, default 300)."""
    text = os.environ.get("NEURALGYM_DIST_TIMEOUT", "300")
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"NEURALGYM_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return timedelta(seconds=seconds)


def init_distributed(device: torch.device) -> Dist:
    """Join torchrun's process group when launched by it; otherwise a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)  # before NCCL starts: each rank owns one GPU
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=dist_timeout())
        # also on an error exit: a process group left to interpreter teardown can abort
        # the process ("terminate called without an active exception") over its message
        atexit.register(lambda: dist.destroy_process_group() if dist.is_initialized() else None)
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def check_same_on_all_ranks(ddp: Dist, what: dict[str, Any]) -> None:
    """Every rank must train the same thing: the same config and the same data. A mismatch
    (another --steps on one node, a stale dataset copy on another) would otherwise
    desynchronise the collectives and hang, or silently train on another global batch;
    here it is one clear error on every rank."""
    if ddp.world_size <= 1:
        return

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": repr(v)})
        return out

    everyone: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(everyone, flat(what))
    bad = [r for r, theirs in enumerate(everyone) if theirs != everyone[0]]
    if bad:
        ours, theirs = everyone[0], everyone[bad[0]]
        diff = ", ".join(
            f"{k}: {ours.get(k)} vs {theirs.get(k)}"
            for k in sorted(ours.keys() | theirs.keys())
            if ours.get(k) != theirs.get(k)
        )
        raise ValueError(
            f"ranks disagree on the training setup: rank 0 vs rank {bad[0]}: {diff}; "
            f"every node needs the same command line and the same data"
        )


def global_mean(
    ddp: Dist, loss: torch.Tensor, stats: dict[str, float], device: torch.device
) -> tuple[float, dict[str, float]]:
    """The loss and its parts averaged over the ranks: the global batch's numbers, which
    are what a single process with the same global batch would log."""
    if ddp.world_size <= 1:
        return loss.item(), stats
    t = torch.tensor([loss.item(), *stats.values()], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t = (t / ddp.world_size).tolist()
    return t[0], dict(zip(stats, t[1:]))
