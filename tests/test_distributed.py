"""Training under torchrun (DDP; gloo on CPU): two processes train exactly what one
process trains with the same global batch, only rank 0 writes, a killed job resumes
where it stopped, and a rank that dies or hangs ends the whole job with an error.

Every run is a real ``torchrun`` (``python -m torch.distributed.run --standalone``) of
``tests/dist_entry.py``: ``neuralgym``'s own CLI plus a few test-only hooks (see its
docstring): cheap validation, raw (unclipped) gradients, per-rank batch logging, and a
way to make one rank die or hang. Each launch costs seconds of interpreter start-up,
so the runs are shared through module fixtures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from neuralgym.training.distributed import Dist, dist_timeout
from neuralgym.training.windows import EpochSampler

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRY = REPO_ROOT / "tests" / "dist_entry.py"
STEPS, BATCH = 4, 8
# Parameters agree to ~1e-8 in practice (measured); the only differences are float
# summation order (per-rank batches of 4 vs one of 8, gloo's all-reduce).
PARAM_ATOL = 1e-6
LAUNCH_TIMEOUT = 300  # seconds; a busy 2-core CPU needs ~10-40 s per launch


@dataclass
class Run:
    root: Path
    proc: subprocess.CompletedProcess
    pids: dict[int, int] = field(default_factory=dict)  # rank -> pid, where recorded

    @property
    def out(self) -> Path:
        return self.root / "w.safetensors"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def report(self) -> dict:
        assert self.proc.returncode == 0, self.proc.stderr[-4000:]
        lines = self.proc.stdout.strip().splitlines()
        assert len(lines) == 1, self.proc.stdout  # one JSON object, from rank 0 only
        return json.loads(lines[0])

    def ids(self, rank: int) -> list[list[int]]:
        """This rank's window ids of every step, in order."""
        return [json.loads(m) for m in re.findall(rf"dist_entry: rank {rank} ids (\[[^\]]*\])", self.proc.stderr)]

    def computed(self, rank: int) -> int:
        m = re.search(rf"dist_entry: rank {rank} computed (\d+) steps", self.proc.stderr)
        assert m, self.proc.stderr[-4000:]
        return int(m.group(1))


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(
        OMP_NUM_THREADS="1",
        SDL_VIDEODRIVER="dummy",
        NEURALGYM_TEST_VAL_N="8",
        NEURALGYM_TEST_NO_CLIP="1",
        NEURALGYM_TEST_LOG_IDS="1",
        NEURALGYM_DIST_TIMEOUT="60",
    )
    env.update(extra)
    return env


def command(nproc: int, data: Path, root: Path, *extra: str) -> list[str]:
    launcher = [] if nproc == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return [
        sys.executable,
        *launcher,
        str(ENTRY),
        "train",
        "cartpole",
        "--data",
        str(data),
        "--steps",
        str(STEPS),
        "--batch-size",
        str(BATCH),
        "--rollout-max",
        "2",
        "--device",
        "cpu",
        "--checkpoint-every",
        "2",
        "--run-dir",
        str(root / "run"),
        "--out",
        str(root / "w.safetensors"),
        "--no-progress",
        "--json",
        *extra,
    ]


