"""Speed paths: inference precision, torch.compile, the bench, and memory that stays flat."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import neuralgym  # noqa: F401
from neuralgym.common import precision as prec
from neuralgym.tools.bench import format_table, run_bench
from neuralgym.world.catalog import get_spec
from neuralgym.world.spec import WorldSpec

from worlds import WORLDS


def test_resolve_precision_auto_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)
    assert prec.resolve_precision("auto", cuda, prec.AUTO_BF16_MIN_BATCH) == "bf16"
    assert prec.resolve_precision("auto", cuda, prec.AUTO_BF16_MIN_BATCH - 1) == "fp32"
    assert prec.resolve_precision("auto", cpu, 4096) == "fp32"  # a filter world: measured slower on a CPU
    assert prec.resolve_precision("auto", cpu, 4096, dense_decoder=True) == "bf16"  # a bottleneck world: faster
    assert prec.resolve_precision("auto", cpu, prec.AUTO_BF16_MIN_BATCH - 1, dense_decoder=True) == "fp32"
    assert prec.resolve_precision("bf16", cpu, 1) == "bf16"  # asked for, it is used
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    assert prec.resolve_precision("auto", cuda, 4096) == "fp32"
    assert prec.resolve_precision("auto", cpu, 4096, dense_decoder=True) == "fp32"  # no native bf16: emulated, slow
    assert prec.resolve_precision("fp16", cpu, 1) == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        prec.resolve_precision("float64", cpu, 1)


def test_dream_rejects_unknown_precision_and_compile_flag() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        gym.make("neuralgym/CartPole-v0", precision="half")
    with pytest.raises(TypeError, match="compile must be True or False"):
        gym.make_vec("neuralgym/CartPole-v0", num_envs=2, compile="yes")


def _first_steps(spec: WorldSpec, precision: str, n: int = 64, steps: int = 3, **kw) -> tuple[list[np.ndarray], str]:
    """Observations of ``steps`` seeded random steps of ``n`` lanes, and the resolved precision."""
    env = gym.make_vec(spec.dream_id, num_envs=n, precision=precision, drift_policy="none", **kw)
    obs, _ = env.reset(seed=5)
    env.action_space.seed(0)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        out.append(obs)
    resolved = env.unwrapped.core.precision
    env.close()
    return out, resolved


@pytest.mark.parametrize("spec", WORLDS)
def test_bf16_dream_predicts_the_fp32_frames(spec: WorldSpec) -> None:
    """bf16 autocast runs the trunk in 16 bits but the filter blend (or the bottleneck decoder) in fp32: one step from
    the same context moves under 1% of pixels by one grey level, none by more than 2."""
    fp32, r32 = _first_steps(spec, "fp32")
    bf16, r16 = _first_steps(spec, "bf16")
    assert (r32, r16) == ("fp32", "bf16")
    assert np.array_equal(fp32[0], bf16[0])  # the same start frames
    diff = np.abs(fp32[1].astype(int) - bf16[1].astype(int))
    assert diff.max() <= 2, diff.max()
    assert (diff > 0).mean() < 0.01, (diff > 0).mean()


@pytest.mark.slow
@pytest.mark.parametrize("spec", WORLDS)
def test_compiled_dream_matches_eager(spec: WorldSpec) -> None:
    """torch.compile (tens of seconds on a CPU) predicts what eager mode predicts."""
    eager, _ = _first_steps(spec, "fp32", n=8, steps=2)
    compiled, _ = _first_steps(spec, "fp32", n=8, steps=2, compile=True)
    for a, b in zip(eager, compiled):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_compile_failure_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where torch.compile cannot build the model (no C++ compiler, say) still
    dreams, in eager mode (the same frames), with a warning that says so."""
    spec = get_spec("cartpole")

    def broken_compile(model, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager, _ = _first_steps(spec, "fp32", n=4, steps=2)
    with pytest.warns(
        RuntimeWarning,
        match="torch.compile failed .RuntimeError: no C.. compiler found.; the dream runs the model in eager mode",
    ):
        fallback, _ = _first_steps(spec, "fp32", n=4, steps=2, compile=True)
    for a, b in zip(eager, fallback):
        assert np.array_equal(a, b)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _rss_growth(world: str, num_envs: int, warmup: int, steps: int) -> tuple[int, int]:
    env = gym.make_vec(world, num_envs=num_envs)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(16)]
    for i in range(warmup):
        env.step(actions[i % 16])
    before = _rss_bytes()
    for i in range(steps):
        env.step(actions[i % 16])
    after = _rss_bytes()
    env.close()
    return before, after


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_memory_stays_flat_over_a_run() -> None:
    """No per-step growth: buffers are reused or freed (episodes end and restart throughout)."""
    before, after = _rss_growth("neuralgym/CartPole-v0", 64, warmup=100, steps=600)
    assert after <= before * 1.05, (before, after)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_memory_flat_over_a_million_dream_steps() -> None:
    """1M dream steps (frames) at batch 256: RSS within 5% after warm-up."""
    before, after = _rss_growth("neuralgym/CartPole-v0", 256, warmup=100, steps=1_000_000 // 256)
    assert after <= before * 1.05, (before, after)


def test_bench_reports_every_number_the_issue_asks_for() -> None:
    r = run_bench("cartpole", device="cpu", batches=(1, 32), seconds=0.2)
    for key in (
        "world",
        "device",
        "precision",
        "flops_per_frame",
        "matmul_peak_flops",
        "real_fps",
        "latency",
        "throughput",
    ):
        assert key in r
    assert r["flops_per_frame"] > 1e6 and r["real_fps"] > 0 and r["matmul_peak_flops"] > 0
    assert 0 < r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
    assert [t["batch"] for t in r["throughput"]] == [1, 32]
    assert r["throughput"][0]["precision"] == "fp32"
    for t in r["throughput"]:
        assert t["fps"] > 0 and t["x_real"] == pytest.approx(t["fps"] / r["real_fps"])
        assert 0 < t["roofline_fraction"] < 1
        if t["precision"] != "fp32":  # held to the peak of its own precision
            assert r[f"matmul_peak_flops_{t['precision']}"] > 0
        assert t["fp32_roofline_fraction"] == pytest.approx(t["fps"] * r["flops_per_frame"] / r["matmul_peak_flops"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert r["torch_threads"] == sorted({1, cores})  # measured, not assumed
    assert all(t["threads"] in r["torch_threads"] for t in r["throughput"])
    table = format_table(r)
    assert "| 32 |" in table and "real env" in table
    one = run_bench("cartpole", device="cpu", batches=(4,), seconds=0.1, threads=1)
    assert one["torch_threads"] == [1] and one["throughput"][0]["threads"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", WORLDS)
def test_cuda_dream_matches_cpu_and_keeps_obs_on_device(spec: WorldSpec) -> None:
    cpu, _ = _first_steps(spec, "fp32", n=8, steps=2, device="cpu")
    gpu, _ = _first_steps(spec, "fp32", n=8, steps=2, device="cuda")
    for a, b in zip(cpu, gpu):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    env = gym.make_vec(spec.dream_id, num_envs=4, device="cuda", obs_backend="torch")
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.device.type == "cuda" and obs.dtype == torch.uint8
    env.close()


def test_flop_count_runs_where_the_model_is() -> None:
    """count_flops builds its probe inputs on the model's device (bench --device cuda used to crash)."""
    from neuralgym.world.model import WorldModel, WorldModelConfig, count_flops

    model = WorldModel(WorldModelConfig())
    assert count_flops(model) > 1_000_000
    if torch.cuda.is_available():
        assert count_flops(model.cuda()) == count_flops(WorldModel(WorldModelConfig()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_on_cuda() -> None:
    r = run_bench("cartpole", device="cuda", batches=(1, 64), seconds=0.3)
    assert r["device"].startswith("cuda") and all(t["fps"] > 0 for t in r["throughput"])
