"""torch's CPU thread count for the heavy commands (``--threads``).

A dream step at small batch gains little from a second thread, and on a machine whose
cores are busy with another process it loses a lot: measured on a 2-core machine with
one core kept busy, ``bench`` at batch 256 ran 2.7x the real env with one thread and
0.56x with torch's default of two. So the default is one thread where there are at
most two cores, and torch's own choice elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: at or below this many cores, the default is one torch thread
FEW_CORES = 2


def default_threads() -> int | None:
    """1 on a machine with at most ``FEW_CORES`` cores; None (torch's default) elsewhere."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= FEW_CORES else None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (None: :func:`default_threads`), restored afterwards."""
    import torch

    n = n if n is not None else default_threads()
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
