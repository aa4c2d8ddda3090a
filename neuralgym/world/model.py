"""The world model: an action-conditioned next-frame predictor over the last K frames.

Design (see docs/design.md), shaped by what was measured on a
2-core CPU: a frozen frame is a strong baseline, so the model must copy what does not
move pixel-exactly and move what does by the right sub-pixel amount.

* Its output is a per-pixel 3x3 filter applied to the newest frame plus a residual
  (a dynamic-filter output): a sub-pixel shift of an edge is an exact blend of real
  neighbouring pixels, and the filter starts as the identity, so static pixels come
  out unchanged.
* Its input is the newest frame plus the K-1 frame differences (scaled up), so the
  velocity of every edge is an explicit input, not something to infer.
* Frames are folded 4x4 into channels (pixel unshuffle): a 64x64 frame becomes a
  16x16 grid whose channels keep every pixel, so edges' sub-pixel intensities survive.
  A 1/8-resolution path gives the whole-scene context (e.g. the pole's angle).
* Actions enter as a per-channel scale and shift (FiLM) at both resolutions.
* Heads on the context pooled to a 4x4 grid: reward, termination logit, and the log of
  the model's own expected squared error (a drift signal: the "error head").
* Optionally M futures: where the frames leave the outcome open (a ball passing the paddle
  or bouncing off it), M sets of output taps draw M next frames instead of their average, a
  head predicts which comes, and a dream draws one (docs/design.md).
* Optionally object cells: a small object whose next place is open (Pong's ball) is
  placed first: a head classifies which 4x4 cell of the next frame holds it (or that none
  does), a dream draws one cell, and the frame is drawn around the cell it was given
  (world/object_cells.py).

Shapes: B batch, K context, C channels, H x W frame, A action width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from neuralgym.world.decoder import FrameDecoder
from neuralgym.world.filter_output import filter_output
from neuralgym.world.object_stamp import object_stamp


@dataclass
class WorldModelConfig:
    """The model's shape: frame size, context K, action width, grid widths, and the optional
    parts (learned background, reward classifier). Stored in every world file."""

    height: int = 64
    width: int = 64
    channels: int = 1  # 1 grayscale, 3 RGB
    context: int = 4  # K frames and K actions
    action_dim: int = 2  # one-hot width (discrete) or box dimension
    patch: int = 4  # pixel-unshuffle factor: the fine grid is H/patch x W/patch
    fine_width: int = 24  # channels on the fine grid
    coarse_width: int = 48  # channels on the coarse grid (fine / 2)
    diff_scale: float = 8.0  # frame differences are small: scale them up at the input
    # a learned static background image blended in by a predicted per-pixel mask: where
    # nothing moves the output is pulled back to the background every step, so small
    # errors there cannot accumulate over a long dream (0: off, as in older worlds)
    background: int = 0
    # reward as a classifier over this many reward values (the model's ``reward_values``
    # buffer, taken from the data); 0: a regressed reward, as in older worlds; 1: a world
    # that pays one value every step (CartPole's 1), with no classifier to learn
    reward_classes: int = 0
    # > 0: the next frame is decoded from a code of this many numbers (world/decoder.py)
    # instead of filtering the newest frame, so a long dream cannot pile up debris (0: off)
    bottleneck: int = 0
    decoder_width: int = 48  # channels of the bottleneck decoder's maps
    # > 1: the output stage draws this many next frames and a head predicts which comes, so a
    # dream picks one future where the frames leave several open (filter worlds; 1: one future)
    futures: int = 1
    # with several futures: each other future departs from future 0 only where its gate (one
    # number per 4x4 cell) opens, so a rare outcome is not outweighed by the rest of the frame
    gated_futures: int = 0  # 0 or 1
    # 1: a head classifies which cell of the fine grid holds the world's small object in the
    # next frame (or that none does), a dream draws one, and the frame is drawn around it, so
    # an object whose next place is open is drawn whole in one place, not smeared (filter worlds)
    object_cells: int = 0  # 0 or 1

    def validate(self) -> None:
        if self.background not in (0, 1):
            raise ValueError(f"background must be 0 or 1, got {self.background!r}")
        if self.height % (2 * self.patch) or self.width % (2 * self.patch):
            raise ValueError(f"frame size {self.height}x{self.width} must be divisible by {2 * self.patch}")
        if self.context < 2:
            raise ValueError(f"context must be >= 2 (motion lives in the history), got {self.context}")
        if self.futures < 1 or (self.futures > 1 and self.bottleneck):
            raise ValueError(
                f"futures must be >= 1, and 1 in a bottleneck world (its frame is decoded from one code), "
                f"got futures={self.futures!r} with bottleneck={self.bottleneck!r}"
            )
        if self.object_cells not in (0, 1) or (self.object_cells and self.bottleneck):
            raise ValueError(
                f"object_cells must be 0 or 1, and 0 in a bottleneck world, got {self.object_cells!r} "
                f"with bottleneck={self.bottleneck!r}"
            )
        if self.bottleneck < 0 or (self.bottleneck and self.decoder_width < 1):
            raise ValueError(
                f"bottleneck must be >= 0 and decoder_width >= 1, got {self.bottleneck!r}, {self.decoder_width!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class FiLMResBlock(nn.Module):
    """x + conv(act(conv(act(x) * (1 + scale) + shift))): a residual block whose
    activations are modulated by the action embedding."""

    def __init__(self, width: int, cond_dim: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * width)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.gelu(x))
        h = F.gelu(h * (1 + scale) + shift)
        return x + self.conv2(h)


class WorldModel(nn.Module):
    """Next frame, reward, termination and expected error from K frames and K actions."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        in_ch = c.channels * c.context * c.patch * c.patch
        cond = 64
        self.action_embed = nn.Sequential(nn.Linear(c.context * c.action_dim, cond), nn.GELU(), nn.Linear(cond, cond))
        self.inp = nn.Conv2d(in_ch, c.fine_width, 1)
        self.fine_in = FiLMResBlock(c.fine_width, cond)
        self.down = nn.Conv2d(c.fine_width, c.coarse_width, 3, stride=2, padding=1)
        self.coarse1 = FiLMResBlock(c.coarse_width, cond, dilation=1)
        self.coarse2 = FiLMResBlock(c.coarse_width, cond, dilation=2)
        if c.bottleneck:
            # the code: the whole coarse grid and the action code, normalised (zero mean, unit
            # variance over its numbers) so that a drifting dream's codes keep the scale of those
            # the decoder learned to draw (a tanh here saturated and stalled training)
            grid = (c.height // (2 * c.patch)) * (c.width // (2 * c.patch))
            self.to_code = nn.Sequential(
                nn.Linear(grid * c.coarse_width + cond, c.bottleneck),
                nn.LayerNorm(c.bottleneck, elementwise_affine=False),
            )
            self.decoder = FrameDecoder(c.bottleneck, c.decoder_width, c.channels, c.height, c.width, c.patch)
        else:
            self.up = nn.Conv2d(c.coarse_width, c.fine_width, 1)
            self.fine_out = FiLMResBlock(c.fine_width, cond)
            # per output pixel: 9 filter taps over the newest frame's 3x3 neighbourhood + 1 residual
            self.out = nn.Conv2d(c.fine_width, c.channels * 10 * c.patch * c.patch, 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            if c.futures > 1:  # the other futures' taps (future 0's are ``out``); training starts them near it
                self.alt_out = nn.Conv2d(c.fine_width, (c.futures - 1) * c.channels * 10 * c.patch * c.patch, 1)
                nn.init.normal_(self.alt_out.weight, std=1e-3)
                nn.init.zeros_(self.alt_out.bias)
                if c.gated_futures:  # half open at first (world/filter_output.py)
                    self.future_gate = nn.Conv2d(c.fine_width, c.futures - 1, 1)
                    nn.init.zeros_(self.future_gate.weight)
                    nn.init.zeros_(self.future_gate.bias)
            if c.object_cells:
                # a logit per cell from its own and its neighbours' features (where the object
                # comes from), and one for "no object" from the pooled context; the drawn cell
                # enters the fine grid as a learned 3x3 stamp (zero at first: a world given
                # object cells draws its frames as before)
                self.object_head = nn.Sequential(
                    nn.Conv2d(c.fine_width, c.fine_width, 3, padding=1), nn.GELU(), nn.Conv2d(c.fine_width, 1, 1)
                )
                self.object_absent = nn.Linear(16 * c.coarse_width + cond, 1)
                self.object_stamp = nn.Conv2d(1, c.fine_width, 3, padding=1)
                for layer in (self.object_head[2], self.object_absent, self.object_stamp):  # uniform, no stamp
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
        # the heads see where things are (a 4x4 pooled grid), not just what is there: a
        # termination is a pole past an angle or a cart past an edge
        head_in = 16 * c.coarse_width + cond
        self.heads = nn.Sequential(nn.Linear(head_in, 64), nn.GELU(), nn.Linear(64, 3))  # reward, term logit, log err
        if c.futures > 1:  # which future comes: logits over the futures, uniform at first
            self.future_head = nn.Sequential(nn.Linear(head_in, 64), nn.GELU(), nn.Linear(64, c.futures))
            nn.init.zeros_(self.future_head[2].weight)
            nn.init.zeros_(self.future_head[2].bias)
        if c.background and not c.bottleneck:
            self.mask_out = nn.Conv2d(c.fine_width, c.channels * c.patch * c.patch, 1)
            nn.init.zeros_(self.mask_out.weight)
            nn.init.constant_(self.mask_out.bias, 6.0)  # sigmoid(6) ~ 1: the filter's output, as without a background
            self.background = nn.Parameter(torch.full((c.channels, c.height, c.width), 0.5))
        if c.reward_classes > 1:
            # its own MLP, which also sees the fine grid max-pooled to 4x4: a reward is often
            # decided by a small object at an edge (a ball passing a paddle), which the
            # averaged context grid blurs away; and the frame it predicts next beside the newest
            # one (max, min and change, pooled to 8x8): a ball that leaves the field
            self.reward_head = nn.Sequential(
                nn.Linear(head_in + 16 * c.fine_width + 3 * 64 * c.channels, 64),
                nn.GELU(),
                nn.Linear(64, c.reward_classes),
            )
            nn.init.zeros_(self.reward_head[2].weight)
            nn.init.zeros_(self.reward_head[2].bias)
        if c.reward_classes:
            self.register_buffer("reward_values", torch.zeros(c.reward_classes))
            # training weighs rare classes up; their log weights, subtracted again at inference
            self.register_buffer("reward_logit_offset", torch.zeros(c.reward_classes))
        # NHWC conv weights: oneDNN then runs the convolutions without reordering each call
        # (measured on a 2-core CPU: inference +45%, training +50%)
        self.to(memory_format=torch.channels_last)

    def input_weight(self, start: int | None = None) -> torch.Tensor:
        """The input convolution's weights over the K raw frames, (Wf, K C, p, p).

        The model reads the newest frame and the K-1 scaled differences between
        consecutive frames; a difference is linear in its two frames, so one convolution of
        the frames themselves with these combined weights computes exactly the same (to
        float rounding) without building the differences: the dream's step then reads its
        history as it is stored. ``start``: the slot of the oldest frame in a ring buffer
        of K slots (slot ``(start + t) % K`` holds time step t); None: the slots are in time order."""
        c = self.config
        k, ch, p = c.context, c.channels, c.patch
        w = self.inp.weight.view(c.fine_width, k, ch, p, p)  # slot 0: the newest frame; 1..K-1: the differences
        wd = w[:, 1:].float() * c.diff_scale  # (Wf, K-1, C, p, p): d_t = f_{t+1} - f_t
        zero = wd.new_zeros(c.fine_width, 1, ch, p, p)
        eff = torch.cat([zero, wd], dim=1) - torch.cat([wd, zero], dim=1)  # coefficient of f_t: wd_{t-1} - wd_t
        eff[:, -1] += w[:, 0].float()
        if start:
            eff = eff.roll(start % k, dims=1)  # time step t to slot (start + t) % K
        return eff.flatten(1, 2)

    def features(
        self, frames: torch.Tensor, actions: torch.Tensor, start: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """frames (B, K, C, H, W) in [0, 1], oldest first, or a ring buffer (B, K C, H, W)
        whose oldest frame is in slot ``start`` (:meth:`input_weight`); actions (B, K, A). Returns the fine grid
        (B, Wf, H/p, W/p), the coarse grid (B, Wc, H/2p, W/2p) and the action code (B, 64)."""
        c = self.config
        history = frames.flatten(1, 2) if frames.dim() == 5 else frames  # (B, KC, H, W)
        cond = self.action_embed(actions.flatten(1))  # (B, 64)
        # the 1x1 input conv over the 4x4-folded frame, as one stride-4 patch convolution over
        # the raw frames (input_weight); in fp32 also under autocast: the combined weights
        # cancel where nothing moves, which bf16 rounding would not
        with torch.autocast(history.device.type, enabled=False):
            x = F.conv2d(history.float(), self.input_weight(start), self.inp.bias.float(), stride=c.patch)
        fine = self.fine_in(x, cond)  # (B, Wf, H/p, W/p)
        coarse = self.coarse2(self.coarse1(self.down(fine), cond), cond)
        return fine, coarse, cond

    def newest(self, frames: torch.Tensor, start: int | None = None) -> torch.Tensor:
        """The newest frame (B, C, H, W) of a history as :meth:`features` takes it."""
        if frames.dim() == 5:
            return frames[:, -1]
        ch, slot = self.config.channels, ((start or 0) - 1) % self.config.context
        return frames[:, slot * ch : (slot + 1) * ch]

    #: on a CPU, inference runs the batch in blocks of this many samples: the full-resolution
    #: output stage of a large batch no longer fits in cache and throughput halves
    cpu_block: int = 64

    def forward(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        start: int | None = None,
        noise: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        object_target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """frames and ``start`` as :meth:`features` takes them. Returns ``frame`` (B, C, H, W)
        in [0, 1] (not yet rounded to 8 bits), ``reward`` (B,), ``term_logit`` (B,), ``log_err`` (B,).

        A world with several futures also returns ``future_logits`` (B, M) and draws the future
        argmax(logits + ``noise``) ((B, M) Gumbel noise, a dream's draw; None: the most likely);
        given the true next frame ``target`` (B, C, H, W) (training) it instead returns every
        future, ``futures`` (B, M, C, H, W), and as ``frame`` the closest to the target, whose
        index is ``future`` (B,). A world with one future ignores both.

        A world with object cells also returns ``object_logits`` (B, cells + 1; the last: no
        object) and ``object`` (B,), the cell it drew the frame around: ``object_target`` (B,)
        where given (training: the true cell), else argmax(logits + its part of ``noise``).
        ``noise`` is :func:`draw_noise`'s: the futures' columns first, then the cells'."""
        n = frames.shape[0]
        if n > self.cpu_block and frames.device.type == "cpu" and not torch.is_grad_enabled():

            def cut(x: torch.Tensor | None, i: int) -> torch.Tensor | None:
                return None if x is None else x[i : i + self.cpu_block]

            parts = [  # each block is at most cpu_block long: this recursion is one level deep
                self.forward(
                    cut(frames, i), cut(actions, i), start, cut(noise, i), cut(target, i), cut(object_target, i)
                )
                for i in range(0, n, self.cpu_block)
            ]
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        fine, coarse, cond = self.features(frames, actions, start)
        last = self.newest(frames, start)  # (B, C, H, W)
        pooled = torch.cat([F.adaptive_avg_pool2d(coarse, 4).flatten(1), cond], dim=1)  # (B, 16 Wc + 64)
        out: dict[str, torch.Tensor] = {}
        if self.config.bottleneck:
            code = self.to_code(torch.cat([coarse.flatten(1), cond], dim=1))  # (B, Z)
            frame = self.decoder(code)  # its convolutions under autocast too, its output stage fp32
        else:
            fine = fine + F.interpolate(self.up(coarse), scale_factor=2, mode="nearest")
            n_fut = self.config.futures if self.config.futures > 1 else 0
            if self.config.object_cells:
                fine = fine + object_stamp(self, fine, pooled, out, object_target, noise, n_fut)
            fine = self.fine_out(fine, cond)
            pick = None
            if n_fut:
                logits = self.future_head(pooled).float()  # (B, M)
                out["future_logits"] = logits
                if target is None:
                    drawn = logits if noise is None else logits + noise[:, :n_fut].float()
                    pick = drawn.argmax(dim=1)  # (B,)
            frame = filter_output(self, F.gelu(fine), last, pick)
            if frame.dim() == 5:  # every future (B, M, C, H, W): the one closest to the target is the frame
                futures = frame.clamp(0.0, 1.0)
                closest = (futures - target[:, None].float()).pow(2).flatten(2).mean(dim=2).argmin(dim=1)  # (B,)
                out.update(futures=futures, future=closest)
                frame = futures[torch.arange(futures.shape[0], device=futures.device), closest]
        frame = frame.clamp(0.0, 1.0)
        reward, term_logit, log_err = self.heads(pooled).float().unbind(dim=1)  # fp32 under autocast too
        out.update(frame=frame, reward=reward, term_logit=term_logit, log_err=log_err)
        if self.config.reward_classes == 1:  # one value, every step
            out["reward"] = self.reward_values.expand(frame.shape[0])
        elif self.config.reward_classes:
            local = F.adaptive_max_pool2d(fine, 4).flatten(1)  # (B, 16 Wf)
            nxt, last = frame.detach().float(), last.float()  # (B, C, H, W): the reward loss does not move frames
            seen = [
                F.adaptive_max_pool2d(nxt, 8),
                -F.adaptive_max_pool2d(-nxt, 8),
                F.adaptive_max_pool2d((nxt - last).abs(), 8),
            ]
            inputs = torch.cat([pooled, local, *(x.flatten(1) for x in seen)], dim=1)
            logits = self.reward_head(inputs.to(pooled.dtype)).float()  # (B, R)
            out["reward_logits"] = logits
            out["reward"] = self.reward_values[
                (logits - self.reward_logit_offset).argmax(dim=1)
            ]  # the most likely value
        return out

    def encode(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Flat features of a frame history, for agents (the latent observation mode):
        the context grid pooled to 4x4 (where things are; 16 Wc) and its mean and max over
        the whole grid (what the moving things are doing wherever they are; 2 Wc)."""
        _, coarse, _ = self.features(frames, actions)  # (B, Wc, H/2p, W/2p)
        grid = F.adaptive_avg_pool2d(coarse, 4).flatten(1)  # (B, 16 Wc)
        return torch.cat([grid, coarse.mean(dim=(2, 3)), coarse.amax(dim=(2, 3))], dim=1)  # (B, 18 Wc)


def draw_noise(
    model: WorldModel, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    """Gumbel noise x ``temperature`` for what ``forward`` draws, (n, futures + object cells + 1)
    (each part only where the world has it): it then draws each future and object cell from
    softmax(logits / temperature). None where it draws nothing, or at temperature 0 (the most likely)."""
    c = model.config
    size = (c.futures if c.futures > 1 else 0) + (
        (c.height // c.patch) * (c.width // c.patch) + 1 if c.object_cells else 0
    )
    if size == 0 or temperature <= 0:
        return None
    device = next(model.parameters()).device
    u = torch.rand((n, size), generator=generator, device=device).clamp(1e-9, 1.0 - 1e-9)
    return -torch.log(-torch.log(u)) * temperature


def predicted_rmse(log_err: torch.Tensor) -> torch.Tensor:
    """The error head's estimate of a predicted frame's RMS error, in 8-bit grey levels
    (NaN counts as the largest error it can say). The dream's drift score and the drift
    threshold training calibrates are both built from it."""
    return torch.exp(0.5 * torch.nan_to_num(log_err, nan=20.0).clamp(max=20.0)) * 255.0


def quantize(frame: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid; gradients pass straight through (for training on rollouts)."""
    return frame + (torch.round(frame * 255.0) / 255.0 - frame).detach()


def count_flops(model: WorldModel, batch: int = 1) -> int:
    """FLOPs of one forward pass per predicted frame, counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    c = model.config
    device = next(model.parameters()).device  # a model on CUDA needs its inputs there
    frames = torch.zeros(batch, c.context, c.channels, c.height, c.width, device=device)
    actions = torch.zeros(batch, c.context, c.action_dim, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(frames, actions)
    return math.ceil(counter.get_total_flops() / batch)
