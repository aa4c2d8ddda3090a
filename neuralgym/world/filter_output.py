"""The filter world's output stage: the next frame as per-pixel 3x3 filter taps over the
newest frame plus a residual, blended with the learned background, for one future or many.

A world with several futures has M sets of taps (future 0's in ``out``, the others in
``alt_out``). With ``gated_futures`` each other future differs from future 0 only where its
gate, one number per 4x4 cell, opens: elsewhere it draws exactly future 0's pixels. Training
keeps the future closest to reality, so without gates a future that draws a rare outcome
right (a ball coming back off a paddle) but the rest of the frame a little worse loses to
future 0 wherever the rest decides (docs/worlds/pong.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

WorldModel = Any  # neuralgym.world.model.WorldModel, which imports this module


def filter_output(
    model: WorldModel, act: torch.Tensor, last: torch.Tensor, pick: torch.Tensor | None = None
) -> torch.Tensor:
    """act (B, Wf, h, w) the fine grid's activations, last (B, C, H, W) the newest frame ->
    the next frame (B, C, H, W), not yet clamped. A world with several futures draws future
    ``pick`` (B,) of each sample, or with ``pick`` None every future, (B, M, C, H, W).

    It runs on the fine grid, channels last (the convolutions' layout): each tap's window of
    the newest frame is a strided view folded 4x4 like the maps, so only the 1-channel result
    is unfolded to full size."""
    c, p = model.config, model.config.patch
    b, _, h, w = act.shape
    # the 1x1 output convs as fp32 matmuls on channels-last pixels (the filter taps need fp32
    # even under autocast); a column of ones carries the bias (addmm would first copy the bias
    # into the 10x wider output)
    with torch.autocast(act.device.type, enabled=False):
        pixels = act.permute(0, 2, 3, 1).reshape(b * h * w, -1)  # (B h w, Wf): no copy
        pixels = torch.cat([pixels.float(), pixels.new_ones(b * h * w, 1, dtype=torch.float32)], 1)  # (B h w, Wf+1)
        weight = _dense(model.out)
        if c.futures > 1:
            weight = torch.cat([weight, _dense(model.alt_out)])
        gate = alt = None  # gate (B, h, w, M-1): how far each other future may depart from future 0, per cell
        if c.futures > 1 and c.gated_futures:
            gate = torch.sigmoid(pixels @ _dense(model.future_gate).t()).view(b, h, w, c.futures - 1)
        if pick is None:  # every future: (B, h, w, M, C, 10, p, p)
            maps = (pixels @ weight.t()).view(b, h, w, c.futures, c.channels, 10, p, p)
            if gate is not None:
                base = maps[:, :, :, :1]
                alt = base + gate[..., None, None, None, None] * (maps[:, :, :, 1:] - base)
                maps = torch.cat([base, alt], dim=3)
        else:  # only each sample's drawn future's taps: (B, h, w, C, 10, p, p)
            per_future = weight.view(c.futures, -1, weight.shape[1])  # (M, C*10*p*p, Wf + 1)
            drawn = per_future[pick]  # (B, C*10*p*p, Wf + 1)
            maps = torch.bmm(pixels.view(b, h * w, -1), drawn.transpose(1, 2)).view(b, h, w, c.channels, 10, p, p)
            alt = (pick > 0).nonzero()[:, 0] if gate is not None else None  # lanes that drew another future
            if alt is not None and len(alt):  # future 0's taps for them: they depart from it where gates open
                n = len(alt)
                base = (pixels.view(b, h * w, -1)[alt] @ per_future[0].t()).view(n, h, w, c.channels, 10, p, p)
                g = gate[alt].gather(3, (pick[alt] - 1).view(n, 1, 1, 1).expand(n, h, w, 1))  # (n, h, w, 1)
    padded = F.pad(last, (1, 1, 1, 1), mode="replicate")  # (B, C, H+2, W+2)
    # every (p+2) x (p+2) window of the padded frame around a patch, as a view (no copy)
    s_b, s_c, s_y, s_x = padded.stride()
    windows = padded.as_strided((b, h, w, c.channels, p + 2, p + 2), (s_b, p * s_y, p * s_x, s_c, s_y, s_x))
    mask = None
    if c.background:
        with torch.autocast(act.device.type, enabled=False):
            mask = torch.sigmoid((pixels @ _dense(model.mask_out).t()).view(b, h, w, c.channels, p, p))
    if pick is not None:
        frame = _blend(model, maps, windows, mask)
        if alt is None or not len(alt):
            return frame
        # a frame is linear in its taps, so gating the frames per cell is gating the taps
        base_frame = _blend(model, base, windows[alt], None if mask is None else mask[alt])
        g = g.view(n, 1, h, 1, w, 1).expand(n, 1, h, p, w, p).reshape(n, 1, c.height, c.width)
        return frame.index_copy(0, alt, base_frame + g * (frame[alt] - base_frame))
    if c.futures == 1:
        return _blend(model, maps[:, :, :, 0], windows, mask)
    return torch.stack([_blend(model, maps[:, :, :, m], windows, mask) for m in range(c.futures)], dim=1)


def _dense(conv: torch.nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution's weight and bias as one fp32 matrix (out, in + 1)."""
    return torch.cat([conv.weight.flatten(1), conv.bias[:, None]], dim=1).float()


def _blend(model: WorldModel, maps: torch.Tensor, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One future's frame (B, C, H, W) from its taps (B, h, w, C, 10, p, p), the newest
    frame's windows (B, h, w, C, p+2, p+2) and the background mask (B, h, w, C, p, p)."""
    c, p = model.config, model.config.patch
    b, h, w = maps.shape[:3]
    frame = torch.add(windows[..., 1 : p + 1, 1 : p + 1], maps[..., 9, :, :])  # (B, h, w, C, p, p)
    for k in range(9):
        dy, dx = divmod(k, 3)
        frame = torch.addcmul(frame, maps[..., k, :, :], windows[..., dy : dy + p, dx : dx + p])
    if mask is not None:
        bg = model.background.float().view(c.channels, h, p, w, p).permute(1, 3, 0, 2, 4)  # (h, w, C, p, p)
        frame = torch.addcmul(bg, mask, frame - bg)  # mask 1: the filter's frame; 0: the background
    return frame.permute(0, 3, 1, 4, 2, 5).reshape(b, c.channels, c.height, c.width)
