"""Drift: what to do when a dream has left the data it was trained on.

The drift score comes from the world model's error head, the model's own estimate of
the RMS error (in 8-bit grey levels) of each frame it predicts: errors compound, so
``info["drift"]`` is the root of the summed squared per-step estimates since the
context was last real (``info["drift_step"]`` is this step's estimate alone). The
docs/drift.md compares it with the alternatives on lockstep data.
:class:`DriftResetPolicy` turns scores into actions, vectorised over lanes:

* ``"none"``: never act (the score is still reported in ``info["drift"]``);
* ``"truncate"``: end the episode as a *truncation* (never a termination);
* ``"reanchor"``: swap the lane's context for the nearest real context from the
  world's anchor bank and carry on (what human play wants).

It acts once a lane's score has been above ``threshold`` for ``hysteresis``
consecutive steps (so one noisy step does not flap it), or once the lane has
dreamt ``max_horizon`` steps since its context was last real (0: no cap).

The threshold is the spec's ``[drift] threshold`` where it sets one; otherwise the one
``neuralgym train`` calibrated on held-out data and stored in the weights
(``info["drift"]["threshold"]``, see :func:`neuralgym.training.calibration.calibrate_drift`).

A spec's ``[drift]`` table (:class:`DriftSpec`) is a policy with two more fields: whether
it sets the threshold, and the PSNR under which a dreamt frame counts as off. Its
``policy`` key is the policy's ``mode``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

MODES = ("none", "truncate", "reanchor")


@dataclass(frozen=True)
class DriftResetPolicy:
    """When a dream's lanes have drifted too far, and what to do then (see the module docstring)."""

    mode: str = "truncate"
    threshold: float = float("inf")
    max_horizon: int = 0
    hysteresis: int = 2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"drift policy mode must be one of {MODES}, got {self.mode!r}")
        if not (self.threshold == self.threshold) or self.threshold < 0:  # NaN or negative
            raise ValueError(f"drift threshold must be a number >= 0, got {self.threshold!r}")
        if self.max_horizon < 0 or self.hysteresis < 1:
            raise ValueError(f"max_horizon must be >= 0 and hysteresis >= 1, got {self.max_horizon}, {self.hysteresis}")

    @classmethod
    def from_spec(cls, spec: DriftSpec, calibrated: float | None = None) -> DriftResetPolicy:
        """The spec's policy; its threshold is the spec's where it sets one, else
        ``calibrated`` (what training measured, stored in the weights), else none (inf)."""
        policy = cls(**{f.name: getattr(spec, f.name) for f in fields(cls)})
        return policy if spec.threshold_set or calibrated is None else replace(policy, threshold=float(calibrated))

    @classmethod
    def resolve(cls, value: Any, default: DriftSpec, calibrated: float | None = None) -> DriftResetPolicy:
        """``gym.make(..., drift_policy=...)``: None/"default" (the world's own), a mode
        name (with the world's threshold), a dict of fields, or a policy. The world's
        threshold is the spec's, or, where the spec sets none, ``calibrated``."""
        base = cls.from_spec(default, calibrated)
        if value is None or value == "default":
            return base
        if isinstance(value, DriftResetPolicy):
            return value
        if isinstance(value, str):
            if value not in MODES:
                raise ValueError(
                    f"drift_policy must be one of {MODES + ('default',)}, a dict or a DriftResetPolicy, got {value!r}"
                )
            return replace(base, mode=value)
        if isinstance(value, dict):
            unknown = set(value) - {"mode", "threshold", "max_horizon", "hysteresis"}
            if unknown:
                raise ValueError(
                    f"drift_policy dict has unknown keys {sorted(unknown)}; "
                    "expected mode, threshold, max_horizon, hysteresis"
                )
            return replace(base, **value)
        raise TypeError(f"drift_policy must be a str, dict or DriftResetPolicy, got {type(value).__name__}")

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def decide(self, drift: np.ndarray, dream_step: np.ndarray, over: np.ndarray) -> np.ndarray:
        """Update the per-lane count of consecutive over-threshold steps in ``over``
        (in place) and return the boolean mask of lanes to act on."""
        above = drift > self.threshold
        over[:] = np.where(above, over + 1, 0)
        if not self.active:
            return np.zeros_like(above)
        act = over >= self.hysteresis
        if self.max_horizon > 0:
            act |= dream_step >= self.max_horizon
        return act


@dataclass(frozen=True)
class DriftSpec(DriftResetPolicy):
    """A spec's ``[drift]`` table: the world's default :class:`DriftResetPolicy` (its
    ``policy`` key is the ``mode``), and two fields of its own."""

    # whether the spec sets ``threshold``; if not, the dream uses the threshold that
    # training calibrated and stored in the weights (``info["drift"]["threshold"]``)
    threshold_set: bool = False
    fidelity_psnr: float = 30.0  # a dream frame below this PSNR against reality counts as "off"

    @property
    def policy(self) -> str:
        """The spec file's name for :attr:`mode`."""
        return self.mode
