"""The metrics that see what decides a game: plausibility (nearest real frame), coherence,
object fidelity and reward events; and the model parts they asked for (a static
background, reward as a classifier)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import neuralgym  # noqa: F401
from neuralgym.common.images import psnr_from_mse
from neuralgym.metrics.coherence import CoherenceRun, run_coherence, summarize_coherence, write_strip
from neuralgym.metrics.lockstep import Lockstep, object_fidelity, reward_events
from neuralgym.metrics.objects import pong_ball, pong_paddle, within
from neuralgym.training.losses import reward_class_values, reward_class_weights
from neuralgym.world.catalog import get_spec
from neuralgym.world.frameindex import RealFrameIndex
from neuralgym.world.model import WorldModel, WorldModelConfig

# ------------------------------------------------------------------ nearest real frame


def test_index_finds_the_exact_nearest_frame() -> None:
    rng = np.random.default_rng(0)
    bank = rng.integers(0, 256, size=(300, 16, 16, 1), dtype=np.uint8)
    index = RealFrameIndex(bank, candidates=300)
    queries = np.clip(bank[[3, 77, 299]].astype(int) + rng.integers(-3, 4, size=(3, 16, 16, 1)), 0, 255).astype(
        np.uint8
    )
    best, db = index.nearest(queries)
    brute = ((bank[None].astype(float) - queries[:, None].astype(float)) ** 2).reshape(3, 300, -1).mean(axis=2)
    assert best.tolist() == brute.argmin(axis=1).tolist()
    assert np.allclose(db, psnr_from_mse(brute.min(axis=1)))
    assert index.nearest(bank[[5]])[1][0] == 100.0  # a frame of the index itself: capped at 100 dB


def test_index_refuses_frames_of_another_shape() -> None:
    index = RealFrameIndex(np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        index.nearest(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        RealFrameIndex(np.zeros((4, 8, 8, 1), np.float32))


# ------------------------------------------------------------------------- objects


def pong_frame(ball: tuple[int, int] | None, paddle_row: int = 30) -> np.ndarray:
    f = np.full((64, 64, 1), 87, np.uint8)
    f[paddle_row - 3 : paddle_row + 4, 56:58] = 148  # the player's paddle
    f[10:17, 6:8] = 148  # the opponent's
    if ball is not None:
        f[ball[0] : ball[0] + 2, ball[1] : ball[1] + 2] = 147
    return f


def test_pong_ball_and_paddle_are_found() -> None:
    assert pong_ball(pong_frame(None)) is None
    r, c = pong_ball(pong_frame((20, 30)))
    assert abs(r - 20.5) < 1e-6 and abs(c - 30.5) < 1e-6
    assert abs(pong_paddle(pong_frame(None, paddle_row=40)) - 40) < 1e-6
    faint = pong_frame(None)
    faint[20, 30] = 100  # one dim pixel is no ball
    assert pong_ball(faint) is None
    assert (
        within((1.0, 1.0), (2.0, 2.5), 2.0)
        and not within((1.0, 1.0), (3.0, 3.0), 2.0)
        and not within(None, (1.0, 1.0), 2.0)
    )


def test_pong_ball_in_real_frames() -> None:
    env = gym.make("neuralgym/Pong-real-v0")
    env.reset(seed=3)
    found = 0
    for _ in range(40):
        o, *_ = env.step(0)
        found += pong_ball(o) is not None
    env.close()
    assert found >= 20  # the ball is in play most of these steps


# ------------------------------------------------------------ lockstep event metrics


def lockstep(
    real_reward: np.ndarray, dream_reward: np.ndarray, real_term=None, dream_term=None, obj_real=None, obj_match=None
) -> Lockstep:
    e, t = real_reward.shape
    z = np.zeros((e, t))
    return Lockstep(
        z,
        z,
        z,
        z,
        np.asarray(real_term if real_term is not None else [-1] * e),
        np.asarray(dream_term if dream_term is not None else [-1] * e),
        0.0,
        [],
        real_reward,
        dream_reward,
        obj_real,
        obj_match,
    )


def test_reward_events_match_within_one_step() -> None:
    real = np.zeros((2, 10))
    real[0, 3], real[1, 7] = 1.0, -1.0
    dream = np.zeros((2, 10))
    dream[0, 4] = 0.9  # one step late, same sign: a hit
    dream[1, 2] = -0.8  # wrong step: a false event; the real -1 is missed
    out = reward_events(lockstep(real, dream))
    assert out["reward_events_real"] == 2 and out["reward_events_dream"] == 2
    assert out["reward_event_recall"] == 0.5 and out["reward_event_precision"] == 0.5


def test_reward_events_of_cartpole_are_its_ends() -> None:
    real = np.ones((2, 6))
    dream = np.full((2, 6), 1.04)  # a regressed reward near 1 is no event
    out = reward_events(lockstep(real, dream, real_term=[5, -1], dream_term=[6, 2]))
    assert out["reward_usual"] == 1.0
    assert out["reward_events_real"] == 1 and out["reward_event_recall"] == 1.0
    assert out["reward_events_dream"] == 2 and out["reward_event_precision"] == 0.5


def test_object_fidelity_counts_only_steps_with_the_object() -> None:
    seen = np.array([[True, True, False, True, True], [True, False, False, True, True]])
    match = np.array([[True, False, True, True, False], [True, False, False, False, False]])
    z = np.zeros((2, 5))
    out = object_fidelity(lockstep(z, z, obj_real=seen, obj_match=match), horizons=(1, 2, 3, 5))
    assert out["object@1"] == 1.0 and out["object@2"] == 0.0 and out["object@3"] is None and out["object@5"] == 0.0
    assert out["object_n@1"] == 2 and out["object_n@3"] == 0


# ---------------------------------------------------------------------- coherence


def test_coherence_summary() -> None:
    p = np.array([50, 40, 30, 20, 45, 44, 43, 42], float)
    age = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    ep = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    out = summarize_coherence(CoherenceRun(p, age, ep, 1.0, "d", "i"))
    assert out["share_good"] == 0.75 and out["median_first_bad_step"] == 3.0 and out["episodes_never_bad"] == 1
    assert out["median_plausibility_age_1_25"] == 42.5 and out["longest_episode"] == 4


def test_coherence_runs_the_real_env_against_an_index(cartpole_spec, tmp_path: Path) -> None:
    env = gym.make(cartpole_spec.real_id)
    o, _ = env.reset(seed=0)
    frames = [o] + [env.step(i % 2)[0] for i in range(30)]
    env.close()
    index = RealFrameIndex(
        np.stack(frames), labels=np.zeros((len(frames), 2), np.float32), exact=True, description="test"
    )
    run = run_coherence(cartpole_spec, steps=12, lanes=2, seed=0, real=True, index=index, strip_every=2)
    assert len(run.plausibility) == 12 and run.age.min() >= 1
    out = summarize_coherence(run)
    assert out["frames"] == 12 and 0.0 <= out["share_good"] <= 1.0
    json.dumps(out)
    write_strip(tmp_path / "strip.png", run)
    from PIL import Image

    assert Image.open(tmp_path / "strip.png").size[0] > 0


def test_coherence_of_a_dream_counts_only_dreamt_frames(cartpole_spec) -> None:
    index = RealFrameIndex(np.full((2, 64, 64, 1), 255, np.uint8), labels=np.zeros((2, 2), np.float32), exact=True)
    run = run_coherence(cartpole_spec, steps=20, lanes=1, seed=1, device="cpu", index=index)
    assert len(run.plausibility) == 20 and (run.age >= 1).all()


# ------------------------------------------------------------------ model parts


def test_background_model_starts_as_the_filter() -> None:
    torch.manual_seed(0)
    m = WorldModel(WorldModelConfig(context=4, background=1)).eval()
    frames = torch.rand(2, 4, 1, 64, 64).round()
    with torch.no_grad():
        out = m(frames, torch.zeros(2, 4, 2))["frame"]
    assert (torch.round(out * 255) - torch.round(frames[:, -1] * 255)).abs().max() <= 1  # the identity, to 8 bits


def test_background_mask_can_restore_the_background() -> None:
    m = WorldModel(WorldModelConfig(context=4, background=1)).eval()
    with torch.no_grad():
        m.mask_out.bias.fill_(-30.0)  # mask 0 everywhere: the output is the background image
        m.background.fill_(0.25)
        out = m(torch.rand(1, 4, 1, 64, 64), torch.zeros(1, 4, 2))["frame"]
    assert torch.allclose(out, torch.full_like(out, 0.25))


def test_reward_classifier_pays_a_class_value() -> None:
    m = WorldModel(WorldModelConfig(context=4, reward_classes=3)).eval()
    with torch.no_grad():
        m.reward_values.copy_(torch.tensor([-1.0, 0.0, 1.0]))
        m.reward_head[2].bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
        out = m(torch.rand(2, 4, 1, 64, 64), torch.zeros(2, 4, 2))
    assert out["reward"].tolist() == [1.0, 1.0] and out["reward_logits"].shape == (2, 3)


def test_a_world_that_pays_one_value_has_no_reward_classifier() -> None:
    m = WorldModel(WorldModelConfig(context=4, reward_classes=1)).eval()
    assert not hasattr(m, "reward_head") and not any(k.startswith("reward_head") for k in m.state_dict())
    with torch.no_grad():
        m.reward_values.fill_(1.0)
        out = m(torch.rand(3, 4, 1, 64, 64), torch.zeros(3, 4, 2))
    assert out["reward"].tolist() == [1.0, 1.0, 1.0] and "reward_logits" not in out


def test_reward_class_values_and_weights() -> None:
    assert reward_class_values(np.ones(100), 8).tolist() == [1.0]
    pong = np.r_[np.zeros(1000), np.ones(10), -np.ones(30)]
    values = reward_class_values(pong, 8)
    assert values.tolist() == [-1.0, 0.0, 1.0]
    w = reward_class_weights(pong, values)
    assert w[2] > w[0] > w[1]  # rarer classes weigh more
    many = np.random.default_rng(0).normal(size=5000)
    assert len(reward_class_values(many, 4)) <= 4


@pytest.mark.parametrize("kw", [{"background": 2}, {"background": -1}])
def test_bad_background_flag_is_refused(kw) -> None:
    with pytest.raises(ValueError, match="background"):
        WorldModel(WorldModelConfig(context=4, **kw))


def test_reward_groups_of_close_values() -> None:
    # CarRacing-like: a time penalty, tiles worth a little more or less per track, a rare exit
    rng = np.random.default_rng(0)
    r = np.r_[np.full(800, -0.2), rng.uniform(2.8, 3.6, 200), [-100.1]]
    values = reward_class_values(r, 8)
    assert len(values) == 3 and values[0] == pytest.approx(-100.1) and values[1] == pytest.approx(-0.2)
    assert 2.8 < values[2] < 3.6


def test_too_many_reward_groups_merge_by_distance_and_keep_a_rare_extreme() -> None:
    # tiles of many tracks, one to five per step, spread so that the gaps split them into
    # more groups than classes; the exit penalty is 1 in 10,000 and must keep its class
    rng = np.random.default_rng(1)
    tiles = np.concatenate([k * rng.uniform(3.0, 3.6, 300) - 0.2 for k in range(1, 6)])
    r = np.r_[np.full(9000, -0.2), tiles, [-100.1]]
    values = reward_class_values(r, 4, gap_fraction=0.01)
    assert len(values) == 4 and values[0] == pytest.approx(-100.1) and values[1] == pytest.approx(-0.2)
    assert np.all(np.diff(values) > 0) and values[2] < 10.0 < values[3]


def test_reward_events_are_oversampled(cartpole_spec) -> None:
    from neuralgym.training.data import Episode
    from neuralgym.training.windows import WindowDataset

    n = 60
    frames = np.zeros((n + 1, *cartpole_spec.obs_shape), np.uint8)
    rewards = np.zeros(n, np.float32)
    rewards[40] = 1.0
    ep = Episode(frames, np.zeros(n, np.int64), rewards, np.zeros(n, bool), np.zeros(n, bool))
    ds = WindowDataset([ep], cartpole_spec)
    plain, extra = ds.population(), ds.population(reward_oversample=3, reward_window=8)
    repeated = np.setdiff1d(np.flatnonzero(np.bincount(extra) == 3), [])
    assert len(extra) > len(plain) and len(repeated) == 8  # the 8 windows whose first 8 targets hold the event


def test_windows_a_set_time_after_a_reward_event_are_oversampled_within_their_episode(cartpole_spec) -> None:
    """``reward_after`` S also repeats the windows whose first targets hold the step S after
    an event (what a point sets off after a pause), and never reaches into the next episode."""
    from neuralgym.training.data import Episode
    from neuralgym.training.windows import WindowDataset

    n = 30
    frames = np.zeros((n + 1, *cartpole_spec.obs_shape), np.uint8)
    early, late = np.zeros(n, np.float32), np.zeros(n, np.float32)
    late[27], early[5] = 1.0, 1.0  # the first episode's: three steps before its end
    eps = [Episode(frames, np.zeros(n, np.int64), r, np.zeros(n, bool), np.zeros(n, bool)) for r in (late, early)]
    ds = WindowDataset(eps, cartpole_spec)
    before = np.bincount(ds.population(reward_oversample=3, reward_window=4), minlength=len(ds))
    after = np.bincount(ds.population(reward_oversample=3, reward_window=4, reward_after=20), minlength=len(ds))
    assert list(np.flatnonzero(before == 3)) == [24, 25, 26, 27, 32, 33, 34, 35]  # the event among the first 4 targets
    # and the windows whose first 4 targets hold the step 20 after the second episode's event;
    # none for the first's, whose step 20 later is past its episode's end, not in the next one
    assert list(np.flatnonzero(after == 3)) == [24, 25, 26, 27, 32, 33, 34, 35, 52, 53, 54, 55]
    assert after.sum() == before.sum() + 8


def test_dream_samples_rewards_from_the_classifier(cartpole_spec, tmp_path) -> None:
    """A reward classifier's value is drawn at temperature > 0 and is the argmax at 0."""
    from neuralgym.dream.core import DreamCore
    from neuralgym.dream.predictor import Predictor

    core = DreamCore(cartpole_spec, num_envs=64, device="cpu")
    model = core.model
    # swap in a classifier head that gives 1.0 with probability ~0.27 and 0.0 otherwise
    cfg = WorldModelConfig(**{**model.config.to_dict(), "reward_classes": 2})
    m2 = WorldModel(cfg).eval()
    m2.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith(("reward_", "reward_head"))}, strict=False
    )
    with torch.no_grad():
        m2.reward_values.copy_(torch.tensor([0.0, 1.0]))
        m2.reward_head[2].bias.copy_(torch.tensor([1.0, 0.0]))
    core.model, core.predict = m2, Predictor(m2, core.device)
    core.reset(seed=0)
    paid = np.concatenate([core.step(np.zeros(64, np.int64)).reward for _ in range(3)])
    assert set(np.unique(paid)) <= {0.0, 1.0} and 0.1 < paid.mean() < 0.45
    core.temperature = 0.0
    core.reset(seed=0)
    assert (core.step(np.zeros(64, np.int64)).reward == 0.0).all()


