"""Ranking statistics for scores against binary labels: AUROC and the Youden threshold.

Drift is a score, "the dream is off" a label: training calibrates the dream's drift
threshold with these, and ``neuralgym eval`` reports how well drift ranks off frames.
"""

from __future__ import annotations

import numpy as np


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` ranking positives (``labels`` True) first;
    ties count half; NaN without both classes."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    # average ranks over ties
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts - 1) / 2.0 + 1.0, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def calibrate_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The threshold that best separates positives (scores above it) from the rest:
    Youden's J = true-positive rate minus false-positive rate, maximal. It lies halfway
    between two distinct scores (or at the lowest score when everything is above)."""
    order = np.argsort(-scores)
    d, o = scores[order], positive[order]
    tpr = np.cumsum(o) / max(1, o.sum())
    fpr = np.cumsum(~o) / max(1, (~o).sum())
    j = tpr - fpr
    last_of_tie = np.r_[d[1:] != d[:-1], True]  # a threshold sits between distinct scores
    best = int(np.argmax(np.where(last_of_tie, j, -np.inf)))
    return float(d[best] if best + 1 >= len(d) else 0.5 * (d[best] + d[best + 1]))
