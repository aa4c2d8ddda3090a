"""How many dream lanes fit: refuse up front a dream the device cannot hold.

A lane keeps K float32 frames and K-1 action codes on the device, and a step builds the
shifted copy beside them; asking for a million lanes should be one clear error naming
the numbers, not an allocator crash halfway through a reset.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from neuralgym.world.spec import WorldSpec


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can have on ``device`` now (CUDA: free memory; CPU: the
    kernel's MemAvailable, capped by a cgroup limit), or None where unknown."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's own limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip()))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            return None
    return max(0, min(found))


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError("unreachable")


def check_lanes_fit(spec: WorldSpec, num_envs: int, device: torch.device) -> None:
    """Refuse up front a dream of more lanes than ``device`` can hold: each lane keeps K
    float32 frames and K-1 action codes, and a step builds the shifted copy beside them."""
    k, (h, w, c), a = spec.context_length, spec.obs_shape, spec.actions.model_dim
    per_lane = 2 * 4 * (k * c * h * w + (k - 1) * a) + 2 * c * h * w  # history twice, plus the uint8 observation
    need = num_envs * per_lane
    have = available_memory(device)
    if have is not None and need > have:
        raise ValueError(
            f"num_envs={num_envs} needs at least {_bytes(need)} of memory on {device} "
            f"({_bytes(per_lane)} per lane: {k} frames of {h}x{w}x{c} float32 and a step's copy of them), "
            f"but {device} has {_bytes(have)} available: use fewer lanes (at most ~{have // per_lane} fit)"
        )
