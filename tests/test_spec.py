"""World specs: the shipped ones load, bad ones fail naming the field, lookups work.
Also the CLI's spec-facing parts: ``neuralgym worlds`` and its error lines."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import neuralgym.tools.cli as cli
from neuralgym.tools.cli import main as cli_main
from neuralgym.world.catalog import all_specs, get_spec
from neuralgym.world.parse import load_spec, parse_spec
from neuralgym.world.spec import ENVS_DIR, SpecError, WorldSpec

MINIMAL: dict[str, Any] = {
    "name": "Toy",
    "source": {"id": "CartPole-v1"},
    "actions": {"kind": "discrete", "values": [0, 1]},
}

SHIPPED = sorted(ENVS_DIR.glob("*.toml"))


def with_change(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with ``a.b`` set to ``value`` (or deleted when value is ``...``)."""
    data = copy.deepcopy(MINIMAL)
    *parents, leaf = path.split(".")
    table = data
    for p in parents:
        table = table.setdefault(p, {})
    if value is ...:
        del table[leaf]
    else:
        table[leaf] = value
    return data


def test_cartpole_spec_loads(cartpole_spec: WorldSpec) -> None:
    s = cartpole_spec
    assert (s.key, s.name, s.source_id) == ("cartpole", "CartPole", "CartPole-v1")
    assert s.obs_shape == (64, 64, 1)
    assert s.actions.kind == "discrete" and s.actions.n == 2 and s.actions.values == (0, 1)
    assert s.context_length == 16
    assert s.dream_id == "neuralgym/CartPole-v0"
    assert s.real_id == "neuralgym/CartPole-real-v0"
    assert s.weights_path.name == "cartpole.safetensors"
    assert s.play.render_fps == 50 and s.max_episode_steps == 500
    assert s.drift.policy in ("none", "truncate", "reanchor")
    assert s.path is not None and s.path.name == "cartpole.toml"
    assert s.actions.mirror == (1, 0)  # left-right symmetric: the pushes swap


def test_action_mirror_pairs_actions_both_ways() -> None:
    three = {"kind": "discrete", "values": [0, 1, 2]}
    assert parse_spec(with_change("actions", {**three, "mirror": [0, 2, 1]}), "toy").actions.mirror == (0, 2, 1)
    assert parse_spec(MINIMAL, "toy").actions.mirror is None
    with pytest.raises(SpecError, match="pairs actions both ways"):  # a cycle is not a mirror
        parse_spec(with_change("actions", {"kind": "discrete", "values": [0, 1, 2], "mirror": [1, 2, 0]}), "toy")
    with pytest.raises(SpecError, match="'mirror' is supported for discrete actions only"):
        parse_spec(with_change("actions", {"kind": "box", "low": [-1], "high": [1], "mirror": [0]}), "toy")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_spec_is_valid(path: Path) -> None:
    spec = load_spec(path)
    h, w, c = spec.obs_shape
    assert min(h, w) >= 36 and c in (1, 3)
    assert spec.key == path.stem.lower()
    assert 2 <= spec.context_length <= 32


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(MINIMAL, "toy")
    assert spec.obs_shape == (64, 64, 3)
    assert spec.context_length == 4
    assert spec.weights_file == "toy.safetensors"
    assert spec.collect_policy == "random"


