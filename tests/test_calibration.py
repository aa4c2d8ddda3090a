"""Drift calibration: the AUROC and Youden threshold statistics, and ``calibrate_drift``,
which sets a trained world's drift threshold from held-out windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuralgym.training.calibration as calibration
from neuralgym.common.stats import auroc, calibrate_threshold
from neuralgym.training.calibration import calibrate_drift
from neuralgym.training.data import Episode
from neuralgym.training.windows import WindowDataset
from neuralgym.world.model import WorldModel, WorldModelConfig
from neuralgym.world.spec import WorldSpec


def pairwise_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The definition: P(a positive's score > a negative's), ties counting half."""
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    return float(wins / (len(pos) * len(neg)))


def youden(scores: np.ndarray, positive: np.ndarray, threshold: float) -> float:
    above = scores > threshold
    return float(above[positive].mean() - above[~positive].mean())


# ------------------------------------------------------------------------- AUROC
def test_auroc_of_perfect_reversed_and_tied_rankings() -> None:
    labels = np.array([False, False, True, True])
    assert auroc(np.array([1.0, 2.0, 3.0, 4.0]), labels) == 1.0
    assert auroc(np.array([4.0, 3.0, 2.0, 1.0]), labels) == 0.0
    assert auroc(np.full(4, 7.0), labels) == 0.5


def test_auroc_without_both_classes_is_nan() -> None:
    assert np.isnan(auroc(np.arange(3.0), np.ones(3, bool)))
    assert np.isnan(auroc(np.arange(3.0), np.zeros(3, bool)))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_its_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 200).astype(float)  # many ties
    labels = rng.random(200) < 0.3 + 0.05 * scores
    assert auroc(scores, labels) == pytest.approx(pairwise_auroc(scores, labels))


# ---------------------------------------------------------------- the threshold
def test_threshold_separates_separable_scores_halfway() -> None:
    scores = np.array([1.0, 2.0, 3.0, 10.0, 11.0])
    off = np.array([False, False, False, True, True])
    assert calibrate_threshold(scores, off) == 6.5  # between the highest "on" and the lowest "off"


@pytest.mark.parametrize("seed", range(5))
def test_threshold_maximises_youdens_j(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)  # overlapping classes, with ties
    off = rng.random(300) < 1 / (1 + np.exp(-3 * scores))
    t = calibrate_threshold(scores, off)
    assert not np.any(scores == t) or t == scores.min()  # it sits between distinct scores
    candidates = [scores.min() - 1, *np.unique(scores)]
    best = max(youden(scores, off, c) for c in candidates)
    assert youden(scores, off, t) == pytest.approx(best)


# --------------------------------------------------------------- calibrate_drift
@pytest.fixture(scope="module")
def tiny(cartpole_spec: WorldSpec) -> tuple[WorldModel, WorldSpec]:
    h, w, c = cartpole_spec.obs_shape
    torch.manual_seed(0)
    config = WorldModelConfig(
        height=h,
        width=w,
        channels=c,
        context=cartpole_spec.context_length,
        action_dim=cartpole_spec.actions.model_dim,
        fine_width=8,
        coarse_width=8,
    )
    return WorldModel(config).eval(), cartpole_spec


def episodes(spec: WorldSpec, lengths: list[int], seed: int = 0) -> list[Episode]:
    """Episodes of random frames and actions (a fresh model predicts them badly, at varying error)."""
    rng = np.random.default_rng(seed)
    return [
        Episode(
            rng.integers(0, 256, (n + 1, *spec.obs_shape), dtype=np.uint8),
            rng.integers(0, spec.actions.n, n),
            np.ones(n, np.float32),
            np.zeros(n, bool),
            np.zeros(n, bool),
        )
        for n in lengths
    ]


