"""``neuralgym bench``: latency and throughput of a dream, beside its real env, in one run.

* latency: one env, ``step`` + ``render("rgb_array")`` per frame, p50 and p99 (ms);
* throughput: ``gym.make_vec`` dreams at each batch size, frames/s;
* the ``-real-v0`` env's frames/s (same preprocessing), measured in the same run, and
  the ratio of each batch size's throughput to it;
* the model's FLOPs per frame (counted by ``torch.utils.flop_counter``) and the
  achieved fraction of this device's matmul peak in the dream's precision (fp32, or
  bf16 where ``precision="auto"`` picked it) and of its fp32 peak, measured here, now,
  with every core;
* on a CPU, the torch thread count of each batch size chosen by measurement: the faster of
  one thread and one per core (two threads sharing a core with another busy process stall
  in their barriers; one thread then wins), unless ``--threads`` fixes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuralgym.common.precision import PRECISIONS

DEFAULT_BATCHES = (1, 4, 16, 64, 256, 1024)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int = 2048, seconds: float = 1.0, dtype: torch.dtype = torch.float32) -> float:
    """Achieved FLOP/s of an n x n matmul in ``dtype`` on ``device``: the roofline we compare to."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2.0 * n**3 * reps / (time.perf_counter() - t0)


def real_fps(real_id: str, seconds: float = 2.0, seed: int = 0) -> float:
    """Frames/s of the real env (random actions, resets included), one process."""
    env = gym.make(real_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    frames, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        frames += 1
        if term or trunc:
            env.reset()
    fps = frames / (time.perf_counter() - t0)
    env.close()
    return fps


def latency(dream_id: str, device: str, steps: int = 300, **kw: Any) -> dict[str, float]:
    """Per-frame step + render time of one env, in ms."""
    env = gym.make(dream_id, render_mode="rgb_array", device=device, **kw)
    env.reset(seed=0)
    env.action_space.seed(0)
    times = []
    for i in range(steps + 20):
        t0 = time.perf_counter()
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        env.render()
        dt = time.perf_counter() - t0
        if i >= 20:  # warm-up
            times.append(dt)
        if term or trunc:
            env.reset()
    env.close()
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def throughput(dream_id: str, num_envs: int, device: str, seconds: float = 1.5, **kw: Any) -> tuple[float, str]:
    """Frames/s of ``gym.make_vec(dream_id, num_envs)`` with random actions (autoreset included),
    and the precision the dream resolved to."""
    env = gym.make_vec(dream_id, num_envs=num_envs, device=device, **kw)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(8)]
    for i in range(3):
        env.step(actions[i % 8])
    dev = env.unwrapped.device if hasattr(env, "unwrapped") else torch.device(device)
    _sync(dev)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        env.step(actions[steps % 8])
        steps += 1
    _sync(dev)
    fps = steps * num_envs / (time.perf_counter() - t0)
    precision = env.unwrapped.core.precision
    env.close()
    return fps, precision


