"""Episode files: collection, checksums, corruption, resume, and surviving a kill -9."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from neuralgym.tools.cli import main as cli_main
from neuralgym.training.data import (
    ARRAY_KEYS,
    DatasetError,
    Episode,
    episode_paths,
    load_dataset,
    load_episode,
    save_episode,
)
from neuralgym.world.spec import WorldSpec

RunCollect = Callable[..., list]


def digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def total_steps(data_dir: Path) -> int:
    return sum(len(load_episode(p)) for p in episode_paths(data_dir))


@pytest.fixture(scope="module")
def dataset_300(tmp_path_factory: pytest.TempPathFactory, cartpole_spec: WorldSpec, run_collect: RunCollect) -> Path:
    out = tmp_path_factory.mktemp("collect300")
    yielded = run_collect(cartpole_spec, out, 300, seed=7)
    assert yielded, "collect yielded nothing"
    steps = [s for _, s in yielded]
    assert steps == sorted(steps) and steps[-1] >= 300
    return out


def copy_dataset(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in episode_paths(src):
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_collect_writes_verified_episodes(dataset_300: Path, cartpole_spec: WorldSpec) -> None:
    paths = episode_paths(dataset_300)
    assert [p.name for p in paths] == [f"episode_{i:06d}.npz" for i in range(len(paths))]
    assert len(paths) >= 2  # random play ends CartPole episodes in a few dozen steps
    episodes = load_dataset(dataset_300, cartpole_spec)
    n = sum(len(e) for e in episodes)
    assert 300 <= n < 300 + cartpole_spec.max_episode_steps
    for ep in episodes:
        t = len(ep)
        assert ep.frames.shape == (t + 1, 64, 64, 1) and ep.frames.dtype == np.uint8
        assert ep.actions.shape == (t,) and ep.actions.dtype == np.int64 and set(np.unique(ep.actions)) <= {0, 1}
        assert ep.rewards.dtype == np.float32 and ep.terminated.dtype == bool and ep.truncated.dtype == bool
        done = ep.terminated | ep.truncated
        assert done[-1] and not done[:-1].any()  # an episode ends exactly once, at its last step
        assert not np.array_equal(ep.frames[0], ep.frames[-1])  # the frames show motion


def test_episode_file_holds_world_and_checksum(dataset_300: Path) -> None:
    with np.load(episode_paths(dataset_300)[0], allow_pickle=False) as z:
        assert set(z.files) == {*ARRAY_KEYS, "world", "sha256"}
        assert str(z["world"]) == "cartpole" and len(str(z["sha256"])) == 64


def test_flipped_bytes_raise_dataset_error_naming_the_file(
    dataset_300: Path, tmp_path: Path, cartpole_spec: WorldSpec
) -> None:
    data = copy_dataset(dataset_300, tmp_path / "data")
    victim = episode_paths(data)[1]
    raw = bytearray(victim.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 16):
        raw[i] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=victim.name):
        load_episode(victim)
    with pytest.raises(DatasetError, match=victim.name):
        load_dataset(data, cartpole_spec)


def test_truncated_file_raises_dataset_error(dataset_300: Path, tmp_path: Path) -> None:
    data = copy_dataset(dataset_300, tmp_path / "data")
    victim = episode_paths(data)[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DatasetError, match=victim.name):
        load_episode(victim)


def test_tampered_arrays_fail_the_checksum(dataset_300: Path, tmp_path: Path) -> None:
    """A well-formed file whose arrays no longer match their stored SHA-256."""
    src = episode_paths(dataset_300)[0]
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["frames"] = arrays["frames"].copy()
    arrays["frames"][0, 0, 0, 0] ^= 1
    victim = tmp_path / src.name
    np.savez_compressed(victim, **arrays)
    with pytest.raises(DatasetError, match=f"{victim.name}.*checksum"):
        load_episode(victim)


def test_wrong_world_and_wrong_shape_are_rejected(dataset_300: Path, tmp_path: Path, cartpole_spec: WorldSpec) -> None:
    with pytest.raises(DatasetError, match="expected 'pong'"):
        load_episode(episode_paths(dataset_300)[0], world="pong")
    odd = Episode(
        np.zeros((3, 48, 48, 1), np.uint8),
        np.zeros(2, np.int64),
        np.zeros(2, np.float32),
        np.zeros(2, bool),
        np.array([False, True]),
    )
    save_episode(tmp_path / "episode_000000.npz", odd, "cartpole")
    with pytest.raises(DatasetError, match="shape"):
        load_dataset(tmp_path, cartpole_spec)


def test_empty_or_missing_folder_is_a_dataset_error(tmp_path: Path, cartpole_spec: WorldSpec) -> None:
    with pytest.raises(DatasetError, match="no episode files"):
        load_dataset(tmp_path, cartpole_spec)
    with pytest.raises(DatasetError, match="no episode files"):
        load_dataset(tmp_path / "missing", cartpole_spec)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ep = Episode(
        rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8),
        rng.uniform(-1, 1, (3, 2)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
        np.array([False, False, True]),
        np.zeros(3, bool),
    )
    path = tmp_path / "episode_000000.npz"
    save_episode(path, ep, "toy")
    back = load_episode(path, world="toy")
    for key in ARRAY_KEYS:
        np.testing.assert_array_equal(getattr(back, key), getattr(ep, key))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_resume_continues_without_rewriting(
    dataset_300: Path, tmp_path: Path, cartpole_spec: WorldSpec, run_collect: RunCollect
) -> None:
    data = copy_dataset(dataset_300, tmp_path / "data")
    before = digests(episode_paths(data))
    before_mtimes = {p.name: p.stat().st_mtime_ns for p in episode_paths(data)}
    run_collect(cartpole_spec, data, 600, seed=7)
    after = digests(episode_paths(data))
    assert {k: after[k] for k in before} == before  # old episodes untouched ...
    assert all(p.stat().st_mtime_ns == before_mtimes[p.name] for p in episode_paths(data) if p.name in before)
    assert len(after) > len(before)  # ... new ones appended
    assert 600 <= total_steps(data) < 600 + cartpole_spec.max_episode_steps
    # a rerun with the target already reached writes nothing
    assert run_collect(cartpole_spec, data, 600, seed=7) == []
    assert digests(episode_paths(data)) == after
    # and resuming gives exactly what one uninterrupted run gives (episode i uses seed + i)
    fresh = tmp_path / "fresh"
    run_collect(cartpole_spec, fresh, 600, seed=7)
    assert digests(episode_paths(fresh)) == after


def test_leftover_temporary_files_are_ignored_and_cleaned(
    dataset_300: Path, tmp_path: Path, cartpole_spec: WorldSpec, run_collect: RunCollect
) -> None:
    data = copy_dataset(dataset_300, tmp_path / "data")
    n = len(episode_paths(data))
    stale = data / f".episode_{n:06d}.npz.tmp12345"
    stale.write_bytes(b"PK\x03\x04 half an episode")
    assert len(episode_paths(data)) == n
    load_dataset(data, cartpole_spec)
    run_collect(cartpole_spec, data, total_steps(data) + 1, seed=7)
    assert not stale.exists() and len(episode_paths(data)) == n + 1


def wait_for(predicate: Callable[[], bool], timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"collector exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("collector wrote no episodes in time")
        time.sleep(0.002)


def start_collector_and_kill(data: Path, env: dict[str, str], cwd: Path) -> None:
    """Run ``neuralgym collect`` in a child process and SIGKILL it just as a new episode
    name appears. A writer that wrote straight to the final name would usually be caught
    mid-write here (compressing and fsyncing an episode takes milliseconds)."""
    cmd = [
        sys.executable,
        "-m",
        "neuralgym",
        "collect",
        "cartpole",
        "--steps",
        "1000000",
        "--policy",
        "random",
        "--seed",
        "3",
        "--out",
        str(data),
        "--no-progress",
    ]
    have = len(episode_paths(data))
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(episode_paths(data)) >= have + 3, timeout=120, proc=proc)
        seen = len(episode_paths(data))
        wait_for(lambda: len(episode_paths(data)) > seen, timeout=60, proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_mid_collection_leaves_only_whole_episodes(
    tmp_path: Path, cartpole_spec: WorldSpec, subprocess_env: dict[str, str], run_collect: RunCollect
) -> None:
    data = tmp_path / "data"
    before: dict[str, str] = {}
    for _ in range(3):  # kill, resume, kill again: each round must leave whole episodes only
        start_collector_and_kill(data, subprocess_env, tmp_path)
        survivors = episode_paths(data)
        # every file under a final name is a whole, verified episode; partial writes only
        # ever live under temporary names that episode_paths does not match
        names = [p.name for p in survivors]
        assert names == [f"episode_{i:06d}.npz" for i in range(len(names))]
        assert len(load_dataset(data, cartpole_spec)) == len(survivors)
        now = digests(survivors)
        assert {k: now[k] for k in before} == before  # a resumed collector never rewrites old episodes
        before = now
    have = total_steps(data)
    # rerunning completes, keeps the survivors, cleans temporary files up
    run_collect(cartpole_spec, data, have + 100, seed=3)
    after = digests(episode_paths(data))
    assert {k: after[k] for k in before} == before
    assert total_steps(data) >= have + 100
    assert not list(data.glob(".episode_*"))
    load_dataset(data, cartpole_spec)


def test_cli_collect_json_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["collect", "cartpole", "--steps", "60", "--policy", "random", "--out", str(out), "--json", "--no-progress"]
    assert cli_main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["world"] == "cartpole" and first["steps"] >= 60 and first["episodes"] == len(episode_paths(out))
    argv[3] = "120"
    assert cli_main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["steps"] >= 120 and second["episodes"] > first["episodes"]


def test_cli_collect_reports_corrupt_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    out.mkdir()
    (out / "episode_000000.npz").write_bytes(b"not a zip file")
    assert cli_main(["collect", "cartpole", "--steps", "10", "--policy", "random", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "episode_000000.npz" in err and len(err.splitlines()) == 1


def test_noop_policy_sends_the_worlds_noop(tmp_path: Path, cartpole_spec: WorldSpec) -> None:
    from neuralgym.training.collect import collect
    from neuralgym.training.data import load_episode

    list(collect(cartpole_spec, tmp_path, steps=5, policy="noop", progress=False))
    episode = load_episode(next(tmp_path.glob("episode_*.npz")), cartpole_spec.key)
    assert len(episode.actions) >= 5 and np.all(episode.actions == cartpole_spec.actions.noop)


def test_random_hold_policy_holds_its_actions(cartpole_spec: WorldSpec) -> None:
    from neuralgym.dream.real import RealWorldEnv
    from neuralgym.training.policies import policy_factory

    env = RealWorldEnv(cartpole_spec)
    runs = []
    for seed in range(20):
        act = policy_factory("random-hold")(env, np.random.default_rng(seed))
        actions = [int(act(None)) for _ in range(200)]
        again = policy_factory("random-hold")(env, np.random.default_rng(seed))
        assert [int(again(None)) for _ in range(200)] == actions  # reproducible from the rng
        changes = np.flatnonzero(np.diff(actions)) + 1
        runs.append(200 / (len(changes) + 1))
    env.close()
    # the mean hold is drawn per episode: some episodes switch every step or two, others hold ~16
    assert min(runs) < 3 and max(runs) > 8


def test_blind_policy_plays_one_of_the_worlds_blind_patterns_per_episode(cartpole_spec: WorldSpec) -> None:
    from neuralgym.dream.real import RealWorldEnv
    from neuralgym.training.policies import policy_factory
    from neuralgym.world.patterns import patterns_for

    env = RealWorldEnv(cartpole_spec)
    patterns = patterns_for(cartpole_spec)
    seen = set()
    for seed in range(12):
        act = policy_factory("blind")(env, np.random.default_rng(seed))
        actions = [int(act(None)) for _ in range(12)]
        again = policy_factory("blind")(env, np.random.default_rng(seed))
        assert [int(again(None)) for _ in range(12)] == actions  # reproducible from the rng
        fixed = {name for name in ("cycle", "pairs") if actions == [patterns[name](t, None) for t in range(12)]}
        seen |= fixed or {"random"}
    env.close()
    assert seen == {"cycle", "pairs", "random"}  # every pattern is drawn, each played as it is