@pytest.mark.parametrize(
    ("change", "value", "field"),
    [
        ("name", ..., "'name'"),
        ("name", "lowercase", "'name'"),
        ("source.id", ..., "'id'"),
        ("preprocess.crop", [100, 50, 0, 600], "'crop'"),  # top >= bottom
        ("preprocess.crop", [0, 100, 0], "'crop'"),  # three numbers
        ("preprocess.crop", [-1, 100, 0, 600], "'crop'"),
        ("preprocess.size", [35, 64], "'size'"),
        ("preprocess.size", [64, 20], "'size'"),
        ("preprocess.frame_skip", 0, "'frame_skip'"),
        ("preprocess.reset_noops", -1, "'reset_noops'"),
        ("source.module", 3, "'module'"),
        ("preprocess.frame_source", "camera", "'frame_source'"),
        ("actions.kind", "continuous", "'kind'"),
        ("actions.kind", ..., "'kind'"),
        ("actions.values", [], "'values'"),
        ("model.context_length", 1, "'context_length'"),
        ("model.context_length", 33, "'context_length'"),
        ("model.context_length", "four", "'context_length'"),
        ("drift.policy", "explode", "'policy'"),
        ("episode.max_steps", 0, "'max_steps'"),
        ("actions.mirror", [0, 0], "'mirror'"),  # not a permutation
        ("actions.mirror", [1], "'mirror'"),  # not one entry per action
        ("actions.mirror", [1, "0"], "'mirror'"),
        ("actions.mirror", [True, False], "'mirror'"),
    ],
)
def test_validation_error_names_the_field(change: str, value: Any, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        parse_spec(with_change(change, value), "toy", Path("envs/toy.toml"))


def test_box_actions_need_low_below_high() -> None:
    data = with_change("actions", {"kind": "box", "low": [0.0, 1.0], "high": [1.0, 1.0]})
    with pytest.raises(SpecError, match="'low' and 'high'"):
        parse_spec(data, "toy")
    ok = parse_spec(with_change("actions", {"kind": "box", "low": [-1, 0], "high": [1, 1]}), "toy")
    assert ok.actions.kind == "box" and ok.actions.n == 2 and ok.actions.noop == (0.0, 0.0)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "Broken"\n[source\nid = 3\n')
    with pytest.raises(SpecError, match="broken.toml.*not valid TOML"):
        load_spec(bad)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no world spec"):
        load_spec(tmp_path / "nothing.toml")


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError)


def test_all_specs_reads_a_folder(tmp_path: Path) -> None:
    (tmp_path / "toy.toml").write_text(
        'name = "Toy"\n[source]\nid = "CartPole-v1"\n[actions]\nkind = "discrete"\nvalues = [0, 1]\n'
    )
    (tmp_path / "notes.txt").write_text("not a spec")
    specs = all_specs(tmp_path)
    assert list(specs) == ["toy"] and specs["toy"].name == "Toy"


@pytest.mark.parametrize(
    "query", ["cartpole", "CartPole", "CARTPOLE", "neuralgym/CartPole-v0", "neuralgym/CartPole-real-v0", "CartPole-v0"]
)
def test_get_spec_by_key_name_or_id(query: str) -> None:
    assert get_spec(query).key == "cartpole"


def test_unknown_world_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown world 'atlantis'.*cartpole"):
        get_spec("atlantis")


# ---------------------------------------------------------------- the CLI's spec-facing side


def test_cli_worlds_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["worlds", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON object and nothing else on stdout
    rows = {w["key"]: w for w in report["worlds"]}
    assert set(rows) == set(all_specs())
    cp = rows["cartpole"]
    assert cp["dream_id"] == "neuralgym/CartPole-v0" and cp["real_id"] == "neuralgym/CartPole-real-v0"
    assert cp["obs_shape"] == [64, 64, 1] and cp["action_space"] == "Discrete(2)" and cp["context_length"] == 16
    assert cp["weights_file"].endswith("cartpole.safetensors") and isinstance(cp["weights_exist"], bool)


def test_cli_worlds_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["worlds"]) == 0
    out = capsys.readouterr().out
    assert "neuralgym/CartPole-v0" in out and "Discrete(2)" in out and "cartpole.safetensors" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "atlantis", "--data", "nowhere"], "unknown world 'atlantis'"),
        (["collect", "cartpole", "--steps", "-3"], "--steps"),
        (["collect", "cartpole"], "--steps"),
        (["train", "cartpole", "--lr", "nan"], "--lr"),
        (["frobnicate"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err


@pytest.mark.parametrize("command", [[], ["worlds"], ["collect"], ["train"], ["play"], ["eval"], ["bench"]])
def test_cli_help_for_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([*command, "--help"]) == 0
    assert "usage: neuralgym" in capsys.readouterr().out


def test_cli_top_level_help_lists_every_contract_verb(capsys: pytest.CaptureFixture[str]) -> None:
    cli_main(["--help"])
    out = capsys.readouterr().out
    for verb in ("worlds", "collect", "train", "play", "eval", "bench"):
        assert f"    {verb} " in out


def test_cli_unimportable_face_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A face whose module cannot be imported still shows in --help and fails with one line."""
    monkeypatch.setitem(cli.LAZY_COMMANDS, "play", ("neuralgym._no_such_face", "play a world"))
    assert cli_main(["--help"]) == 0
    assert "    play " in capsys.readouterr().out
    assert cli_main(["play", "--help"]) == 0
    assert "unavailable" in capsys.readouterr().out
    assert cli_main(["play", "cartpole", "--fps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: `neuralgym play` is unavailable") and "_no_such_face" in err[0]
    assert cli_main(["worlds", "--json"]) == 0  # the other commands do not care


def test_python_dash_m_neuralgym_prints_only_json(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    """``python -m neuralgym`` works (torchrun needs it) and --json keeps stdout pure."""
    proc = subprocess.run(
        [sys.executable, "-m", "neuralgym", "worlds", "--json"],
        env=subprocess_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cartpole" in {w["key"] for w in json.loads(proc.stdout)["worlds"]}
    bad = subprocess.run(
        [sys.executable, "-m", "neuralgym", "collect", "atlantis", "--steps", "5"],
        env=subprocess_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().startswith("error: unknown world 'atlantis'") and "Traceback" not in bad.stderr
