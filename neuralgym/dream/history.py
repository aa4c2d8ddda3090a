"""The last K frames of every lane, as a ring buffer the model reads in place.

A dream step used to shift each lane's K frames by one (a copy of the whole history per
step) and the model then built K-1 frame differences and concatenated them with the
newest frame (two more copies). Here the history is one ``(N, K*C, H, W)`` tensor in
channels-last layout whose slot ``(start + t) % K`` holds time step ``t`` (0 = oldest): a
step writes one slot and moves ``start``, and the model's input convolution reads the
slots as they lie, its weights rolled to match (:meth:`WorldModel.input_weight`).
"""

from __future__ import annotations

import torch


class FrameRing:
    """K frames per lane, float in [0, 1] (on the 8-bit grid), in a ring of K slots."""

    def __init__(self, num_envs: int, k: int, channels: int, height: int, width: int, device: torch.device):
        self.k, self.channels = k, channels
        self.buf = torch.zeros(num_envs, k * channels, height, width, device=device).contiguous(
            memory_format=torch.channels_last
        )  # (N, K C, H, W)
        self.start = 0  # the slot of the oldest frame

    @property
    def slots(self) -> torch.Tensor:
        """The buffer as (N, K, C, H, W), slot order (a view)."""
        n, _, h, w = self.buf.shape
        return self.buf.view(n, self.k, self.channels, h, w)

    def ordered(self, lanes: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """The ``lanes``' frames oldest first, (n, K, C, H, W) (a copy)."""
        return self.slots[lanes].roll(-self.start, dims=1)

    def newest(self, lanes: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """The ``lanes``' newest frames, (n, C, H, W)."""
        return self.slots[lanes, (self.start - 1) % self.k]

    def write(self, lanes: torch.Tensor, frames: torch.Tensor) -> None:
        """Replace the ``lanes``' histories with ``frames`` (n or 1, K, C, H, W), oldest first."""
        self.slots[lanes] = frames.roll(self.start, dims=1)

    def push(self, frame: torch.Tensor) -> None:
        """Every lane's next frame (N, C, H, W): it takes the oldest frame's slot."""
        self.slots[:, self.start] = frame
        self.start = (self.start + 1) % self.k
