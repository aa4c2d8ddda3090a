"""Inference precision of a dream: fp32, or bf16/fp16 autocast where the device runs it natively.

Under autocast the convolutions and matmuls run in 16 bits while the input convolution and
every stage that writes pixels (the dynamic filter's blend of the newest frame, the
bottleneck decoder's output convolution) stay fp32, so a static pixel is still copied
exactly and a decoded frame moves by a grey level on ~1.5% of its pixels. ``"auto"`` picks
bf16 only where it is measured faster, for batches of ``AUTO_BF16_MIN_BATCH`` lanes and more:
on CUDA; and on a CPU with native bf16 (AVX512-BF16, AMX) for a world whose frames are
decoded by dense convolutions (a bottleneck world). On a 2-core AVX512-BF16 CPU a batch-256
CartPole bottleneck dream ran 3,187 frames/s in bf16 and 2,254 in fp32, while the filter
world it replaced, bound by its fp32 per-pixel blend, ran 2,391 in bf16 and 2,887 in fp32
(``neuralgym bench cartpole --precision bf16`` / ``fp32``; docs/speed.md).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: on CUDA, "auto" uses bf16 only for dreams of at least this many lanes
AUTO_BF16_MIN_BATCH = 32
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (not by emulation, which is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device, batch: int, dense_decoder: bool = False) -> str:
    """``"auto"`` is bf16 for a batch of >= ``AUTO_BF16_MIN_BATCH`` lanes on a device that runs
    it natively: a CUDA device, or a CPU when the model decodes its frames with dense
    convolutions (``dense_decoder``: a bottleneck world); else fp32. An unknown name is a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        fast = (device.type == "cuda" or (device.type == "cpu" and dense_decoder)) and native_bf16(device)
        return "bf16" if batch >= AUTO_BF16_MIN_BATCH and fast else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])
