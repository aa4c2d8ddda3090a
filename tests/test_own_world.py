"""A world of your own: specs from anywhere, `neuralgym new`, outputs outside the package,
the drift threshold calibrated by training, the episode limit from gym.make, --threads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import neuralgym
from neuralgym.tools.cli import main as cli_main
from neuralgym.tools.train import default_train_out
from neuralgym.world.catalog import WORLDS_PATH_ENV, all_specs, get_spec, search_dirs, user_worlds_dir
from neuralgym.world.drift import DriftResetPolicy, DriftSpec
from neuralgym.world.parse import load_spec
from neuralgym.world.spec import ENVS_DIR, WEIGHTS_DIR, SpecError

REPO_ROOT = Path(__file__).resolve().parent.parent
TOY = (
    'name = "{name}"\n[source]\nid = "CartPole-v1"\n[actions]\nkind = "discrete"\nvalues = [0, 1]\n'
    '[weights]\nfile = "{weights}"\n'
)


def toy(folder: Path, key: str = "toy", name: str = "Toy", weights: str = "toy.safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.toml"
    path.write_text(TOY.format(name=name, weights=weights))
    return path


@pytest.fixture(autouse=True)
def _forget_registered_worlds(monkeypatch: pytest.MonkeyPatch):
    """Worlds a test registers from its tmp folder do not outlive it."""
    import neuralgym.world.catalog as spec_mod

    monkeypatch.setattr(spec_mod, "_REGISTERED", {})
    before = set(gym.registry)
    yield
    for env_id in set(gym.registry) - before:
        del gym.registry[env_id]


@pytest.fixture()
def no_user_worlds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty search path and user folder (a developer's own worlds stay out of the test)."""
    monkeypatch.delenv(WORLDS_PATH_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    return tmp_path


# ------------------------------------------------------------------ specs from anywhere
def test_spec_path_resolves_weights_next_to_it(no_user_worlds: Path) -> None:
    path = toy(no_user_worlds / "mine")
    spec = get_spec(str(path))
    assert spec.key == "toy" and not spec.shipped
    assert spec.weights_path == path.parent.resolve() / "toy.safetensors"
    absolute = toy(no_user_worlds / "abs", weights=str(no_user_worlds / "w" / "x.safetensors"))
    assert get_spec(absolute).weights_path == no_user_worlds / "w" / "x.safetensors"


def test_shipped_worlds_keep_package_weights() -> None:
    spec = get_spec("cartpole")
    assert spec.shipped and spec.weights_path == WEIGHTS_DIR / "cartpole.safetensors"


def test_missing_spec_path_is_one_clear_error(no_user_worlds: Path) -> None:
    with pytest.raises(SpecError, match="no world spec at"):
        get_spec(str(no_user_worlds / "nothing.toml"))


def test_search_path_and_user_folder(no_user_worlds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = no_user_worlds / "a", no_user_worlds / "b"
    toy(a, "alpha", "Alpha")
    toy(b, "alpha", "AlphaTwo")  # the same key later in the path: the first one wins
    toy(b, "beta", "Beta")
    (b / "broken.toml").write_text("name = 'nope'\n")  # skipped, with a warning; named on lookup
    toy(user_worlds_dir(), "gamma", "Gamma")
    monkeypatch.setenv(WORLDS_PATH_ENV, f"{a}{__import__('os').pathsep}{b}")
    assert search_dirs()[0] == ENVS_DIR and search_dirs()[-1] == user_worlds_dir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        specs = all_specs()
    assert {"cartpole", "alpha", "beta", "gamma"} <= set(specs) and "broken" not in specs
    assert specs["alpha"].name == "Alpha" and specs["gamma"].weights_path.parent == user_worlds_dir()
    assert any("broken.toml" in str(w.message) for w in caught)
    assert get_spec("Beta").key == "beta" and get_spec("neuralgym/Gamma-v0").key == "gamma"
    with pytest.raises(SpecError, match="broken.toml"):
        get_spec("broken")


def test_user_worlds_dir_follows_xdg(no_user_worlds: Path) -> None:
    if sys.platform != "win32":
        assert user_worlds_dir() == no_user_worlds / "xdg" / "neuralgym" / "worlds"


def test_register_world_refuses_a_shipped_name(no_user_worlds: Path) -> None:
    with pytest.raises(SpecError, match="shipped"):
        neuralgym.register_world(toy(no_user_worlds, "mycart", "CartPole"))
    assert gym.registry["neuralgym/CartPole-v0"].kwargs["world"] == "cartpole"


def test_cli_worlds_lists_a_spec_file(no_user_worlds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = toy(no_user_worlds / "w", "delta", "Delta")
    assert cli_main(["worlds", str(path), "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["worlds"]}
    assert rows["delta"]["spec_file"] == str(path.resolve()) and rows["delta"]["shipped"] is False
    assert rows["cartpole"]["shipped"] is True


# ------------------------------------------------------------------ outputs outside the package
def test_train_default_out_is_under_runs() -> None:
    assert default_train_out("acrobot") == Path("runs") / "acrobot" / "acrobot.safetensors"


@pytest.mark.parametrize("out", [WEIGHTS_DIR / "cartpole.safetensors", WEIGHTS_DIR / "new.safetensors"])
def test_train_refuses_to_write_shipped_weights(out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (WEIGHTS_DIR / "cartpole.safetensors").stat().st_mtime_ns
    assert cli_main(["train", "cartpole", "--data", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and "shipped weights" in err and err.count("\n") == 1
    assert (WEIGHTS_DIR / "cartpole.safetensors").stat().st_mtime_ns == before and not (
        WEIGHTS_DIR / "new.safetensors"
    ).exists()


def test_wheel_ships_only_the_declared_worlds() -> None:
    text = (REPO_ROOT / "setup.py").read_text()
    assert 'WORLDS = ("cartpole", "pong", "carracing")' in text and "glob(" not in text
    manifest = (REPO_ROOT / "MANIFEST.in").read_text()
    assert "recursive-include" not in manifest and "weights/cartpole.safetensors" in manifest


def test_video_extra_declared() -> None:
    assert 'video = ["moviepy"]' in (REPO_ROOT / "pyproject.toml").read_text()


# ------------------------------------------------------------------ drift threshold
def test_calibrated_threshold_applies_only_without_the_specs() -> None:
    assert DriftResetPolicy.from_spec(DriftSpec(), 12.5).threshold == 12.5
    assert DriftResetPolicy.from_spec(DriftSpec(), None).threshold == float("inf")
    assert DriftResetPolicy.from_spec(DriftSpec(threshold=6.2, threshold_set=True), 12.5).threshold == 6.2
    assert DriftResetPolicy.resolve("reanchor", DriftSpec(), 3.0) == DriftResetPolicy("reanchor", 3.0)


def test_shipped_specs_set_their_threshold() -> None:
    for spec in all_specs(ENVS_DIR).values():
        assert spec.drift.threshold_set


# ------------------------------------------------------------------ episode limit, threads, ETA
def test_gym_make_max_episode_steps_sets_the_dreams_limit(cartpole_spec) -> None:
    if not cartpole_spec.weights_path.is_file():
        pytest.skip("no CartPole weights")
    env = gym.make(cartpole_spec.dream_id, max_episode_steps=100_000, drift_policy="none")
    assert env.spec.max_episode_steps == 100_000 and env.unwrapped.core.max_episode_steps > 100_000
    env.close()
    env = gym.make(cartpole_spec.dream_id)
    assert env.spec.max_episode_steps == cartpole_spec.max_episode_steps
    env.close()
    vec = gym.make_vec(cartpole_spec.dream_id, num_envs=2)
    assert vec.unwrapped.core.max_episode_steps == cartpole_spec.max_episode_steps
    vec.close()


@pytest.mark.parametrize("command", ["bench", "eval", "exploit", "collect"])
def test_threads_option(command: str) -> None:
    from neuralgym.tools.cli import build_parser

    argv = [command, "cartpole", "--threads", "1"] + (["--steps", "1"] if command == "collect" else [])
    assert build_parser(argv).parse_args(argv).threads == 1


def testeta_line() -> None:
    from neuralgym.training.config import TrainConfig
    from neuralgym.training.eta import eta_line

    line = eta_line(TrainConfig(steps=100, rollout_max=8), 0, 10, 5.0)
    assert line.startswith("~0.50 s per step") and "ETA" in line and "90 more steps" in line


# ------------------------------------------------------------------ new -> collect -> train -> gym.make
def test_new_writes_a_loadable_spec(tmp_path: Path) -> None:
    from neuralgym.tools.newworld import write_new_spec

    path = write_new_spec("Acrobot-v1", tmp_path / "acrobot.toml")
    spec = load_spec(path)
    assert spec.name == "Acrobot" and spec.actions.kind == "discrete" and spec.actions.n == 3
    assert spec.actions.names[1] == "torque 0" and spec.actions.noop == 1 and spec.play.keymap
    assert spec.preprocess.frame_source == "render" and spec.obs_shape == (64, 64, 1) and spec.context_length == 4
    assert not spec.drift.threshold_set and spec.collect_policy == "random-hold"
    from neuralgym.training.config import train_config

    train = train_config(spec)  # a world that holds: decoded from a code, its decoder pretrained
    assert train.model.bottleneck == 32 and train.decoder_pretrain > 0 and train.context_noise > 0
    with pytest.raises(SpecError, match="exists"):
        write_new_spec("Acrobot-v1", path)
    with pytest.raises(SpecError, match="shipped"):
        write_new_spec("CartPole-v1", tmp_path / "cartpole.toml")
    box = load_spec(write_new_spec("Pendulum-v1", tmp_path / "pendulum.toml"))
    assert box.actions.kind == "box" and box.actions.low == (-2.0,)


def test_own_world_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`new` -> `collect` -> `train` -> `gym.make` for Acrobot, the spec outside the repository,
    the package's envs/ and weights/ untouched."""
    package_files = sorted(p.name for p in [*ENVS_DIR.iterdir(), *WEIGHTS_DIR.iterdir()])
    monkeypatch.chdir(tmp_path)
    assert cli_main(["new", "Acrobot-v1"]) == 0
    spec_path = tmp_path / "acrobot.toml"
    text = spec_path.read_text().replace("max_steps = 500", "max_steps = 60")  # short episodes: a split
    spec_path.write_text(text)
    assert cli_main(["collect", "acrobot.toml", "--steps", "300", "--no-progress", "--threads", "1"]) == 0
    assert (
        cli_main(
            [
                "train",
                "acrobot.toml",
                "--steps",
                "12",
                "--batch-size",
                "8",
                "--rollout-max",
                "2",
                "--decoder-pretrain",
                "4",
                "--no-progress",
                "--threads",
                "1",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    weights = tmp_path / "runs" / "acrobot" / "acrobot.safetensors"
    assert Path(report["weights"]) == Path("runs/acrobot/acrobot.safetensors") and weights.is_file()
    assert "s per step" in captured.err and "ETA" in captured.err
    from neuralgym.world.weights import read_metadata

    drift = json.loads(read_metadata(weights)["neuralgym.info"])["drift"]
    assert drift["frames"] > 0 and (drift["threshold"] is None or drift["threshold"] >= 0)

    ids = neuralgym.register_world(spec_path)
    assert ids == ["neuralgym/Acrobot-v0", "neuralgym/Acrobot-real-v0"]
    env = gym.make("neuralgym/Acrobot-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 1)
    assert env.unwrapped.weights_path.resolve() == weights.resolve()
    assert env.unwrapped.core.model.config.bottleneck == 32  # the spec's [train.model]
    expected = drift["threshold"] if drift["threshold"] is not None else float("inf")
    assert env.unwrapped.core.drift_policy.threshold == pytest.approx(expected)
    obs, reward, terminated, truncated, info = env.step(1)
    assert obs.shape == (64, 64, 1) and "drift" in info
    env.close()
    assert sorted(p.name for p in [*ENVS_DIR.iterdir(), *WEIGHTS_DIR.iterdir()]) == package_files


def _installed_copy(target: Path) -> None:
    """``pip install`` (not editable) of a copy of the checkout's files (tracked, or new and not
    ignored) into ``target``: the build writes nothing into the checkout, and the package
    imports from ``target`` alone."""
    source = target.parent / "source"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        if (REPO_ROOT / name).is_file():  # a file deleted but not yet committed is skipped
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    shutil.rmtree(source)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def test_readme_walkthrough_with_an_installed_package(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The README's "Making a world" walkthrough, as a user runs it: the package installed
    non-editable, the spec in a folder of the user's, every command a fresh process there
    (`new`, `collect`, `train`, `eval`, headless `play`, then `gym.make` through
    NEURALGYM_WORLDS); nothing is written into the installed package or the checkout."""
    site = tmp_path / "site-packages"
    _installed_copy(site)
    installed = _tree(site)
    checkout = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    world = tmp_path / "acrobot"
    world.mkdir()
    env = {
        **subprocess_env,
        "PYTHONPATH": str(site),  # the installed copy, not the checkout
        "PYTHONDONTWRITEBYTECODE": "1",
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        WORLDS_PATH_ENV: "",
    }

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=world, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
        return done.stdout

    where = run("-c", "import neuralgym; print(neuralgym.__file__)").strip()
    assert Path(where).is_relative_to(site), where
    run("-m", "neuralgym", "new", "Acrobot-v1")
    spec = world / "acrobot.toml"
    spec.write_text(spec.read_text().replace("max_steps = 500", "max_steps = 60"))  # short episodes: a split
    run("-m", "neuralgym", "collect", "acrobot.toml", "--steps", "300", "--no-progress")
    run("-m", "neuralgym", "train", "acrobot.toml", "--steps", "8", "--batch-size", "8", "--rollout-max", "2",
        "--decoder-pretrain", "4", "--no-progress")  # fmt: skip
    assert (world / "runs" / "acrobot" / "acrobot.safetensors").is_file()
    report = json.loads(run("-m", "neuralgym", "eval", "acrobot.toml", "--episodes", "2", "--horizon", "5", "--json"))
    assert report["episodes"] == 2
    run("-m", "neuralgym", "play", "acrobot.toml", "--max-frames", "5", "--fps", "1000")
    code = "import gymnasium as gym, neuralgym; e = gym.make('neuralgym/Acrobot-v0'); print(e.reset(seed=0)[0].shape)"
    env[WORLDS_PATH_ENV] = str(world)
    assert "(64, 64, 1)" in run("-c", code)
    assert _tree(site) == installed
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
        == checkout
    )
