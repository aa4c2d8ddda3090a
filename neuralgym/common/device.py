"""Which torch device a ``device=`` argument means: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

Every layer that places tensors (the dream, latent observations, training, bench)
resolves the name here, so they agree on what ``"auto"`` picks and on the error.
"""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; an unknown name is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(device)
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
