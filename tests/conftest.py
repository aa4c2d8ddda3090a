"""Shared fixtures. Everything here is small and seeded: the default suite must run in
a few minutes on a 2-core CPU with no display and no GPU."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame never opens a window in tests
os.environ.setdefault("MPLBACKEND", "Agg")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from neuralgym.world.catalog import get_spec  # noqa: E402
from neuralgym.world.spec import WorldSpec

REPO_ROOT = Path(__file__).resolve().parent.parent

TINY_STEPS = 400  # ~20 random-policy CartPole episodes: enough windows for a few batches


@pytest.fixture(scope="session")
def cartpole_spec() -> WorldSpec:
    return get_spec("cartpole")


def collect_into(
    spec: WorldSpec, out: Path, steps: int, seed: int = 0, policy: str = "random"
) -> list[tuple[int, int]]:
    """Run :func:`neuralgym.training.collect.collect` to completion; return what it yielded."""
    from neuralgym.training.collect import collect

    return list(collect(spec, out, steps, policy=policy, seed=seed, progress=False))


@pytest.fixture(scope="session")
def run_collect() -> Callable[..., list[tuple[int, int]]]:
    """:func:`collect_into`, for tests: ``run_collect(spec, out, steps, seed=0, policy="random")``."""
    return collect_into


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, cartpole_spec: WorldSpec) -> Path:
    """A read-only CartPole dataset of ~400 random-policy steps, shared by the session.
    Tests must not write into it (train writes to its own run dir and weights path)."""
    out = tmp_path_factory.mktemp("tiny_cartpole")
    collect_into(cartpole_spec, out, TINY_STEPS, seed=0)
    return out


@pytest.fixture()
def subprocess_env() -> dict[str, str]:
    """Environment for a child ``python -m neuralgym``: the checkout importable, no display."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["SDL_VIDEODRIVER"] = "dummy"
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tests run on 2 shared cores: one torch thread per test process is several times
    faster than two fighting over a busy core."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