def test_dream_draws_the_future_at_its_temperature(cartpole_spec) -> None:
    """A world with several futures: at temperature > 0 the dream draws each lane's future
    (the same seed, the same dream), at 0 it shows the most likely one."""
    from neuralgym.dream.core import DreamCore
    from neuralgym.dream.predictor import Predictor

    core = DreamCore(cartpole_spec, num_envs=8, device="cpu", drift_policy="none")
    config = {**core.model.config.to_dict(), "bottleneck": 0, "background": 1, "futures": 2}
    torch.manual_seed(0)
    m2 = WorldModel(WorldModelConfig(**config)).eval()
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(0.05 * torch.randn_like(p))
        m2.heads[2].bias[1] = -50.0  # no lane ends
    core.model, core.predict = m2, Predictor(m2, core.device)

    def first_frames(temperature: float) -> torch.Tensor:
        core.temperature = temperature
        core.reset(seed=3)
        return torch.stack([core.step(np.zeros(8, np.int64)).frames for _ in range(3)])

    drawn, again, likely = first_frames(1.0), first_frames(1.0), first_frames(0.0)
    assert torch.equal(drawn, again) and torch.equal(likely, first_frames(0.0))
    assert not torch.equal(drawn, likely)


def test_exploit_holds_each_box_dimension_high() -> None:
    from neuralgym.world.catalog import get_spec
    from neuralgym.world.patterns import patterns_for

    patterns = patterns_for(get_spec("carracing"))
    gas = patterns["high_gas"](0, np.random.default_rng(0))
    assert gas.tolist() == [0.0, 1.0, 0.0] and {"noop", "random", "extremes", "high_steer", "high_brake"} <= set(
        patterns
    )


def test_the_pong_world_serves_a_new_ball_when_it_runs_free() -> None:
    """The shipped Pong world sees 20 frames, enough to time the serve 18-19 steps after a
    point: left to run free (no prompt after the start, the ball-following driver), its dream
    keeps showing a ball, where the 4-frame worlds before it showed none after the first point."""
    spec = get_spec("pong")
    index = RealFrameIndex(np.full((2, 64, 64, 1), 87, np.uint8), labels=np.zeros((2, 2), np.float32))
    out = summarize_coherence(run_coherence(spec, steps=400, seed=0, device="cpu", temperature=1.0, index=index))
    assert out["share_with_paddle"] > 0.8 and out["share_with_ball"] > 0.2, out
