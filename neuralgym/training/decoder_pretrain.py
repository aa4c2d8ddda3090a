"""Teach a bottleneck world's decoder to draw real frames before the world learns to predict.

An autoencoder over single training frames: a small encoder turns a frame into a code of the
world's width, normalised as the world's own codes are, and the world's decoder draws it back.
Trained end to end from a fresh decoder, a bottleneck world sharpens slowly (measured on
CartPole, 2-core CPU: ~30 dB one-step PSNR after 2,000 steps), because every code reaches the
decoder through the whole predictive trunk; the autoencoder alone draws frames at 45+ dB within
a few thousand cheap steps. The world then only has to learn to predict codes the decoder
already draws (``TrainConfig.decoder_pretrain``). The encoder is discarded.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from neuralgym.world.model import WorldModel


class FrameEncoder(nn.Module):
    """frame (B, C, H, W) -> code (B, Z): the frame folded p x p into channels, a 1x1 conv, a
    stride-2 conv, a residual conv, a linear map, and the same normalisation as the world's code."""

    def __init__(self, code: int, width: int, channels: int, height: int, frame_width: int, patch: int):
        super().__init__()
        self.patch = patch
        self.inp = nn.Conv2d(channels * patch * patch, width, 1)
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.res = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width * (height // (2 * patch)) * (frame_width // (2 * patch)), code)
        self.norm = nn.LayerNorm(code, elementwise_affine=False)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        x = self.down(F.gelu(self.inp(F.pixel_unshuffle(frame, self.patch))))
        x = x + self.res(F.gelu(x))
        return self.norm(self.fc(F.gelu(x).flatten(1)))


def pretrain_decoder(
    model: WorldModel,
    frames: np.ndarray,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | None = None,
) -> float:
    """Train ``model.decoder`` (in place) as the decoder of a frame autoencoder on ``frames``
    (N, H, W, C) uint8 for ``steps`` steps. Returns the mean PSNR (dB) of its reconstructions of
    the last frames (256, or a quarter of fewer), which it was not trained on."""
    c = model.config
    if not c.bottleneck:
        raise ValueError("pretrain_decoder needs a bottleneck world (WorldModelConfig.bottleneck > 0)")
    if len(frames) < 8:
        raise ValueError(f"pretrain_decoder needs at least 8 frames, got {len(frames)}")
    device = device or next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    encoder = FrameEncoder(c.bottleneck, c.decoder_width, c.channels, c.height, c.width, c.patch).to(device)
    opt = torch.optim.Adam([*encoder.parameters(), *model.decoder.parameters()], lr=lr)
    n_held = min(256, len(frames) // 4)  # the last frames, kept out to score the result
    held_out, train_frames = frames[-n_held:], frames[:-n_held]

    def as_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).float() / 255.0

    for step in range(steps):
        for group in opt.param_groups:  # cosine to a tenth
            group["lr"] = lr * (0.1 + 0.45 * (1 + np.cos(np.pi * step / max(1, steps))))
        x = as_tensor(train_frames[torch.randint(len(train_frames), (batch_size,), generator=gen).numpy()])
        loss = F.mse_loss(model.decoder(encoder(x)), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = as_tensor(held_out)
        y = torch.round(model.decoder(encoder(x)).clamp(0, 1) * 255.0) / 255.0
        mse = (y - x).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((-10.0 * torch.log10(mse)).mean())
