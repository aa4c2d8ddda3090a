"""Issue 28, hardening second round: the faults an outside campaign found, each ending in
one clear error (``error: ...`` and exit 2 from the CLI; ValueError/TypeError/SpecError/
WeightsError from the API) or in safe behaviour, with nothing half-written; and the
dataset folder's lock against two collectors (tested with two real processes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import neuralgym  # noqa: F401 - registers the worlds
from neuralgym.common.files import remove_stale_temporaries
from neuralgym.dream.core import DreamCore
from neuralgym.dream.real import RealWorldEnv
from neuralgym.tools.cli import main as cli_main
from neuralgym.training.checkpoints import init_from_world
from neuralgym.training.collect import collect
from neuralgym.training.config import TrainConfig
from neuralgym.training.data import LOCK_NAME, DatasetError, dataset_lock, episode_paths, load_dataset, load_episode
from neuralgym.training.loop import train
from neuralgym.world.model import WorldModel, WorldModelConfig
from neuralgym.world.parse import load_spec, parse_spec
from neuralgym.world.spec import MAX_FRAME_SIDE, SpecError, WorldSpec
from neuralgym.world.weights import WeightsError, load_world, save_world

from cliargs import train_argv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEEP_JSON = "[" * 100_000 + "]" * 100_000


def spec_data(spec: WorldSpec) -> dict[str, Any]:
    assert spec.path is not None
    return tomllib.loads(spec.path.read_text())


def one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The CLI's stderr: exactly one ``error: ...`` line holding every needle; no traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def tiny_world(spec: WorldSpec, path: Path) -> Path:
    """A small, valid world file of ``spec`` (untrained tensors, one-entry banks)."""
    k, (h, w, c), a = spec.context_length, spec.obs_shape, spec.actions.model_dim
    model = WorldModel(WorldModelConfig(height=h, width=w, channels=c, context=k, action_dim=a))
    save_world(
        path,
        model,
        spec,
        np.zeros((1, h, w, c), np.uint8),
        np.zeros((1, k, h, w, c), np.uint8),
        np.zeros((1, k - 1, a), np.float32),
    )
    return path


# ---------------------------------------------------------------------------- 1. deeply nested metadata


@pytest.mark.parametrize("key", ["neuralgym.config", "neuralgym.info"])
def test_deeply_nested_metadata_is_a_weights_error(
    key: str, cartpole_spec: WorldSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.safetensors"
    meta = {
        "neuralgym.world": "cartpole",
        "neuralgym.config": "{}",
        "neuralgym.info": "{}",
        "format": "pt",
        key: DEEP_JSON,
    }
    save_file({"model.x": torch.zeros(2)}, str(path), metadata=meta)
    with pytest.raises(WeightsError, match=f"{key}.*nested too deeply"):
        load_world(path, cartpole_spec)
    with pytest.raises(WeightsError, match="nested too deeply"):
        gym.make("neuralgym/CartPole-v0", weights=str(path), device="cpu")
    assert cli_main(["eval", "cartpole", "--weights", str(path), "--device", "cpu", "--episodes", "1"]) == 2
    one_error_line(capsys, str(path), "nested too deeply")


# ---------------------------------------------------------------------------- 2. crop outside the source frame


@pytest.mark.parametrize("crop", [[500, 900, 700, 1200], [164, 324, 0, 5000], [0, 401, 0, 600]])
def test_crop_outside_the_source_frame_is_a_spec_error(
    crop: list[int], cartpole_spec: WorldSpec, tmp_path: Path
) -> None:
    data = spec_data(cartpole_spec)
    data["preprocess"]["crop"] = crop
    spec = parse_spec(data, "cartpole", cartpole_spec.path)
    env = RealWorldEnv(spec)
    try:
        with pytest.raises(SpecError, match=r"'crop'.*outside the source frame of 600x400") as info:
            env.reset(seed=0)
        assert str(cartpole_spec.path) in str(info.value)
    finally:
        env.close()
    out = tmp_path / "data"
    with pytest.raises(SpecError, match="600x400"):
        list(collect(spec, out, 10, policy="random", progress=False))
    assert os.listdir(out) == []  # nothing half-written, no lock left behind


def test_crop_inside_the_frame_still_works(cartpole_spec: WorldSpec) -> None:
    data = spec_data(cartpole_spec)
    data["preprocess"]["crop"] = [0, 400, 0, 600]  # the whole frame, edge to edge
    env = RealWorldEnv(parse_spec(data, "cartpole", cartpole_spec.path))
    try:
        assert env.reset(seed=0)[0].shape == cartpole_spec.obs_shape
    finally:
        env.close()


# ---------------------------------------------------------------------------- 3. the dataset lock


def wait_until(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"collector exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("collector did not take the lock in time")
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_two_collectors_into_one_folder_the_second_is_refused(
    tmp_path: Path, cartpole_spec: WorldSpec, subprocess_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    lock = data / LOCK_NAME
    cmd = [
        sys.executable,
        "-m",
        "neuralgym",
        "collect",
        "cartpole",
        "--policy",
        "random",
        "--out",
        str(data),
        "--no-progress",
    ]
    first = subprocess.Popen(
        [*cmd, "--steps", "10000000", "--seed", "1"],
        env=subprocess_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: lock.is_file() and lock.read_text().strip() == str(first.pid) and len(episode_paths(data)) >= 1,
            first,
        )
        second = subprocess.run(
            [*cmd, "--steps", "50", "--seed", "2"],
            env=subprocess_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second
        err = second.stderr.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert f"locked by process {first.pid}" in err and str(data) in err and "Traceback" not in err
        assert first.poll() is None  # the first collector was not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # the killed collector's lock (its pid still in the file) is stale: the next collector takes it over
    assert lock.read_text().strip() == str(first.pid)
    have = sum(len(load_episode(p)) for p in episode_paths(data))
    list(collect(cartpole_spec, data, have + 10, policy="random", seed=1, progress=False))
    assert not lock.exists()  # released on the way out
    assert sum(len(ep) for ep in load_dataset(data, cartpole_spec)) >= have + 10


def test_lock_naming_a_live_process_is_respected_and_a_dead_one_taken_over(
    tmp_path: Path, cartpole_spec: WorldSpec
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lock = data / LOCK_NAME
    lock.write_text(f"{os.getppid()}\n")  # a live process (our parent) holds it
    with pytest.raises(DatasetError, match=f"locked by process {os.getppid()}"):
        list(collect(cartpole_spec, data, 10, policy="random", progress=False))
    assert episode_paths(data) == [] and lock.read_text().strip() == str(os.getppid())
    for junk in ("9" * 40, "not a pid", ""):  # unreadable owners are no owners
        lock.write_text(junk)
        with dataset_lock(data):
            assert lock.read_text().strip() == str(os.getpid())
    lock.write_text(f"{dead_pid()}\n")
    assert list(collect(cartpole_spec, data, 10, policy="random", progress=False))
    assert not lock.exists() and episode_paths(data)


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with dataset_lock(tmp_path) as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(DatasetError, match="locked by process"):
            with dataset_lock(tmp_path):
                pass
    assert not lock.exists()
    with dataset_lock(tmp_path):  # free again
        pass


# ---------------------------------------------------------------------------- 4. --out a file / not writable


def test_out_that_is_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.write_bytes(b"a file")
    for target in (out, out / "sub"):
        assert (
            cli_main(
                ["collect", "cartpole", "--steps", "10", "--policy", "random", "--out", str(target), "--no-progress"]
            )
            == 2
        )
        one_error_line(capsys, str(target), "is a file", "not a folder")
    assert out.read_bytes() == b"a file"


def test_train_out_a_folder_or_run_dir_a_file_fails_before_training(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_bytes(b"x")
    base = ["train", "cartpole", "--data", str(tiny_dataset), "--steps", "1", "--device", "cpu", "--no-progress"]
    assert cli_main([*base, "--out", str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "--out", "is a folder")
    assert cli_main([*base, "--out", str(tmp_path / "w.safetensors"), "--run-dir", str(a_file)]) == 2
    one_error_line(capsys, "--run-dir", "is a file, not a folder")
    assert not (tmp_path / "run").exists() and not (tmp_path / "w.safetensors").exists()


def test_unwritable_out_fails_before_collecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import neuralgym.training.data as data_mod

    out = tmp_path / "ro"
    out.mkdir()
    real_open = os.open

    def denied(path: Any, *args: Any, **kwargs: Any) -> int:
        if Path(path).name == LOCK_NAME:  # what a folder without write permission answers (even as root here)
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    started: list[bool] = []
    monkeypatch.setattr(data_mod.os, "open", denied)
    monkeypatch.setattr("neuralgym.dream.real.RealWorldEnv.reset", lambda *a, **k: started.append(True))
    assert (
        cli_main(["collect", "cartpole", "--steps", "10", "--policy", "random", "--out", str(out), "--no-progress"])
        == 2
    )
    one_error_line(capsys, str(out), "not writable")
    assert not started and os.listdir(out) == []


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere; POSIX modes")
def test_read_only_out_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert (
            cli_main(["collect", "cartpole", "--steps", "10", "--policy", "random", "--out", str(out), "--no-progress"])
            == 2
        )
        one_error_line(capsys, str(out), "not writable")
    finally:
        out.chmod(0o700)
    assert os.listdir(out) == []


# ---------------------------------------------------------------------------- 5. --steps is a minimum


def test_steps_is_a_documented_minimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["collect", "--help"]) == 0
    assert "least" in capsys.readouterr().out
    out = tmp_path / "data"
    argv = ["collect", "cartpole", "--steps", "3", "--policy", "random", "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    line = capsys.readouterr().out.strip()
    steps = sum(len(load_episode(p)) for p in episode_paths(out))
    assert len(episode_paths(out)) == 1 and steps > 3  # one whole episode
    assert f"{steps} steps" in line and "--steps 3 is a minimum" in line and "whole" in line
    assert cli_main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == steps and report["steps_requested"] == 3


# ---------------------------------------------------------------------------- 6. a random-bytes .npz


def test_random_bytes_npz_is_not_an_episode_file_and_pickle_is_never_suggested(
    tmp_path: Path, cartpole_spec: WorldSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "episode_000000.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError) as info:
        load_dataset(data, cartpole_spec)
    assert "not an episode file" in str(info.value) and "pickle" not in str(info.value).replace(str(bad), "").lower()
    for argv in (
        train_argv(tmp_path, data),
        ["collect", "cartpole", "--steps", "10", "--policy", "random", "--out", str(data)],
    ):
        assert cli_main(argv) == 2
        err = one_error_line(capsys, str(bad), "not an episode file")
        assert "pickle" not in err.replace(str(bad), "").lower() and "unsafe" not in err.lower()
    assert not (tmp_path / "w.safetensors").exists()


def test_npz_holding_object_arrays_is_rejected_without_suggesting_to_unpickle(tmp_path: Path) -> None:
    path = tmp_path / "episode_000000.npz"
    arrays = {
        k: np.array([{"x": 1}], dtype=object) for k in ("frames", "actions", "rewards", "terminated", "truncated")
    }
    np.savez(path, **arrays, world=np.array("cartpole"), sha256=np.array("0"))
    with pytest.raises(DatasetError) as info:
        load_episode(path)
    assert str(path) in str(info.value) and "pickle" not in str(info.value).replace(str(path), "").lower()


# ------------------------------------------------------------------- 7 + 12. train: stale temporaries, file modes


def test_train_cleans_killed_writes_and_writes_weights_0644(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "w" / "world.safetensors"
    run_dir.mkdir()
    out.parent.mkdir()
    gone = dead_pid()
    stale = [run_dir / f".checkpoint.pt.tmp{gone}", out.parent / f".world.safetensors.tmp{gone}"]
    live = run_dir / f".checkpoint.pt.tmp{os.getppid()}"  # a write still in progress elsewhere
    for p in (*stale, live):
        p.write_bytes(b"half a file")
    old = os.umask(0o022)
    try:
        train(
            cartpole_spec,
            tiny_dataset,
            out,
            run_dir,
            TrainConfig(steps=1, batch_size=4, rollout_max=1, device="cpu", threads=1, eval_every=10**6),
            resume=True,
            progress=False,
        )
    finally:
        os.umask(old)
    assert not any(p.exists() for p in stale) and live.exists()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE((run_dir / "checkpoint.pt").stat().st_mode) == 0o644
    assert not list(out.parent.glob(".*.tmp*"))
    load_world(out, cartpole_spec)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_weights_respect_the_umask(umask: int, mode: int, cartpole_spec: WorldSpec, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        path = tiny_world(cartpole_spec, tmp_path / "world.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    load_world(path, cartpole_spec)


def test_remove_stale_temporaries_keeps_live_writers_and_other_files(tmp_path: Path) -> None:
    gone = dead_pid()
    dead, live = tmp_path / f".checkpoint.pt.tmp{gone}", tmp_path / f".checkpoint.pt.tmp{os.getppid()}"
    other = [tmp_path / "checkpoint.pt", tmp_path / f".other.pt.tmp{gone}", tmp_path / ".checkpoint.pt.tmpX"]
    for p in (dead, live, *other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, "checkpoint.pt") == [dead]
    assert live.exists() and all(p.exists() for p in other)
    assert remove_stale_temporaries(tmp_path / "missing", "checkpoint.pt") == []


def test_unreadable_checkpoint_on_resume_is_one_error(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    argv = [
        "train",
        "cartpole",
        "--data",
        str(tiny_dataset),
        "--steps",
        "1",
        "--device",
        "cpu",
        "--resume",
        "--run-dir",
        str(run_dir),
        "--out",
        str(tmp_path / "w.safetensors"),
        "--no-progress",
    ]
    assert cli_main(argv) == 2
    one_error_line(capsys, "checkpoint.pt", "not a readable training checkpoint")
    assert not (tmp_path / "w.safetensors").exists()


def test_init_from_a_folder_or_garbage_is_a_weights_error(cartpole_spec: WorldSpec, tmp_path: Path) -> None:
    model = WorldModel(WorldModelConfig())
    with pytest.raises(WeightsError, match="is a folder"):
        init_from_world(model, tmp_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(1).bytes(1000))
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        init_from_world(model, junk)


# ---------------------------------------------------------------------------- 8. weights= a folder


def test_weights_that_is_a_folder_says_so(
    cartpole_spec: WorldSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for call in (
        lambda: load_world(tmp_path, cartpole_spec),
        lambda: gym.make("neuralgym/CartPole-v0", weights=str(tmp_path), device="cpu"),
        lambda: gym.make_vec("neuralgym/CartPole-v0", num_envs=2, weights=tmp_path, device="cpu"),
    ):
        with pytest.raises(WeightsError, match="is a folder, not a file: expected a .safetensors file"):
            call()
    assert cli_main(["eval", "cartpole", "--weights", str(tmp_path), "--device", "cpu", "--episodes", "1"]) == 2
    err = one_error_line(capsys, str(tmp_path), "is a folder")
    assert "does not exist" not in err


# ---------------------------------------------------------------------------- 9. num_envs beyond the device's memory


def test_num_envs_beyond_memory_is_refused_up_front(cartpole_spec: WorldSpec) -> None:
    for call in (
        lambda: gym.make_vec("neuralgym/CartPole-v0", num_envs=10**7, device="cpu"),
        lambda: DreamCore(cartpole_spec, 10**7, device="cpu"),
        lambda: neuralgym.make_sb3_vec_env("neuralgym/CartPole-v0", n_envs=10**7, device="cpu"),
    ):
        with pytest.raises(ValueError, match=r"num_envs=10000000 needs at least [\d.]+ TB .* available") as info:
            call()
        assert "fewer lanes" in str(info.value)
    env = gym.make_vec("neuralgym/CartPole-v0", num_envs=3, device="cpu")  # a sane count still works
    try:
        assert env.reset(seed=0)[0].shape == (3, *cartpole_spec.obs_shape)
    finally:
        env.close()


# ---------------------------------------------------------------------------- 10 + 11. spec bounds, keymap


@pytest.mark.parametrize(
    "section, field, value, needle",
    [
        ("preprocess", "size", [100000, 100000], f"at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}"),
        ("preprocess", "size", [64, MAX_FRAME_SIDE + 1], f"at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}"),
        ("preprocess", "frame_skip", 10**9, "'frame_skip' must be in"),
        ("preprocess", "reset_noops", [0, 10**12], "'reset_noops' must be"),
        ("play", "keymap", {"left": 0, "nosuchkey": 1}, "unknown key name 'nosuchkey'"),
        ("play", "keymap", {"left+nosuchkey": 0}, "unknown key name 'nosuchkey'"),
        ("play", "keymap", {"left": 7}, "keymap entry 'left'"),
        ("play", "keymap", {"left": 0, "LEFT": 1}, "name the same keys"),
    ],
)
def test_spec_values_are_bounded_and_checked_at_load(
    section: str, field: str, value: Any, needle: str, cartpole_spec: WorldSpec, tmp_path: Path
) -> None:
    data = spec_data(cartpole_spec)
    data[section][field] = value
    with pytest.raises(SpecError, match=f"\\[{section}\\]") as info:
        parse_spec(data, "cartpole")
    assert needle in str(info.value)
    # from a file too: the error names it, and it comes at load, long before play or collect
    text = cartpole_spec.path.read_text()
    path = tmp_path / "cartpole.toml"
    path.write_text(text.replace("keymap = { left = 0, right = 1 }", "keymap = { left = 0, right = 1, nosuchkey = 0 }"))
    with pytest.raises(SpecError, match=f"{path}.*nosuchkey"):
        load_spec(path)


def test_shipped_keymaps_still_load() -> None:
    from neuralgym.world.catalog import all_specs

    assert all(spec.play.keymap for spec in all_specs().values())
