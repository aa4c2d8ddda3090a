"""Test-only entry point for tests/test_distributed.py: ``neuralgym`` (``cli.main``) with
a few hooks, launched as a plain process or under ``torchrun`` exactly like
``-m neuralgym``. Nothing in the product reads these variables; they exist only here.

    NEURALGYM_TEST_VAL_N=8          validate on 8 held-out windows, not 128 (rank 0's
                                    end-of-run validation dominates a tiny run)
    NEURALGYM_TEST_NO_CLIP=1        no gradient clipping, so optimizer state compares raw
                                    gradients (clipping would hide a gradient scale error)
    NEURALGYM_TEST_PID_DIR=DIR      each rank writes DIR/rank<R>.pid at start
    NEURALGYM_TEST_LOG_IDS=1        each rank prints ``dist_entry: rank R ids [...]`` (its
                                    part of every global batch, in order) to stderr, and
                                    ``dist_entry: rank R computed N steps`` at exit
    NEURALGYM_TEST_STEP_SLEEP=S     sleep S seconds before every step (time to kill a run)
    NEURALGYM_TEST_FAIL_RANK=R      on rank R, at step NEURALGYM_TEST_FAIL_STEP (default 1):
    NEURALGYM_TEST_FAIL_MODE=kill   ... SIGKILL itself (default), or
                         hang       ... sleep forever (only the process group timeout ends it)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _install_hooks() -> None:
    import torch

    import neuralgym.training.loop as train_mod

    rank = int(os.environ.get("RANK", "0"))
    env = os.environ.get
    if env("NEURALGYM_TEST_PID_DIR"):
        pid_dir = Path(env("NEURALGYM_TEST_PID_DIR"))
        pid_dir.mkdir(parents=True, exist_ok=True)
        (pid_dir / f"rank{rank}.pid").write_text(str(os.getpid()))
    if env("NEURALGYM_TEST_VAL_N"):
        n, validate = int(env("NEURALGYM_TEST_VAL_N")), train_mod.validate
        train_mod.validate = lambda *a, **k: validate(*a, **{**k, "n": n})
    if env("NEURALGYM_TEST_NO_CLIP"):
        clip = torch.nn.utils.clip_grad_norm_
        torch.nn.utils.clip_grad_norm_ = lambda params, max_norm, *a, **k: clip(params, float("inf"), *a, **k)

    if env("NEURALGYM_TEST_LOG_IDS"):
        import atexit

        sampler_cls = train_mod.EpochSampler

        class LoggingSampler(sampler_cls):  # type: ignore[misc, valid-type]
            def next(self, global_batch: int):
                ids = super().next(global_batch)
                print(f"dist_entry: rank {rank} ids {ids.tolist()}", file=sys.stderr, flush=True)
                return ids

        train_mod.EpochSampler = LoggingSampler
        counted, count_fn = [0], train_mod.rollout_loss

        def counting(*args, **kwargs):
            counted[0] += 1
            return count_fn(*args, **kwargs)

        train_mod.rollout_loss = counting
        atexit.register(
            lambda: print(f"dist_entry: rank {rank} computed {counted[0]} steps", file=sys.stderr, flush=True)
        )

    sleep = float(env("NEURALGYM_TEST_STEP_SLEEP", "0"))
    fail = env("NEURALGYM_TEST_FAIL_RANK") is not None and int(env("NEURALGYM_TEST_FAIL_RANK")) == rank
    fail_step, mode = int(env("NEURALGYM_TEST_FAIL_STEP", "1")), env("NEURALGYM_TEST_FAIL_MODE", "kill")
    if not (sleep or fail):
        return
    loss_fn, calls = train_mod.rollout_loss, [0]

    def hooked(*args, **kwargs):
        calls[0] += 1  # one call per optimizer step: this is step calls[0] (1-based)
        if sleep:
            time.sleep(sleep)
        if fail and calls[0] == fail_step:
            print(f"dist_entry: rank {rank} failing ({mode}) at step {fail_step}", file=sys.stderr, flush=True)
            if mode == "hang":
                while True:
                    time.sleep(3600)
            os.kill(os.getpid(), signal.SIGKILL)
        return loss_fn(*args, **kwargs)

    train_mod.rollout_loss = hooked


if __name__ == "__main__":
    _install_hooks()
    from neuralgym.tools.cli import main

    sys.exit(main(sys.argv[1:]))
