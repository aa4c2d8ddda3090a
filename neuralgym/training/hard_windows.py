"""The training windows the starting world predicts worst, to be practised more often.

A world that averages where reality is rare and decisive is barely punished for it by the
mean loss: in Pong the ball comes back off the player's paddle in about one frame in a
hundred, and a world that drew it going past instead (and paid the point) lost little
(docs/worlds/pong.md). Scoring every training window once, teacher-forced with the world
that training starts from, finds such frames without knowing what they hold; the hardest
``share`` of them are then drawn ``oversample`` times per epoch. The heads' losses are
weighed back (:func:`~neuralgym.training.windows.draw_weights`), so they still learn how
often things happen.
"""

from __future__ import annotations

import numpy as np
import torch

from neuralgym.training.config import TrainConfig
from neuralgym.training.losses import moved_pixels, weighted_fit
from neuralgym.training.windows import WindowDataset


def window_errors(
    model: torch.nn.Module,
    dataset: WindowDataset,
    change_weight: float,
    device: torch.device,
    batch: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """(len(dataset),): each window's first target's error as the frame loss measures it
    (pixels that moved weigh 1 + ``change_weight``), predicted from the real context; a world
    with several futures is scored by the future closest to reality."""
    k, errors = dataset.k, np.empty(len(dataset))
    was_training = model.training
    model.eval()
    from tqdm import tqdm

    with torch.no_grad():
        for i in tqdm(range(0, len(dataset), batch), disable=not progress, desc="score windows", unit="batch"):
            ids = np.arange(i, min(i + batch, len(dataset)))
            b = dataset.batch(ids, 1).to(device)
            target = b.frames[:, k]
            out = model(b.frames[:, :k], b.actions[:, :k], target=target)
            pred = torch.round(out["frame"] * 255.0) / 255.0
            errors[ids] = weighted_fit(pred, target, moved_pixels(b, k), change_weight).double().cpu().numpy()
    model.train(was_training)
    return errors


def hardest_windows(errors: np.ndarray, share: float) -> np.ndarray:
    """The ids of the ``share`` (0, 1] of windows with the largest ``errors``, hardest first
    (ties: the lower id first, so every rank picks the same windows)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"the hard share must be in (0, 1], got {share!r}")
    n = max(1, int(round(share * len(errors))))
    return np.argsort(-errors, kind="stable")[:n]


def epoch_population(
    dataset: WindowDataset, cfg: TrainConfig, model: torch.nn.Module, device: torch.device, progress: bool = False
) -> np.ndarray:
    """One epoch's window ids under ``cfg``'s oversampling (:meth:`WindowDataset.population`),
    the hard windows scored by ``model`` as it is now: the world the run starts from, also when
    it resumes (before the checkpoint's weights replace it), so a resumed run draws the same."""
    hard = None
    if cfg.hard_oversample > 1:
        errors = window_errors(model, dataset, cfg.change_weight, device, progress=progress)
        hard = hardest_windows(errors, cfg.hard_share)
    return dataset.population(
        cfg.terminal_oversample,
        cfg.terminal_window,
        cfg.reward_oversample,
        cfg.reward_window,
        cfg.reward_after,
        hard,
        cfg.hard_oversample,
    )