def frame_psnrs(model: WorldModel, ds: WindowDataset, monkeypatch: pytest.MonkeyPatch, **kw) -> np.ndarray:
    """The PSNR of every frame a ``calibrate_drift(model, ds, **kw)`` run scores."""
    seen: list[torch.Tensor] = []
    real = calibration.psnr
    monkeypatch.setattr(calibration, "psnr", lambda a, b: seen.append(real(a, b)) or seen[-1])
    calibrate_drift(model, ds, fidelity_psnr=0.0, **kw)
    monkeypatch.setattr(calibration, "psnr", real)
    return torch.cat(seen).numpy()


def test_calibrate_drift_reports_a_threshold_when_both_kinds_of_frame_occur(tiny, monkeypatch) -> None:
    model, spec = tiny
    ds = WindowDataset(episodes(spec, [60, 60, 60]), spec)
    probe = calibrate_drift(model, ds, fidelity_psnr=1000.0, horizon=25, n=8)  # every frame is "off"
    assert probe["threshold"] is None and "every held-out frame" in probe["reason"]
    assert probe["horizon"] == 25 and probe["windows"] == 8 and probe["frames"] == 8 * 25 and probe["off"] == 200
    assert calibrate_drift(model, ds, fidelity_psnr=0.0, horizon=25, n=8)["threshold"] is None  # none is
    # a fidelity threshold inside the frames' PSNR range: both kinds occur, so a threshold is set
    middle = float(np.median(frame_psnrs(model, ds, monkeypatch, horizon=25, n=8)))
    report = calibrate_drift(model, ds, fidelity_psnr=middle, horizon=25, n=8)
    assert 0 < report["off"] < report["frames"]
    assert np.isfinite(report["threshold"]) and report["threshold"] > 0 and 0.0 <= report["auroc"] <= 1.0


def test_calibrate_drift_is_seeded(tiny) -> None:
    model, spec = tiny
    ds = WindowDataset(episodes(spec, [40, 40, 40, 40]), spec)
    a = calibrate_drift(model, ds, fidelity_psnr=8.0, n=6, seed=3)
    assert a == calibrate_drift(model, ds, fidelity_psnr=8.0, n=6, seed=3)


@pytest.mark.parametrize("length, horizon", [(20, 10), (8, 5), (3, 1)])
def test_calibrate_drift_shortens_the_horizon_to_what_the_episodes_allow(tiny, length: int, horizon: int) -> None:
    model, spec = tiny
    k = spec.context_length
    ds = WindowDataset(episodes(spec, [k - 1 + length] * 3), spec)
    assert calibrate_drift(model, ds, fidelity_psnr=20.0, n=4)["horizon"] == horizon


def test_calibrate_drift_without_a_long_enough_window(tiny) -> None:
    model, spec = tiny
    ds = WindowDataset(episodes(spec, [spec.context_length - 1] * 2), spec)  # K frames, no step after them
    report = calibrate_drift(model, ds, fidelity_psnr=20.0)
    assert report == {"threshold": None, "reason": "no held-out window of K real frames and one step"}


def test_youden_threshold_is_what_calibrate_drift_stores(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """calibrate_drift's threshold is calibrate_threshold of its drift scores and "off" labels,
    the drift scores accumulating along each rollout, as the dream's do."""
    model, spec = tiny
    ds = WindowDataset(episodes(spec, [60, 60]), spec)
    psnrs = frame_psnrs(model, ds, monkeypatch, n=4, horizon=10)
    middle = float(np.median(psnrs))
    seen = []
    monkeypatch.setattr(calibration, "calibrate_threshold", lambda d, o: seen.append((d, o)) or 42.0)
    report = calibrate_drift(model, ds, fidelity_psnr=middle, n=4, horizon=10)
    drift, off = seen[0]
    assert report["threshold"] == 42.0 and len(drift) == len(off) == 4 * 10
    np.testing.assert_array_equal(off, psnrs < middle)
    assert np.all(np.diff(drift.reshape(10, 4), axis=0) > 0)  # drift accumulates along each rollout
    assert report["auroc"] == pytest.approx(auroc(drift, off))