def launch(nproc: int, data: Path, root: Path, *extra: str, timeout: float = LAUNCH_TIMEOUT, **env: str) -> Run:
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        command(nproc, data, root, *extra),
        env=child_env(**env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(root, proc)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Run:
    """One process, global batch 8, STEPS steps."""
    return launch(1, tiny_dataset, tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Run:
    """Two processes under torchrun, the same global batch 8 (4 per rank), STEPS steps."""
    pids = tmp_path_factory.mktemp("ddp_pids")
    run = launch(2, tiny_dataset, tmp_path_factory.mktemp("ddp"), NEURALGYM_TEST_PID_DIR=str(pids))
    run.pids = {r: int((pids / f"rank{r}.pid").read_text()) for r in (0, 1)}
    return run


# ---------------------------------------------------------------------------- in-process, no launch


def test_sampler_ranks_split_the_single_process_batch() -> None:
    """The ranks' parts of every global batch, in rank order, are the single-process batch,
    across epoch boundaries and after a restore from ``state()``."""
    one = EpochSampler(37, seed=3)
    two = [EpochSampler(37, seed=3, rank=r, world_size=2) for r in range(2)]
    for step in range(12):  # 12 * 8 windows: two epoch boundaries
        whole = one.next(8)
        parts = [s.next(8) for s in two]
        assert all(len(p) == 4 for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), whole)
        assert two[0].state() == two[1].state() == one.state()
        if step == 5:  # a resumed job rebuilds its samplers from the checkpoint's state
            two = [EpochSampler(37, 3, r, 2, **one.state()) for r in range(2)]


def test_dist_timeout_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALGYM_DIST_TIMEOUT", raising=False)
    assert dist_timeout().total_seconds() == 300
    monkeypatch.setenv("NEURALGYM_DIST_TIMEOUT", "2.5")
    assert dist_timeout().total_seconds() == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv("NEURALGYM_DIST_TIMEOUT", bad)
        with pytest.raises(ValueError, match="NEURALGYM_DIST_TIMEOUT"):
            dist_timeout()
    assert Dist().main and Dist().world_size == 1


# ---------------------------------------------------------------------------- torchrun


@pytest.mark.timeout(900)
def test_two_processes_train_what_one_does(single: Run, ddp: Run) -> None:
    r1, r2 = single.report(), ddp.report()
    assert (r1["world_size"], r2["world_size"], r1["steps"], r2["steps"]) == (1, 2, STEPS, STEPS)
    # the data: each step, rank 0's and rank 1's windows are the single process's batch
    assert len(single.ids(0)) == STEPS and single.computed(0) == STEPS
    assert [a + b for a, b in zip(ddp.ids(0), ddp.ids(1))] == single.ids(0)
    assert ddp.computed(0) == ddp.computed(1) == STEPS
    # the loss: averaged over the ranks it is the global batch's (it would be half of it
    # if the per-rank losses were divided by the global batch: DDP averages gradients)
    assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-5, abs=1e-6)
    # the gradients (unclipped here, so a scale error would show): Adam's moments
    c1, c2 = checkpoint(single.run_dir), checkpoint(ddp.run_dir)
    assert c1["step"] == c2["step"] == STEPS and c1["sampler"] == c2["sampler"] == {
        "epoch": 0,
        "position": STEPS * BATCH,
    }
    for i, s1 in c1["optimizer"]["state"].items():
        s2 = c2["optimizer"]["state"][i]
        for key in ("exp_avg", "exp_avg_sq"):
            scale = s1[key].abs().max().item()
            torch.testing.assert_close(s2[key], s1[key], rtol=0, atol=1e-4 * scale + 1e-30, msg=f"{key} of {i}")
    # the world: every parameter, and the start and anchor banks, agree
    t1, t2 = tensors(single.out), tensors(ddp.out)
    assert t1.keys() == t2.keys()
    for k in t1:
        if t1[k].is_floating_point():
            torch.testing.assert_close(t2[k], t1[k], rtol=0, atol=PARAM_ATOL, msg=k)
        else:
            assert torch.equal(t1[k], t2[k]), k


def test_only_rank_zero_writes(ddp: Run) -> None:
    ddp.report()  # exit 0, one JSON object on stdout
    # one weights file, one checkpoint, one TensorBoard log, no temporary files
    files = files_under(ddp.root)
    events = [f for f in files if f.startswith("run/tb/events.out.tfevents.")]
    assert len(events) == 1 and set(files) == {"w.safetensors", "run/checkpoint.pt", events[0]}, files
    # the log's name ends in its writer's pid: rank 0's
    assert int(events[0].split(".")[-2]) == ddp.pids[0] != ddp.pids[1]


