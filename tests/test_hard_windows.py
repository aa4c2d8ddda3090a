"""The windows the starting world predicts worst are found without knowing what they hold
and drawn more often (training/hard_windows.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralgym.training.config import TrainConfig
from neuralgym.training.data import Episode
from neuralgym.training.hard_windows import epoch_population, hardest_windows, window_errors
from neuralgym.training.windows import WindowDataset
from neuralgym.world.model import WorldModel, WorldModelConfig
from neuralgym.world.spec import WorldSpec


def flash_episode(spec: WorldSpec, n: int = 30, flash: int = 15) -> Episode:
    """A still scene in which one frame, ``flash``, shows a bright square."""
    frames = np.full((n + 1, *spec.obs_shape), 40, np.uint8)
    frames[flash, 20:30, 20:30] = 220
    return Episode(frames, np.zeros(n, np.int64), np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))


def fresh_world(spec: WorldSpec) -> WorldModel:
    h, w, c = spec.obs_shape
    torch.manual_seed(0)
    config = WorldModelConfig(
        height=h, width=w, channels=c, context=spec.context_length, action_dim=spec.actions.model_dim
    )
    return WorldModel(config).eval()


def test_the_frames_the_world_cannot_foresee_are_the_hardest_windows(cartpole_spec: WorldSpec) -> None:
    ds = WindowDataset([flash_episode(cartpole_spec)], cartpole_spec)
    first_target = ds.starts + 1  # each window's first target's frame (K - 1 padding frames lead the episode)
    errors = window_errors(fresh_world(cartpole_spec), ds, change_weight=30.0, device=torch.device("cpu"), batch=7)
    hard = hardest_windows(errors, share=2 / len(ds))
    # a fresh filter world copies the newest frame: the flash coming, and going, are what it misses
    assert sorted(first_target[hard]) == [15, 16]
    assert errors[hard].min() > 100 * np.delete(errors, hard).max()


def test_hard_windows_are_drawn_more_often_and_their_heads_weighed_back(cartpole_spec: WorldSpec) -> None:
    from neuralgym.training.windows import draw_weights

    ds = WindowDataset([flash_episode(cartpole_spec)], cartpole_spec)
    cfg = TrainConfig(hard_oversample=4, hard_share=2 / len(ds), change_weight=30.0, reward_oversample=1)
    population = epoch_population(ds, cfg, fresh_world(cartpole_spec), torch.device("cpu"))
    counts = np.bincount(population, minlength=len(ds))
    assert sorted(ds.starts[np.flatnonzero(counts == 4)] + 1) == [15, 16]
    assert set(np.unique(counts)) == {1, 4}
    weights = draw_weights(population, len(ds))
    assert np.allclose(weights[counts == 4] * 4, weights[counts == 1][0])  # each window counts once for the heads
    off = epoch_population(ds, TrainConfig(hard_oversample=1), fresh_world(cartpole_spec), torch.device("cpu"))
    assert np.array_equal(np.sort(off), np.arange(len(ds)))


def test_a_hard_share_outside_zero_to_one_is_refused() -> None:
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"hard share must be in \(0, 1\]"):
            hardest_windows(np.ones(10), bad)
    assert list(hardest_windows(np.array([1.0, 3.0, 3.0, 2.0]), 0.5)) == [1, 2]  # ties: the lower id first
