"""`neuralgym learn`: the loop's phases, its budget, its folder, and resuming after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuralgym.tools.learn import STATE, LearnConfig, learn, learn_config
from neuralgym.training.data import episode_paths, load_episode
from neuralgym.world.catalog import get_spec

TINY_AGENT = {"timesteps": 256, "n_envs": 2, "members": 1, "mirror": False, "compile": False, "ppo": {"batch_size": 64}}


def tiny(**changes):
    return {
        "real_steps": 2600,
        "iterations": 2,
        "eval_episodes": 2,
        "world_steps": 2,
        "n_envs": 2,
        "agent": TINY_AGENT,
        **changes,
    }


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("learn") / "cartpole"
    return out, learn("cartpole", out, progress=False, **tiny())


def test_the_loop_runs_its_phases_within_the_budget(cartpole_run: tuple[Path, dict]) -> None:
    out, report = cartpole_run
    spec = get_spec("cartpole")
    its = report["iterations"]
    assert [it["iteration"] for it in its] == [0, 1]
    assert its[0]["world"] == str(spec.weights_path)  # starts from the shipped world
    assert its[1]["world"] == str(out / "worlds" / "world_1.safetensors") and Path(its[1]["world"]).is_file()
    assert "collect_steps" in its[0] and "collect_steps" not in its[1]  # nothing collected after the last agent
    # every real step is on the books: evaluation + collection, and all of it is data
    data_steps = sum(len(load_episode(p, "cartpole")) for p in episode_paths(out / "data"))
    assert report["real_steps"] == sum(it["eval_steps"] + it.get("collect_steps", 0) for it in its)
    assert data_steps <= report["real_steps"] <= 2600
    for it in its:
        assert len(it["real_returns"]) == 2 and it["real_return"] == pytest.approx(np.mean(it["real_returns"]))
    best = report["best_iteration"]
    assert report["real_return"] == max(it["real_return"] for it in its) == its[best]["real_return"]
    kept = json.loads((out / "agent.json").read_text())
    assert kept["weights"] == str(Path(its[best]["world"]).resolve())  # the agent's encoder is its world's
    assert kept["members"] == ["agent.zip"]  # the kept agent loads from its own files
    from neuralgym.agents.ppo import evaluate_agent

    assert evaluate_agent(out / "agent.zip", "neuralgym/CartPole-real-v0", episodes=1)["episodes"] == 1
    assert json.loads((out / "report.json").read_text())["real_steps"] == report["real_steps"]
    assert any((out / "tb").iterdir())
    # each agent after the first continues the last one's training
    inits = [json.loads(Path(f"{it['agent']}.json").read_text())["init_from"] for it in its]
    assert inits == [None, str(Path(f"{its[0]['agent']}.zip").resolve())]
    # the world update trains the way the shipped world was trained (its context noise), on its own schedule
    from neuralgym.world.weights import read_metadata

    def trained(path: str) -> dict:
        return json.loads(read_metadata(Path(path)).get("neuralgym.info", "{}"))["train"]

    shipped, update = trained(its[0]["world"]), trained(its[1]["world"])
    assert shipped["context_noise"] > 0 and update["context_noise"] == shipped["context_noise"]
    assert update["steps"] == 2 and update["decoder_pretrain"] == 0


def test_resume_skips_finished_phases_and_refuses_other_settings(cartpole_run: tuple[Path, dict]) -> None:
    out, report = cartpole_run
    again = learn("cartpole", out, resume=True, progress=False, **tiny())
    assert again["real_steps"] == report["real_steps"] and again["iterations"] == report["iterations"]
    with pytest.raises(FileExistsError, match="pass --resume"):
        learn("cartpole", out, progress=False, **tiny())
    with pytest.raises(ValueError, match="other settings"):
        learn("cartpole", out, resume=True, progress=False, **tiny(world_steps=3))


def test_a_killed_collection_restarts_from_its_first_episode(cartpole_run: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    src, report = cartpole_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    state = json.loads((out / STATE).read_text())
    it0 = state["iterations"][0]
    first = it0["collect_first_episode"]
    kept = [p.name for p in episode_paths(out / "data") if int(p.stem.split("_")[1]) < first]
    # as if killed in the middle of iteration 0's collection: its episodes half written, later phases never run
    for key in ("collect_steps", "collect_returns", "collect_seconds"):
        del it0[key]
    state["iterations"] = [it0]
    state["real_steps"] = it0["real_steps_after_eval"]
    state["done"] = False
    (out / STATE).write_text(json.dumps(state))
    (out / "worlds" / "world_1.safetensors").unlink()
    again = learn("cartpole", out, resume=True, progress=False, **tiny())
    assert [p.name for p in episode_paths(out / "data")][: len(kept)] == kept
    assert (
        again["iterations"][0]["collect_steps"] == report["iterations"][0]["collect_steps"]
    )  # the same episodes again
    assert again["real_steps"] <= 2600


def test_a_finished_run_gains_its_real_trained_reference(cartpole_run: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    src, report = cartpole_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    data_before = sorted(p.name for p in episode_paths(out / "data"))
    again = learn("cartpole", out, resume=True, progress=False, reference=True, **tiny())
    ref = again["reference"]
    assert ref["real_steps"] == report["real_steps"] and ref["episodes"] == 2
    assert {"reference_return", "agent_return"} <= set(ref) and ref["reference_return"] >= 1.0
    meta = json.loads((out / "agents" / "reference.json").read_text())
    assert meta["env"] == "neuralgym/CartPole-real-v0" and meta["timesteps"] == report["real_steps"]
    assert sorted(p.name for p in episode_paths(out / "data")) == data_before  # a measurement: nothing recorded
    assert again["real_steps"] == report["real_steps"]
    assert learn("cartpole", out, resume=True, progress=False, reference=True, **tiny())["reference"] == ref


def test_settings_come_from_the_spec_and_bad_ones_are_named() -> None:
    cfg = learn_config(get_spec("cartpole"))
    assert cfg.iterations == 2 and cfg.agent["members"] == 1 and cfg.agent["mirror"] is False
    assert cfg.agent["sticky"] == 0.25 and cfg.agent_continues  # the loop's agent: sticky, one run through
    assert learn_config(get_spec("cartpole"), agent={"timesteps": 5}).agent == {**cfg.agent, "timesteps": 5}
    assert learn_config(get_spec("pong")) == LearnConfig()  # no [learn] table: the defaults
    with pytest.raises(ValueError, match="behaviour_share must be in"):
        LearnConfig(behaviour_share=2.0)
    with pytest.raises(ValueError, match="agent_continues must be true or false"):
        LearnConfig(agent_continues="yes")
    with pytest.raises(ValueError, match="does not cover"):
        learn("cartpole", "/nonexistent/never-written", progress=False, **tiny(real_steps=100))


def test_a_new_world_starts_from_scratch(tmp_path: Path) -> None:
    from neuralgym.tools.newworld import write_new_spec

    spec_path = write_new_spec("Acrobot-v1", out=tmp_path / "acrobot.toml")
    spec_path.write_text(spec_path.read_text().replace("decoder_pretrain = 3000", "decoder_pretrain = 4"))
    report = learn(
        str(spec_path),
        tmp_path / "run",
        progress=False,
        **tiny(real_steps=5 * 500 + 2 * 2 * 500, first_steps=300, first_world_steps=3, iterations=2),
    )
    its = report["iterations"]
    assert its[0]["world"] == str(tmp_path / "run" / "worlds" / "world_0.safetensors")
    from neuralgym.world.weights import read_metadata

    for it in its:  # the first world as the spec's [train] makes it; the update keeps it a bottleneck world
        assert json.loads(read_metadata(Path(it["world"]))["neuralgym.config"])["bottleneck"] == 32
    assert report["real_steps"] <= 5 * 500 + 2 * 2 * 500


def test_the_learn_verb(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from neuralgym.tools.cli import main as cli_main

    assert cli_main(["learn", "--help"]) == 0
    assert "--real-steps" in capsys.readouterr().out
    # a budget that cannot cover the evaluations is refused before anything runs, as one error line
    assert cli_main(["learn", "cartpole", "--real-steps", "10", "--out", str(tmp_path / "run")]) == 2
    assert "does not cover" in capsys.readouterr().err
    assert not (tmp_path / "run" / "data").exists()