@pytest.mark.timeout(600)
def test_a_dead_rank_ends_the_job(tiny_dataset: Path, tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed at step 2: torchrun stops rank 0 (blocked in an all-reduce) and
    fails, naming the rank, instead of waiting; rank 0 writes no world."""
    t0 = time.monotonic()
    run = launch(2, tiny_dataset, tmp_path, NEURALGYM_TEST_FAIL_RANK="1", NEURALGYM_TEST_FAIL_STEP="2")
    took = time.monotonic() - t0
    err = run.proc.stderr
    assert run.proc.returncode != 0, err[-4000:]
    assert "dist_entry: rank 1 failing (kill) at step 2" in err
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*\n\s*exitcode\s*:\s*-9", err), err[-4000:]
    assert run.proc.stdout == ""
    assert not run.out.exists()
    assert took < LAUNCH_TIMEOUT


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_stuck_rank_times_out(tiny_dataset: Path, tmp_path: Path) -> None:
    """Rank 1 hangs (alive, silent) at step 2: after NEURALGYM_DIST_TIMEOUT seconds rank 0's
    all-reduce fails, and the job ends with an error instead of hanging forever."""
    run = launch(
        2,
        tiny_dataset,
        tmp_path,
        NEURALGYM_TEST_FAIL_RANK="1",
        NEURALGYM_TEST_FAIL_STEP="2",
        NEURALGYM_TEST_FAIL_MODE="hang",
        NEURALGYM_DIST_TIMEOUT="5",
    )
    err = run.proc.stderr
    assert run.proc.returncode != 0, err[-4000:]
    assert "dist_entry: rank 1 failing (hang) at step 2" in err
    assert re.search(r"Timed out waiting 5000ms", err), err[-4000:]
    assert not run.out.exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_job_resumes_where_it_stopped(ddp: Run, tiny_dataset: Path, tmp_path: Path) -> None:
    """SIGKILL rank 0 (the writer) mid-run; torchrun ends the job. ``--resume`` under
    torchrun continues from the last checkpoint: the step count, the data order (the
    sampler state in the checkpoint) and the final world are the uninterrupted run's."""
    ddp.report()
    pids = tmp_path / "pids"
    root = tmp_path / "killed"
    root.mkdir()
    cmd = command(2, tiny_dataset, root, "--checkpoint-every", "1")  # the later flag wins
    proc = subprocess.Popen(
        cmd,
        env=child_env(NEURALGYM_TEST_PID_DIR=str(pids), NEURALGYM_TEST_STEP_SLEEP="1"),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        ckpt = root / "run" / "checkpoint.pt"
        while not (ckpt.is_file() and checkpoint(ckpt.parent)["step"] >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its step-2 checkpoint"
            time.sleep(0.05)
        os.kill(int((pids / "rank0.pid").read_text()), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, err[-4000:]
    assert re.search(r"rank\s*:\s*0 \(local_rank: 0\)\s*\n\s*exitcode\s*:\s*-9", err), err[-4000:]
    assert not (root / "w.safetensors").exists()
    state = checkpoint(root / "run")
    stopped = state["step"]
    assert 2 <= stopped < STEPS
    assert state["sampler"] == {"epoch": 0, "position": stopped * BATCH}

    resumed = launch(2, tiny_dataset, root, "--resume")
    report = resumed.report()
    assert report["steps"] == STEPS and report["world_size"] == 2
    for rank in (0, 1):  # it ran only the missing steps, on the windows the uninterrupted run used there
        assert resumed.computed(rank) == STEPS - stopped
        assert resumed.ids(rank) == ddp.ids(rank)[stopped:]
    state = checkpoint(root / "run")
    assert state["step"] == STEPS and state["sampler"] == {"epoch": 0, "position": STEPS * BATCH}
    a, b = tensors(ddp.out), tensors(resumed.out)
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=PARAM_ATOL, msg=k)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ranks_that_disagree_fail_together(tiny_dataset: Path, tmp_path: Path) -> None:
    """Two hand-started ranks (as on two nodes) with different --steps: both stop at once
    with the same one-line error naming the difference, instead of desynchronising."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        cmd = command(1, tiny_dataset, tmp_path, "--steps", str(STEPS + rank))
        env = child_env(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
        )
        procs.append(
            subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        outs = [p.communicate(timeout=LAUNCH_TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 2, err[-4000:]
        assert (
            f"error: ranks disagree on the training setup: rank 0 vs rank 1: config.steps: {STEPS} vs "
            f"{STEPS + 1}; every node needs the same command line and the same data"
        ) in err.splitlines(), err
        assert "Traceback" not in err and "terminate called" not in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "w.safetensors").exists()
