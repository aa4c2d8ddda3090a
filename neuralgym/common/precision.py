"""Inference precision of a dream: fp32, or bf16/fp16 autocast where the device runs it natively.

Under autocast the convolutions and matmuls run in 16 bits while the input convolution
and the dynamic filter's blend of the newest frame (and everything after it) stay fp32, so
a static pixel is still copied exactly: bf16 predicts frames within 0.25 grey levels of fp32
before 8-bit rounding. ``"auto"`` picks bf16 only where it is measured faster: on CUDA, for
batches of ``AUTO_BF16_MIN_BATCH`` lanes and more. On a CPU it stays fp32: on a 2-core
AVX512-BF16 CPU, once the history became a ring buffer read in place, a batch-256 CartPole
dream ran 2,887 frames/s in fp32 and 2,391 in bf16 (``neuralgym bench cartpole --precision
fp32`` / ``bf16``; docs/speed.md).
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


def resolve_precision(precision: str, device: torch.device, batch: int) -> str:
    """``"auto"`` is bf16 for a batch of >= ``AUTO_BF16_MIN_BATCH`` lanes on a CUDA device that
    runs it natively, else fp32; an unknown name is a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        fast = device.type == "cuda" and native_bf16(device)
        return "bf16" if batch >= AUTO_BF16_MIN_BATCH and fast else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])
