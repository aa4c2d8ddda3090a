"""Training end to end on a tiny dataset: weights, checkpoints, exact resume, bad data,
and ``neuralgym train --json``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import neuralgym.training.loop as train_mod
from neuralgym.tools.cli import main as cli_main
from neuralgym.training.config import TrainConfig
from neuralgym.training.data import DatasetError
from neuralgym.training.loop import train
from neuralgym.training.windows import Batch
from neuralgym.world.spec import WorldSpec
from neuralgym.world.weights import load_world, read_metadata

from cliargs import train_argv

TINY = dict(batch_size=8, rollout_max=2, device="cpu", threads=2, eval_every=10**6)


@dataclass
class Run:
    weights: Path
    run_dir: Path
    result: dict


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def run_train(spec: WorldSpec, data: Path, root: Path, resume: bool = False, **cfg) -> Run:
    out, run_dir = root / "world.safetensors", root / "run"
    result = train(spec, data, out, run_dir, TrainConfig(**{**TINY, **cfg}), resume=resume, progress=False)
    return Run(out, run_dir, result)


def continued(spec: WorldSpec, data: Path, root: Path, source: Path) -> tuple[Run, Run]:
    """One step from ``source``, as a plain run and as a heads-only run (whatever the config asks,
    a run started from a world keeps the parts that world's frames depend on)."""
    plain = run_train(spec, data, root / "plain", steps=1, init_from=str(source))
    heads = run_train(spec, data, root / "heads", steps=1, init_from=str(source), heads_only=True)
    return plain, heads


@pytest.fixture(scope="module", autouse=True)
def cheap_validation():
    """``validate`` rolls 128 held-out windows 25 steps open loop: seconds on a busy
    2-core CPU, for every run here. Eight windows exercise the same code."""
    original = train_mod.validate
    with mock.patch.object(train_mod, "validate", lambda *a, **k: original(*a, **{**k, "n": 8})):
        yield


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory, cartpole_spec: WorldSpec, tiny_dataset: Path) -> Run:
    """8 steps from scratch, checkpointing every 4; keeps a copy of the step-4 checkpoint."""
    root = tmp_path_factory.mktemp("fresh")
    save = train_mod.save_checkpoint

    def save_and_keep(path: Path, *args, **kwargs) -> None:
        save(path, *args, **kwargs)
        step = checkpoint(Path(path).parent)["step"]
        shutil.copy(path, Path(path).with_name(f"checkpoint_step{step}.pt"))

    with mock.patch.object(train_mod, "save_checkpoint", save_and_keep):
        return run_train(cartpole_spec, tiny_dataset, root, steps=8, checkpoint_every=4)


def test_end_to_end_writes_a_loadable_world(fresh_run: Run, cartpole_spec: WorldSpec) -> None:
    assert fresh_run.result["steps"] == 8
    assert fresh_run.result["flops_per_frame"] < 30e6
    world = load_world(fresh_run.weights, cartpole_spec)
    c, k = world.model.config, cartpole_spec.context_length
    assert (c.height, c.width, c.channels, c.context, c.action_dim) == (64, 64, 1, k, 2)
    assert world.starts.ndim == 4 and world.starts.shape[1:] == (64, 64, 1) and len(world.starts) > 0
    assert world.starts.dtype == np.uint8
    assert world.anchor_frames.shape[1:] == (k, 64, 64, 1)
    assert world.anchor_actions.shape[1:] == (k - 1, 2) and len(world.anchor_actions) == len(world.anchor_frames)
    assert not world.model.training
    frames = torch.from_numpy(world.anchor_frames[:2]).permute(0, 1, 4, 2, 3).float() / 255.0
    with torch.no_grad():
        out = world.model(frames, torch.zeros(2, k, 2))
    assert out["frame"].shape == (2, 1, 64, 64)
    assert fresh_run.weights.stat().st_size < 20 * 2**20  # shipped worlds stay small


