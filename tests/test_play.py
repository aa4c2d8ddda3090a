"""``neuralgym play``: keymaps, pacing and HUD logic without a window, and headless runs."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"  # before anything imports pygame
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import cv2
import gymnasium as gym
import numpy as np
import pygame
import pytest
import torch

import neuralgym  # noqa: F401  (registers the ids)
from neuralgym.common.window import Pacer, Viewer, upscale
from neuralgym.tools.play.app import main
from neuralgym.tools.play.controls import control_keys
from neuralgym.tools.play.hud import FrameStats, HudView, drift_warning, hud_lines
from neuralgym.tools.play.session import EnvUnavailable, Session
from neuralgym.world.catalog import get_spec
from neuralgym.world.keymap import action_for_keys, key_code, keys_to_action, noop_action, parse_keymap
from neuralgym.world.spec import ActionSpec, PlaySpec

from worlds import WORLDS

CARTPOLE = get_spec("cartpole")


def _with(spec, **play_and_actions):
    """A copy of ``spec`` with another keymap and/or action spec."""
    keymap = play_and_actions.pop("keymap", spec.play.keymap)
    actions = play_and_actions.pop("actions", spec.actions)
    return dataclasses.replace(spec, play=PlaySpec(spec.play.render_fps, keymap), actions=actions)


BOX = _with(
    CARTPOLE,
    actions=ActionSpec(kind="box", low=(-1.0, 0.0, 0.0), high=(1.0, 1.0, 1.0), noop=(0.0, 0.0, 0.0)),
    keymap={"left": [-1, 0, 0], "right": [1, 0, 0], "up": [0, 1, 0], "down": [0, 0, 0.8]},
)
L, R, U, D, SPACE = pygame.K_LEFT, pygame.K_RIGHT, pygame.K_UP, pygame.K_DOWN, pygame.K_SPACE


# --------------------------------------------------------------------------- keys


def test_cartpole_keys_to_action():
    assert keys_to_action(CARTPOLE) == {(L,): 0, (R,): 1}


def test_key_names_and_aliases():
    assert key_code("a") == pygame.K_a
    assert key_code("Space") == key_code("fire") == SPACE
    assert key_code("f1") == pygame.K_F1
    assert key_code(".") == pygame.K_PERIOD
    with pytest.raises(ValueError, match="unknown key name 'nokey'"):
        key_code("nokey")


def test_discrete_held_keys():
    spec = _with(
        CARTPOLE,
        actions=ActionSpec(kind="discrete", values=(0, 1, 2, 3), names=("noop", "fire", "up", "upfire"), noop=0),
        keymap={"space": 1, "up": 2, "up+space": 3, "left": 0},
    )
    b = parse_keymap(spec)
    assert keys_to_action(spec)[tuple(sorted((U, SPACE)))] == 3
    assert action_for_keys([], b, spec) == 0
    assert action_for_keys([U], b, spec) == 2
    assert action_for_keys([U, SPACE], b, spec) == 3  # the combo beats its parts
    assert action_for_keys([SPACE, U, L], b, spec) == 3
    assert action_for_keys([pygame.K_z], b, spec) == 0  # unbound keys are ignored
    cb = parse_keymap(CARTPOLE)
    assert action_for_keys([L, R], cb, CARTPOLE) == 1  # ties: the key pressed last wins
    assert action_for_keys([R, L], cb, CARTPOLE) == 0


def test_box_held_keys_sum_and_clip():
    b = parse_keymap(BOX)
    np.testing.assert_allclose(action_for_keys([], b, BOX), [0, 0, 0])
    np.testing.assert_allclose(action_for_keys([U, L], b, BOX), [-1, 1, 0])
    np.testing.assert_allclose(action_for_keys([L, R, D], b, BOX), [0, 0, 0.8])
    table = keys_to_action(BOX)
    assert len(table) == 15  # every combination of the 4 bindings
    np.testing.assert_allclose(table[tuple(sorted((R, U, D)))], [1, 1, 0.8])
    assert all(tuple(sorted(k)) == k for k in table)
    over = _with(BOX, keymap={"up": [0, 0.7, 0], "w": [0, 0.7, 0]})
    w = pygame.K_w
    np.testing.assert_allclose(action_for_keys([U, w], parse_keymap(over), over), [0, 1, 0])  # clipped to the box


def test_bad_keymaps_name_the_entry():
    with pytest.raises(ValueError, match="'left'.*discrete action index in \\[0, 2\\)"):
        parse_keymap(_with(CARTPOLE, keymap={"left": 5}))
    with pytest.raises(ValueError, match="'up'.*list of 3"):
        parse_keymap(_with(BOX, keymap={"up": [0, 1]}))
    with pytest.raises(ValueError, match="same keys"):
        parse_keymap(_with(CARTPOLE, keymap={"a+b": 0, "b+a": 1}))


def test_controls_yield_to_the_keymap():
    codes, rows = control_keys(parse_keymap(CARTPOLE))
    assert codes[SPACE] == "pause" and codes[pygame.K_ESCAPE] == "quit" and codes[pygame.K_TAB] == "switch"
    fire = _with(CARTPOLE, keymap={"space": 1, "left": 0})
    codes, rows = control_keys(parse_keymap(fire))
    assert SPACE not in codes and codes[pygame.K_p] == "pause"
    assert ("P", "pause / resume") in rows


# --------------------------------------------------------------------------- pacing, stats, HUD


def test_pacer_keeps_an_absolute_schedule():
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    pacer = Pacer(50, clock=lambda: now[0], sleep=sleep)
    for work in (0.005, 0.012, 0.0, 0.019):
        now[0] += work
        pacer.wait()
    assert now[0] == pytest.approx(0.005 + 4 * 0.02)  # the schedule starts at the first wait; work does not add up
    now[0] += 0.5  # a stall: restart the schedule instead of bursting
    pacer.wait()
    pacer.wait()
    assert sleeps[-1] == pytest.approx(0.02)


def test_frame_stats():
    stats = FrameStats(recent=3)
    for i in range(11):
        stats.tick(i * 0.02, 0.004)
    s = stats.summary()
    assert s["frames"] == 11 and s["fps"] == pytest.approx(50)
    assert s["frame_ms_mean"] == pytest.approx(20) and s["frame_ms_p99"] == pytest.approx(20)
    assert s["work_ms_mean"] == pytest.approx(4)
    assert stats.recent_fps() == pytest.approx(50)


def test_hud_lines():
    v = HudView(
        world="CartPole",
        dream=True,
        target_fps=50,
        fps=49.9,
        frame_ms=20.0,
        step=7,
        episode_return=7.0,
        last_reward=1.0,
        drift=0.9,
        drift_threshold=0.5,
        dream_step=7,
        last_reset="drift",
        recording="x.mp4",
    )
    rows = hud_lines(v)
    text = "\n".join(t for t, _ in rows)
    assert "DREAM" in text and "49.9" in text and "20.0 ms" in text and "step 7" in text and "+1.00" in text
    assert ("drift   0.9  (thr 0.5)", "warn") in rows
    assert any("drift reset" in t and s == "warn" for t, s in rows)
    assert any(s == "rec" for _, s in rows)
    calm = hud_lines(dataclasses.replace(v, drift=0.1, last_reset="terminated", recording=None))
    assert ("drift   0.1  (thr 0.5)", "text") in calm
    real = "\n".join(t for t, _ in hud_lines(dataclasses.replace(v, dream=False)))
    assert "REAL" in real and "n/a" in real
    assert not drift_warning(1e12, math.inf) and not drift_warning(None, 0.5) and drift_warning(0.6, 0.5)


def test_missing_pygame_is_a_clear_error(monkeypatch):
    from gymnasium.error import DependencyNotInstalled

    from neuralgym.common.window import require_pygame

    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` fail
    with pytest.raises(DependencyNotInstalled, match="pip install pygame-ce"):
        require_pygame()


def test_real_env_human_render_and_keys_to_action():
    env = gym.make(CARTPOLE.real_id, render_mode="human")
    try:
        assert env.get_wrapper_attr("get_keys_to_action")() == {(L,): 0, (R,): 1}
        env.reset(seed=0)
        env.step(1)  # draws into a Viewer window (the dummy video driver here)
    finally:
        env.close()


def test_viewer_shows_frames_headless():
    viewer = Viewer("test", (64, 64))
    assert viewer.screen.get_size() == (512, 512)
    viewer.show(np.zeros((64, 64, 3), np.uint8), fps=1000)
    viewer.close()
    assert upscale(np.arange(4, dtype=np.uint8).reshape(2, 2, 1).repeat(3, 2), 3).shape == (6, 6, 3)


# --------------------------------------------------------------------------- headless runs


def _read_mp4(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame.astype(np.int16))
    cap.release()
    return frames


def _moving(frames: list[np.ndarray]) -> int:
    """Consecutive pairs that differ by more than mp4 coding noise somewhere."""
    return sum(int(np.abs(a - b).max() > 10) for a, b in zip(frames, frames[1:]))


def test_main_real_headless_records(tmp_path, capsys):
    out = tmp_path / "real.mp4"
    threads = torch.get_num_threads()
    rc = main(["cartpole", "--real", "--max-frames", "60", "--fps", "1000", "--record", str(out), "--seed", "0"])
    assert rc == 0
    assert torch.get_num_threads() == threads  # play's --threads does not leak out of main
    summary = capsys.readouterr().out
    assert "60 frames" in summary and "fps" in summary and "p99" in summary
    frames = _read_mp4(out)
    assert len(frames) >= 55
    # With no key held CartPole pushes left and falls in ~10 steps; the first step after
    # each reset moves the cart less than a pixel at 64x64, so ~1 in 10 frames is static.
    assert _moving(frames) >= 0.8 * (len(frames) - 1)


def test_main_bad_world_and_record_path(capsys):
    assert main(["nosuchworld", "--real", "--max-frames", "1"]) == 2
    assert "unknown world" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cartpole", "--record", "out.avi"])


DREAM_READY = CARTPOLE.dream_id in gym.registry and CARTPOLE.weights_path.is_file()
needs_dream = pytest.mark.skipif(
    not DREAM_READY, reason="no registered cartpole dream or no weights/cartpole.safetensors"
)


@needs_dream
def test_main_dream_headless_records(tmp_path):
    out = tmp_path / "dream.mp4"
    rc = main(
        ["cartpole", "--max-frames", "60", "--fps", "1000", "--record", str(out), "--seed", "0", "--device", "cpu"]
    )
    assert rc == 0
    frames = _read_mp4(out)
    assert len(frames) >= 55
    assert _moving(frames) >= 0.8 * (len(frames) - 1)


@needs_dream
def test_switch_real_to_dream_prompts_the_dream(tmp_path):
    session = Session(CARTPOLE, dream=False, seed=0, dream_kwargs={"device": "cpu"})
    try:
        for _ in range(5):
            session.advance(noop_action(CARTPOLE))
        last_real = session.frame
        assert "switched to dream" == session.switch()
        assert session.dream and session.last_reset == "switch" and session.frame.shape == (64, 64, 3)
        np.testing.assert_array_equal(session.frame, last_real)  # prompted with the real frames
        session.advance(1)
        assert "drift" in session.info
        assert session.switch() == "switched to real" and not session.dream
    finally:
        session.close()


@pytest.mark.skipif(CARTPOLE.dream_id not in gym.registry, reason="dream id not registered")
def test_missing_dream_weights_is_a_clear_error(tmp_path, capsys):
    rc = main(["cartpole", "--weights", str(tmp_path / "missing.safetensors"), "--max-frames", "1"])
    assert rc == 1
    assert "--real" in capsys.readouterr().err
    session = Session(CARTPOLE, dream=False, seed=0, dream_kwargs={"weights": str(tmp_path / "missing.safetensors")})
    try:
        with pytest.raises(EnvUnavailable, match="could not make neuralgym/CartPole-v0"):
            session.switch()
        session.advance(0)  # still playing the real env
        assert not session.dream and session.step_count == 1
    finally:
        session.close()


def test_no_display_writes_a_dream_vs_real_gif(tmp_path, monkeypatch):
    """The README's main job on a machine with no display: a GIF instead of an invisible window."""
    if (
        not Path("weights/cartpole.safetensors").exists()
        and not (Path(__file__).parents[1] / "weights" / "cartpole.safetensors").exists()
    ):
        pytest.skip("no shipped CartPole weights")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.chdir(tmp_path)
    assert main(["cartpole", "--max-frames", "20", "--device", "cpu", "--seed", "0"]) == 0
    gif = tmp_path / "cartpole_dream_vs_real.gif"
    assert gif.is_file() and gif.stat().st_size > 1000


@pytest.mark.parametrize("spec", WORLDS)
def test_every_world_plays_headless_and_records(spec, tmp_path, capsys):
    """Each shipped world's dream plays with its keymap parsed and every frame recorded."""
    parse_keymap(spec)  # the spec's keymap names real keys and valid actions
    out = tmp_path / f"{spec.key}.mp4"
    assert main([spec.key, "--max-frames", "30", "--fps", "1000", "--record", str(out), "--seed", "0"]) == 0
    assert "30 frames" in capsys.readouterr().out
    assert len(_read_mp4(out)) >= 28
