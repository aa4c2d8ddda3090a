"""The bottleneck decoder: a frame drawn from a short code, not filtered from the last frame.

A model that filters its newest frame copies every error it once made into the next frame, so a
long dream accumulates them: a pole that splits, a dark bar that grows along a track. A frame
decoded from a code of a few dozen numbers (the scene's state) cannot keep such debris: the
decoder only draws what it learned real frames look like, so a long dream stays plausible even
where its state drifts (``WorldModelConfig.bottleneck``).

Shapes: B batch, Z code, D decoder width, C channels, H x W frame, p the patch (fold) factor.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """x + conv(gelu(conv(gelu(x)))), the second conv starting at zero."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class FrameDecoder(nn.Module):
    """code (B, Z) -> frame (B, C, H, W), unclamped: a D-channel map at 1/2p resolution, a
    residual block, nearest upsampling to 1/p, another block, and p x p pixels per cell
    (pixel shuffle) added to a learned base image (the data's median frame)."""

    def __init__(self, code: int, width: int, channels: int, height: int, frame_width: int, patch: int):
        super().__init__()
        self.grid = (height // (2 * patch), frame_width // (2 * patch))
        self.patch, self.width = patch, width
        self.fc = nn.Linear(code, width * self.grid[0] * self.grid[1])
        self.coarse = ResBlock(width)
        self.fine = ResBlock(width)
        self.out = nn.Conv2d(width, channels * patch * patch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.base = nn.Parameter(torch.full((channels, height, frame_width), 0.5))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.fc(code).view(-1, self.width, *self.grid)  # (B, D, H/2p, W/2p)
        x = self.coarse(x)
        x = self.fine(F.interpolate(x, scale_factor=2, mode="nearest"))  # (B, D, H/p, W/p)
        # the pixels in fp32 also under autocast: a bf16 output stage moves edge pixels by 3+
        # grey levels; bf16 maps before it move 1.5% of pixels by one level (at most 4)
        with torch.autocast(x.device.type, enabled=False):
            delta = F.pixel_shuffle(self.out(F.gelu(x).float()), self.patch)  # (B, C, H, W)
            return self.base.float() + delta