def test_training_changes_the_weights(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    zero = run_train(cartpole_spec, tiny_dataset, tmp_path, steps=1)
    trained, barely = model_tensors(fresh_run.weights), model_tensors(zero.weights)
    assert any(not torch.equal(trained[k], barely[k]) for k in trained)


def test_checkpoint_records_the_step(fresh_run: Run) -> None:
    state = checkpoint(fresh_run.run_dir)
    assert state["step"] == 8
    assert state["sampler"]["position"] > 0 or state["sampler"]["epoch"] > 0
    assert json.loads(state["config"])["steps"] == 8
    assert (fresh_run.run_dir / "checkpoint_step4.pt").is_file()
    assert (fresh_run.run_dir / "tb").is_dir()  # TensorBoard logs


def test_resume_continues_from_the_checkpoint(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    first = run_train(cartpole_spec, tiny_dataset, tmp_path, steps=4)
    assert checkpoint(first.run_dir)["step"] == 4
    four = model_tensors(first.weights)
    resumed = run_train(cartpole_spec, tiny_dataset, tmp_path, resume=True, steps=8)
    assert resumed.result["steps"] == 8
    assert checkpoint(resumed.run_dir)["step"] == 8
    after = model_tensors(resumed.weights)
    assert any(not torch.equal(after[k], four[k]) for k in after)  # it trained further
    # Had --resume been ignored, this would be an 8-step run from scratch: fresh_run's weights.
    fresh = model_tensors(fresh_run.weights)
    assert any(not torch.equal(after[k], fresh[k]) for k in after)


def test_resume_reproduces_an_uninterrupted_run(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """Stop at step 4 and resume with the same config: the result is the uninterrupted run's."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(fresh_run.run_dir / "checkpoint_step4.pt", run_dir / "checkpoint.pt")
    resumed = run_train(cartpole_spec, tiny_dataset, tmp_path, resume=True, steps=8, checkpoint_every=4)
    assert resumed.result["steps"] == 8
    fresh, after = model_tensors(fresh_run.weights), model_tensors(resumed.weights)
    assert fresh.keys() == after.keys()
    for k in fresh:
        torch.testing.assert_close(after[k], fresh[k], atol=1e-6, rtol=1e-5, msg=k)


def test_resume_without_checkpoint_starts_from_scratch(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    run = run_train(cartpole_spec, tiny_dataset, tmp_path, resume=True, steps=2)
    assert run.result["steps"] == 2 and checkpoint(run.run_dir)["step"] == 2


@pytest.mark.parametrize("kind", ["empty", "missing", "corrupt"])
def test_bad_data_dir_raises_dataset_error(
    kind: str, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    if kind != "missing":
        data.mkdir()
    if kind == "corrupt":
        for p in sorted(tiny_dataset.glob("episode_*.npz"))[:3]:
            shutil.copy(p, data / p.name)
        (data / "episode_000001.npz").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="episode_000001.npz" if kind == "corrupt" else "no episode files"):
        run_train(cartpole_spec, data, tmp_path / "out", steps=1)
    assert not (tmp_path / "out" / "world.safetensors").exists()


def test_cli_train_json(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, run_dir = tmp_path / "w.safetensors", tmp_path / "run"
    argv = [
        "train",
        "cartpole",
        "--data",
        str(tiny_dataset),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--rollout-max",
        "1",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--run-dir",
        str(run_dir),
        "--out",
        str(out),
        "--json",
    ]
    assert cli_main(argv) == 0
    stdout = capsys.readouterr().out
    report = json.loads(stdout)  # one JSON object, nothing else: progress and logs went to stderr
    assert stdout.count("\n") == 1
    assert report["steps"] == 2 and report["world"] == "cartpole" and report["weights"] == str(out)
    assert out.is_file() and (run_dir / "checkpoint.pt").is_file()
    # --resume with --steps 3 picks the checkpoint up
    assert cli_main([*argv[:5], "3", *argv[6:], "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3 and checkpoint(run_dir)["step"] == 3


def test_cli_train_reads_every_data_folder(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuralgym.training.loop as loop

    read: list[Path] = []
    load = loop.load_dataset
    monkeypatch.setattr(loop, "load_dataset", lambda folder, spec: read.append(folder) or load(folder, spec))
    copy = tmp_path / "more"
    shutil.copytree(tiny_dataset, copy)
    small = ["--batch-size", "4", "--rollout-max", "1"]
    assert cli_main([*train_argv(tmp_path, tiny_dataset, copy), *small, "--json"]) == 0
    assert read == [tiny_dataset, copy]
    capsys.readouterr()
    missing = tmp_path / "missing"
    assert cli_main([*train_argv(tmp_path, tiny_dataset, missing), *small]) != 0
    assert str(missing) in capsys.readouterr().err


def test_cli_train_hard_windows_and_futures_relax_reach_the_run(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ["--batch-size", "4", "--rollout-max", "1", "--json"]
    extra = ["--hard-oversample", "3", "--hard-share", "0.1", "--futures-relax", "0"]
    assert cli_main([*train_argv(tmp_path, tiny_dataset, steps=2), *small, *extra]) == 0
    capsys.readouterr()
    info = json.loads(read_metadata(tmp_path / "w.safetensors")["neuralgym.info"])["train"]
    assert (info["hard_oversample"], info["hard_share"], info["futures_relax"]) == (3, 0.1, 0.0)
    for flag, bad, expected in [
        ("--hard-share", "0", "a positive number"),
        ("--hard-share", "1.5", "a share in (0, 1]"),
        ("--futures-relax", "1.5", "a number in [0, 1]"),
        ("--hard-oversample", "0", "a positive integer"),
        ("--object-weight", "0", "a positive number"),
        ("--object-jitter", "1.5", "a number in [0, 1]"),
    ]:
        assert cli_main([*train_argv(tmp_path, tiny_dataset), flag, bad]) == 2
        assert f"expected {expected}, got" in capsys.readouterr().err
    # object cells need a locator of the world's object: CartPole has none
    assert cli_main([*train_argv(tmp_path, tiny_dataset, steps=1), *small, "--object-cells"]) == 2
    assert "'cartpole' has none (worlds with one: pong)" in capsys.readouterr().err


def test_cli_train_bad_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(train_argv(tmp_path, tmp_path))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no episode files (episode_NNNNNN.npz) in {tmp_path}"]


def test_cli_train_bad_device(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "train",
            "cartpole",
            "--data",
            str(tiny_dataset),
            "--device",
            "tpu",
            "--run-dir",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "w.safetensors"),
        ]
    )
    assert code == 2
    assert "device" in capsys.readouterr().err


def test_heads_only_keeps_every_frame_tensor(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """--init-from + --heads-only: the frame model is copied and frozen, only the heads move."""
    run = run_train(
        cartpole_spec, tiny_dataset, tmp_path, steps=4, init_from=str(fresh_run.weights), heads_only=True, seed=3
    )
    before, after = model_tensors(fresh_run.weights), model_tensors(run.weights)
    assert before.keys() == after.keys()
    heads = [k for k in after if k.removeprefix("model.").startswith(train_mod.HEAD_PREFIXES)]
    assert heads and any(not torch.equal(before[k], after[k]) for k in heads)
    for k in after:
        if k not in heads:
            assert torch.equal(before[k], after[k]), k


def test_init_from_copies_the_tensors_that_fit(fresh_run: Run, cartpole_spec: WorldSpec, tmp_path: Path) -> None:
    from neuralgym.world.model import WorldModel

    fresh = WorldModel(load_world(fresh_run.weights, cartpole_spec).model.config)
    assert train_mod.init_from_world(fresh, fresh_run.weights) == []
    with pytest.raises(FileNotFoundError, match="no world file"):
        train_mod.init_from_world(fresh, tmp_path / "missing.safetensors")


def test_init_from_widens_a_shorter_context_exactly(fresh_run: Run, cartpole_spec: WorldSpec) -> None:
    """A world with K frames starts a 2K-frame model that predicts exactly what it did
    from the newest K frames and actions: the older slots begin at zero."""
    from dataclasses import replace

    from neuralgym.world.model import WorldModel

    old = load_world(fresh_run.weights, cartpole_spec).model
    k = old.config.context
    wide = WorldModel(replace(old.config, context=2 * k)).eval()
    assert train_mod.init_from_world(wide, fresh_run.weights) == []
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 2 * k, 1, 64, 64, generator=gen)
    actions = torch.rand(3, 2 * k, old.config.action_dim, generator=gen)
    with torch.no_grad():
        a, b = wide(frames, actions), old(frames[:, k:], actions[:, k:])
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    # a longer context is not cut down to fit a shorter model: those input layers start fresh
    narrow = WorldModel(replace(old.config, context=k - 1))
    assert train_mod.init_from_world(narrow, fresh_run.weights) == ["action_embed.0.weight", "inp.weight"]


def test_heads_only_needs_init_from(cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="heads_only needs init_from"):
        run_train(cartpole_spec, tiny_dataset, tmp_path, steps=2, heads_only=True)


def test_data_that_pays_one_value_makes_a_world_without_a_reward_classifier(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """CartPole pays 1 every step: the reward classes collapse to that one value, the world
    stores no classifier, and heads_only with a burn-in (which trains only that) is refused."""
    run = run_train(cartpole_spec, tiny_dataset, tmp_path, steps=2, reward_classes=8)
    world = load_world(run.weights, cartpole_spec)
    assert world.model.config.reward_classes == 1 and world.model.reward_values.tolist() == [1.0]
    assert not any(k.startswith("model.reward_head") for k in model_tensors(run.weights))
    # files written before stored a classifier over that one class: they still load
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run.weights), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["model.reward_head.2.weight"] = torch.zeros(1, 64)
    save_file(tensors, str(tmp_path / "older.safetensors"), metadata=meta)
    assert load_world(tmp_path / "older.safetensors", cartpole_spec).model.reward_values.tolist() == [1.0]
    with pytest.raises(ValueError, match="no reward to learn"):
        run_train(
            cartpole_spec,
            tiny_dataset,
            tmp_path / "heads",
            steps=2,
            init_from=str(fresh_run.weights),
            heads_only=True,
            burn_in=3,
            reward_classes=8,
        )


def _free_run_context(model: torch.nn.Module, batch: Batch, k: int, burn: int) -> torch.Tensor:
    """The context after ``burn`` free-running steps from the batch's first K real frames,
    each prediction rounded to 8 bits: a hand-rolled burn-in to check rollout_loss against."""
    from neuralgym.world.model import quantize

    ctx = batch.frames[:, :k]
    for r in range(burn):
        ctx = torch.cat([ctx[:, 1:], quantize(model(ctx, batch.actions[:, r : r + k])["frame"])[:, None]], dim=1)
    return ctx


def test_heads_only_with_burn_in_scores_the_reward_on_the_dreams_own_frames(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """After a free-running burn-in, heads_only scores the reward head (and nothing else)
    against the recording's reward, on the context the dream made itself."""
    from neuralgym.training.data import load_dataset
    from neuralgym.training.losses import rollout_loss
    from neuralgym.training.windows import WindowDataset

    run = run_train(
        cartpole_spec, tiny_dataset, tmp_path, steps=4, init_from=str(fresh_run.weights), heads_only=True, burn_in=3
    )
    before, after = model_tensors(fresh_run.weights), model_tensors(run.weights)
    moved = [k for k in after if not torch.equal(before[k], after[k])]
    assert moved and all(k.removeprefix("model.").startswith(train_mod.HEAD_PREFIXES) for k in moved)

    model = load_world(fresh_run.weights, cartpole_spec).model.float()
    k, burn = cartpole_spec.context_length, 3
    batch = WindowDataset(load_dataset(tiny_dataset, cartpole_spec), cartpole_spec).batch(np.arange(4), burn + 1)
    cfg = TrainConfig(**TINY)
    with torch.no_grad():
        loss, stats = rollout_loss(model, batch, 1, k, cfg, 4, burn=burn, free_heads=True)
        ctx = _free_run_context(model, batch, k, burn)
        out = model(ctx, batch.actions[:, burn : burn + k])
    expected = ((out["reward"] - batch.rewards[:, burn]).pow(2) * batch.mask[:, burn]).sum() / 4
    assert stats["frame"] == stats["term"] == stats["err"] == 0.0 and expected > 0
    torch.testing.assert_close(loss, cfg.head_weight * expected)


def test_the_heads_weigh_each_window_by_how_often_it_is_drawn(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path
) -> None:
    """Oversampling makes the frames practise an event more, not the heads believe it more:
    ``draw_weights`` is 1 / how often an epoch draws a window (mean 1 over the draws), and the
    reward loss scales with it while the frame loss does not."""
    from dataclasses import replace

    from neuralgym.training.data import load_dataset
    from neuralgym.training.losses import rollout_loss
    from neuralgym.training.windows import WindowDataset, draw_weights

    population = np.array([0, 1, 1, 1, 3])  # window 2 never drawn, window 1 three times
    w = draw_weights(population, 4)
    assert w[2] == 0 and w[1] * 3 == pytest.approx(w[0]) and w[population].mean() == pytest.approx(1.0)

    model = load_world(fresh_run.weights, cartpole_spec).model.float()
    batch = WindowDataset(load_dataset(tiny_dataset, cartpole_spec), cartpole_spec).batch(np.arange(4), 2)
    cfg = TrainConfig(**TINY)
    with torch.no_grad():
        _, plain = rollout_loss(model, batch, 2, cartpole_spec.context_length, cfg, 4)
        _, halved = rollout_loss(
            model, replace(batch, weight=batch.weight * 0.5), 2, cartpole_spec.context_length, cfg, 4
        )
    assert plain["reward"] > 0 and halved["reward"] == pytest.approx(plain["reward"] / 2)
    assert halved["frame"] == plain["frame"] and halved["term"] == plain["term"]


def test_after_a_burn_in_frames_are_scored_against_the_nearest_real_frame(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path
) -> None:
    """With a bank and no free_heads, a scored step after a burn-in scores only its frame,
    against the bank frame nearest to it: the heads' targets belong to the recording."""
    from neuralgym.training.data import load_dataset
    from neuralgym.training.losses import nearest_real, rollout_loss
    from neuralgym.training.windows import WindowDataset
    from neuralgym.world.frameindex import RealFrameIndex
    from neuralgym.world.model import quantize

    model = load_world(fresh_run.weights, cartpole_spec).model.float()
    episodes = load_dataset(tiny_dataset, cartpole_spec)
    bank = RealFrameIndex(np.concatenate([ep.frames for ep in episodes])[:200])
    k, burn = cartpole_spec.context_length, 2
    batch = WindowDataset(episodes, cartpole_spec).batch(np.arange(4), burn + 1)
    cfg = TrainConfig(**TINY)
    with torch.no_grad():
        loss, stats = rollout_loss(model, batch, 1, k, cfg, 4, burn=burn, bank=bank)
        ctx = _free_run_context(model, batch, k, burn)
        pred = quantize(model(ctx, batch.actions[:, burn : burn + k])["frame"])
    fit = (pred - nearest_real(bank, pred)).pow(2).mean(dim=(1, 2, 3))
    expected = (torch.log(fit + cfg.log_eps) * batch.mask[:, burn]).sum() / 4
    assert stats["term"] == stats["reward"] == stats["err"] == 0.0
    torch.testing.assert_close(loss, expected)


def test_zero_steps_rebuilds_the_banks_of_an_init_from_world(
    fresh_run: Run, cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    run = run_train(cartpole_spec, tiny_dataset, tmp_path, steps=0, init_from=str(fresh_run.weights))
    before, after = model_tensors(fresh_run.weights), model_tensors(run.weights)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert load_world(run.weights, cartpole_spec).starts.shape[1:] == cartpole_spec.obs_shape
    with pytest.raises(ValueError, match="steps=0 only rebuilds"):
        run_train(cartpole_spec, tiny_dataset, tmp_path / "b", steps=0)


def test_bottleneck_world_trains_loads_and_stays_a_bottleneck(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """A bottleneck world: its decoder's base starts at the data's median frame, it loads
    back as one, and a run started from it keeps the architecture without being told."""
    from neuralgym.world.model import WorldModelConfig

    model_cfg = WorldModelConfig(background=1, bottleneck=8, decoder_width=8)
    run = run_train(cartpole_spec, tiny_dataset, tmp_path / "a", steps=2, model=model_cfg)
    world = load_world(run.weights, cartpole_spec)
    assert world.model.config.bottleneck == 8 and world.model.config.decoder_width == 8
    base = world.model.decoder.base.detach()
    assert base.min() < 0.5 < base.max()  # the scene's median frame, not the flat start
    again = run_train(cartpole_spec, tiny_dataset, tmp_path / "b", steps=1, init_from=str(run.weights))
    assert load_world(again.weights, cartpole_spec).model.config.bottleneck == 8


def test_a_world_with_futures_trains_loads_and_keeps_them(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    """A world with several futures learns which comes (its future head moves), loads back as
    one, and runs started from it keep them; a one-future world given more starts each new
    future as a perturbed copy of its own."""
    from neuralgym.world.model import WorldModelConfig

    # a source whose output taps moved far (lr 0.01, no warm-up) beside the next run's first steps
    one = run_train(
        cartpole_spec, tiny_dataset, tmp_path / "one", steps=3, lr=0.01, warmup=1, model=WorldModelConfig(background=1)
    )
    run = run_train(
        cartpole_spec,
        tiny_dataset,
        tmp_path / "a",
        steps=3,
        init_from=str(one.weights),
        model=WorldModelConfig(background=1, futures=2),
    )
    assert load_world(run.weights, cartpole_spec).model.config.futures == 2
    tensors = model_tensors(run.weights)
    assert tensors["model.future_head.2.weight"].abs().sum() > 0  # the head was taught which future came
    out_w, alt_w = tensors["model.out.weight"], tensors["model.alt_out.weight"]
    assert out_w.abs().max() > 1e-3 and torch.allclose(alt_w, out_w, atol=0.2 * float(out_w.abs().max()))
    assert not torch.equal(alt_w, out_w)
    for again in continued(cartpole_spec, tiny_dataset, tmp_path / "b", run.weights):
        assert load_world(again.weights, cartpole_spec).model.config.futures == 2
    # gated: its gates start half open and learn; runs started from it, heads-only too, keep them
    gated = run_train(
        cartpole_spec,
        tiny_dataset,
        tmp_path / "g",
        steps=3,
        init_from=str(run.weights),
        model=WorldModelConfig(background=1, gated_futures=1),
    )
    assert model_tensors(gated.weights)["model.future_gate.bias"].abs().sum() > 0
    for again in continued(cartpole_spec, tiny_dataset, tmp_path / "h", gated.weights):
        config = load_world(again.weights, cartpole_spec).model.config
        assert (config.futures, config.gated_futures) == (2, 1)


def test_decoder_pretraining_runs_once_not_again_on_resume(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    from neuralgym.world.model import WorldModelConfig

    calls = []
    real = train_mod.pretrain_decoder

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    kw = dict(model=WorldModelConfig(background=1, bottleneck=8, decoder_width=8), decoder_pretrain=2)
    with mock.patch.object(train_mod, "pretrain_decoder", counted):
        run_train(cartpole_spec, tiny_dataset, tmp_path, steps=2, checkpoint_every=1, **kw)
        assert len(calls) == 1
        run_train(cartpole_spec, tiny_dataset, tmp_path, resume=True, steps=3, checkpoint_every=1, **kw)
        assert len(calls) == 1  # the checkpoint holds the pretrained decoder


def test_a_continued_run_keeps_how_its_source_was_trained() -> None:
    from dataclasses import asdict

    from neuralgym.training.config import CONTINUED_FIELDS, continued_settings

    source = asdict(TrainConfig(steps=5000, lr=3e-3, context_noise=0.02, change_weight=30.0, burn_in=16, seed=7))
    kept = continued_settings(source)
    assert set(kept) == set(CONTINUED_FIELDS)
    assert kept["context_noise"] == 0.02 and kept["change_weight"] == 30.0 and kept["burn_in"] == 16
    assert TrainConfig(**kept, steps=300).lr == TrainConfig().lr  # the schedule is the new run's own
    # a heads-only source says nothing about how its frames were trained
    heads = continued_settings({**source, "heads_only": True, "reward_oversample": 20})
    assert "change_weight" not in heads and "burn_in" not in heads and heads["reward_oversample"] == 20


def test_a_pretrained_decoder_holds_still_while_the_trunk_learns_its_codes(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    from neuralgym.world.model import WorldModelConfig

    pretrained = {}
    real = train_mod.pretrain_decoder

    def decoder_of(path: Path) -> dict[str, torch.Tensor]:
        return {k[len("model.decoder.") :]: v for k, v in model_tensors(path).items() if k.startswith("model.decoder.")}

    def keep(model, *a, **k):  # the decoder as pretraining left it
        psnr = real(model, *a, **k)
        pretrained.update({n: p.detach().clone() for n, p in model.decoder.named_parameters()})
        return psnr

    kw = dict(model=WorldModelConfig(background=1, bottleneck=8, decoder_width=8), decoder_pretrain=2)
    with mock.patch.object(train_mod, "pretrain_decoder", keep):
        held = run_train(cartpole_spec, tiny_dataset, tmp_path / "held", steps=3, decoder_hold=3, **kw)
        decoder = decoder_of(held.weights)
        assert decoder.keys() == pretrained.keys()
        assert all(torch.equal(decoder[n], pretrained[n]) for n in pretrained)
        trunk_moved = run_train(cartpole_spec, tiny_dataset, tmp_path / "free", steps=3, decoder_hold=1, **kw)
        decoder = decoder_of(trunk_moved.weights)
        assert any(not torch.equal(decoder[n], pretrained[n]) for n in pretrained)


def test_a_spec_says_how_its_world_is_trained(tmp_path: Path) -> None:
    from neuralgym.training.config import train_config
    from neuralgym.world.catalog import get_spec

    base = Path("envs/cartpole.toml").read_text().replace('file = "cartpole.safetensors"', 'file = "w.safetensors"')
    spec_path = tmp_path / "mine.toml"
    spec_path.write_text(base + "\n[train]\nsteps = 1234\ncontext_noise = 0.02\n\n[train.model]\nbottleneck = 32\n")
    cfg = train_config(get_spec(spec_path), steps=10, seed=None)
    assert cfg.steps == 10 and cfg.context_noise == 0.02 and cfg.seed == 0  # flags over the table, None ignored
    assert cfg.model.bottleneck == 32 and cfg.model.background == TrainConfig().model.background
    assert train_config(get_spec("cartpole")) == TrainConfig()  # no [train]: the defaults
    spec_path.write_text(base + "\n[train]\nstep = 10\n\n[train.model]\nbottle = 3\n")
    with pytest.raises(ValueError, match=r"unknown keys step, model\.bottle; expected .*steps"):
        train_config(get_spec(spec_path))


def test_object_cells_learn_their_cells_and_runs_started_from_them_keep_them(
    cartpole_spec: WorldSpec, tiny_dataset: Path, tmp_path: Path
) -> None:
    from neuralgym.world.model import WorldModelConfig
    from neuralgym.world.object_cells import OBJECT_CELL_LOCATORS, pong_ball_cells

    cells = WorldModelConfig(background=1, object_cells=1)
    with pytest.raises(ValueError, match="'cartpole' has none"):
        run_train(cartpole_spec, tiny_dataset, tmp_path / "none", steps=1, model=cells)
    # CartPole's cart stands in for an object: the brightest thing off the background
    with mock.patch.dict(OBJECT_CELL_LOCATORS, {"cartpole": pong_ball_cells}):
        run = run_train(cartpole_spec, tiny_dataset, tmp_path / "o", steps=3, lr=0.01, warmup=1, model=cells)
        tensors = model_tensors(run.weights)
        assert tensors["model.object_head.2.weight"].abs().sum() > 0  # the head was taught the cells
        assert tensors["model.object_stamp.weight"].abs().sum() > 0  # the frame learned to use the cell
        assert load_world(run.weights, cartpole_spec).model.config.object_cells == 1
        plain, heads = continued(cartpole_spec, tiny_dataset, tmp_path / "a", run.weights)
        for again in (plain, heads):
            assert load_world(again.weights, cartpole_spec).model.config.object_cells == 1
        kept = model_tensors(heads.weights)  # heads-only: the object head and stamp are frame parts
        assert all(torch.equal(kept[k], v) for k, v in tensors.items() if k.startswith("model.object_"))
