"""The ``info`` dict of a dream, built in one place for every face.

A vector face reports arrays of shape ``(num_envs,)``; a one-lane face (the Gymnasium
env, each lane of the SB3 VecEnv) the same keys as Python scalars (:func:`lane_info`).
The real env reports the info of a dream that never drifts, so code reading the info
runs unchanged against either (``neuralgym eval``, play's HUD, agents' callbacks).

* ``drift``: the drift score (root of the summed squared per-step error estimates since
  the context was last real; higher = further from the data);
* ``drift_step``: this step's error estimate alone;
* ``dream_step``: steps since the context was last real;
* ``drift_reset``: the drift-reset policy acted on the lane this step;
* ``nonfinite`` (only when some lane's prediction was NaN/inf): which lanes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the keys every step's info holds (``nonfinite`` is added only when it is true somewhere)
INFO_KEYS = ("drift", "drift_step", "dream_step", "drift_reset")


def lanes_info(
    drift: np.ndarray,
    drift_step: np.ndarray,
    dream_step: np.ndarray,
    drift_reset: np.ndarray,
    nonfinite: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The info of ``num_envs`` lanes: float32 ``drift`` and ``drift_step``, int64
    ``dream_step``, bool ``drift_reset`` (and bool ``nonfinite`` where any lane is)."""
    info = {"drift": drift, "drift_step": drift_step, "dream_step": dream_step, "drift_reset": drift_reset}
    if nonfinite is not None and nonfinite.any():
        info["nonfinite"] = nonfinite
    return info


def start_info(n: int) -> dict[str, np.ndarray]:
    """The info of ``n`` lanes that have just started from real frames."""
    return lanes_info(np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.int64), np.zeros(n, bool))


def lane_info(info: dict[str, np.ndarray], i: int = 0) -> dict[str, Any]:
    """Lane ``i`` of a lanes' info as Python scalars (``nonfinite`` only when true)."""
    out: dict[str, Any] = {
        "drift": float(info["drift"][i]),
        "drift_step": float(info["drift_step"][i]),
        "dream_step": int(info["dream_step"][i]),
        "drift_reset": bool(info["drift_reset"][i]),
    }
    if "nonfinite" in info and info["nonfinite"][i]:
        out["nonfinite"] = True
    return out