def thread_candidates(device: torch.device, threads: int | None) -> list[int]:
    """The torch thread counts to measure: ``threads`` if given; on a CPU one and one per core."""
    if threads is not None:
        return [threads]
    if device.type != "cpu":
        return [torch.get_num_threads()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return sorted({1, cores})


def run_bench(
    world: str,
    device: str = "auto",
    batches: tuple[int, ...] = DEFAULT_BATCHES,
    seconds: float = 1.5,
    obs_backend: str = "numpy",
    precision: str = "auto",
    compile: bool = False,
    weights: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Measure ``world`` in one run: one env's latency, dream frames/s at each batch size in
    ``batches``, the real env's frames/s, FLOPs per frame and the share of this device's
    matmul peak (see the module docstring); returns the numbers as a dict."""
    from neuralgym.common.device import resolve_device
    from neuralgym.world.catalog import get_spec
    from neuralgym.world.model import count_flops

    spec = get_spec(world)
    dev = resolve_device(device)
    extra: dict[str, Any] = {"weights": weights} if weights else {}
    probe = gym.make(spec.dream_id, device=device, precision=precision, **extra)
    flops = count_flops(probe.unwrapped.core.model)
    probe.close()
    candidates = thread_candidates(dev, threads)
    before = torch.get_num_threads()
    torch.set_num_threads(max(candidates))  # the machine's peak: every core
    peak = matmul_peak(dev)
    torch.set_num_threads(min(candidates))  # one env: a batch of one gains nothing from more threads
    result: dict[str, Any] = {
        "world": spec.key,
        "device": str(dev),
        "precision": precision,
        "compile": compile,
        "torch_threads": candidates,
        "flops_per_frame": flops,
        "matmul_peak_flops": peak,
        "real_fps": real_fps(spec.real_id, seconds=max(1.0, seconds)),
        "latency": latency(spec.dream_id, device, precision=precision, compile=compile, **extra),
        "throughput": [],
    }
    peaks = {"fp32": result["matmul_peak_flops"]}
    try:
        for b in batches:
            best: tuple[float, str, int] | None = None
            for n in candidates:
                torch.set_num_threads(n)
                fps, resolved = throughput(
                    spec.dream_id,
                    b,
                    device,
                    seconds,
                    obs_backend=obs_backend,
                    precision=precision,
                    compile=compile,
                    **extra,
                )
                if best is None or fps > best[0]:
                    best = (fps, resolved, n)
            fps, resolved, n = best
            if resolved not in peaks:  # a bf16/fp16 dream is held to the matmul peak of its own precision
                torch.set_num_threads(max(candidates))
                peaks[resolved] = matmul_peak(dev, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[resolved])
                result[f"matmul_peak_flops_{resolved}"] = peaks[resolved]
            result["throughput"].append(
                {
                    "batch": b,
                    "precision": resolved,
                    "threads": n,
                    "fps": fps,
                    "x_real": fps / result["real_fps"],
                    "roofline_fraction": fps * flops / peaks[resolved],
                    "fp32_roofline_fraction": fps * flops / peaks["fp32"],  # the same work against the fp32 peak
                }
            )
    finally:
        torch.set_num_threads(before)
    return result


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"world {r['world']} on {r['device']} (threads tried {r['torch_threads']}, precision {r['precision']}): "
        f"{r['flops_per_frame'] / 1e6:.1f} MFLOP/frame, "
        f"matmul peak {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s fp32"
        + "".join(f", {r[k] / 1e9:.0f} {k.rsplit('_', 1)[1]}" for k in r if k.startswith("matmul_peak_flops_"))
        + (", torch.compile" if r.get("compile") else ""),
        f"real env: {r['real_fps']:.0f} frames/s",
        f"one env step+render: p50 {r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms",
        "| batch | precision | threads | dream frames/s | x real | % of matmul peak | % of fp32 peak |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for t in r["throughput"]:
        fp32_share = t.get("fp32_roofline_fraction", t["roofline_fraction"])
        lines.append(
            f"| {t['batch']} | {t['precision']} | {t['threads']} | {t['fps']:.0f} | {t['x_real']:.2f} "
            f"| {100 * t['roofline_fraction']:.0f}% | {100 * fp32_share:.0f}% |"
        )
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("world", help="world key, e.g. cartpole")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)), help="comma-separated batch sizes")
    p.add_argument(
        "--seconds", type=float, default=3.0, help="seconds per measurement (this VM varies: longer is steadier)"
    )
    p.add_argument(
        "--obs-backend",
        default="numpy",
        choices=["numpy", "torch"],
        help="observations as numpy arrays or device tensors",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="the dream's inference precision (auto: bf16 where native)",
    )
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the model (tens of seconds per batch size first)"
    )
    p.add_argument("--weights", default=None, help="another weights file for the same world")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: per batch size the faster of 1 and one per core, measured)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError as e:
        raise ValueError(f"--batches must be comma-separated integers, got {args.batches!r}") from e
    if any(b < 1 for b in batches):
        raise ValueError("--batches must all be >= 1")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    r = run_bench(
        args.world,
        args.device,
        batches,
        args.seconds,
        args.obs_backend,
        args.precision,
        args.compile,
        weights=args.weights,
        threads=args.threads,
    )
    print(json.dumps(r) if args.json else format_table(r), file=sys.stdout)
    return 0
