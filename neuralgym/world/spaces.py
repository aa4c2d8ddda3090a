"""Spaces shared by the dream and the real env, and the checks on what agents send.

Both faces of a world build their spaces here, so they cannot drift apart.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.world.spec import WorldSpec


def observation_space_for(spec: WorldSpec) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, spec.obs_shape, dtype=np.uint8)


def action_space_for(spec: WorldSpec) -> gym.spaces.Space:
    a = spec.actions
    if a.kind == "discrete":
        return gym.spaces.Discrete(a.n)
    return gym.spaces.Box(np.array(a.low, np.float32), np.array(a.high, np.float32), dtype=np.float32)


class ResetNeededError(gym.error.ResetNeeded, RuntimeError, ValueError):
    """``step()``/``render()`` before ``reset()``, or ``step()`` after the episode ended.

    It is gymnasium's :class:`~gymnasium.error.ResetNeeded` (what ``gym.make``'s
    order-enforcing wrapper raises), a ``RuntimeError`` and a ``ValueError``, so callers
    catching any of the three catch it."""


def validate_action(space: gym.spaces.Space, action: Any) -> Any:
    """Return the action as a clean Python int / float32 vector, or raise naming what was expected.

    Discrete: an int in ``[0, n)``; numpy ints, 0-d or one-element 1-d arrays (what
    SB3's ``predict`` returns) and integral floats (``1.0``) are accepted; bools, NaN,
    non-integral floats, strings and arrays of any other shape are not.
    Box: numbers (not bools or strings) of the space's shape, finite and within bounds."""
    if isinstance(space, gym.spaces.Discrete):
        if isinstance(action, np.ndarray):
            if action.size != 1 or action.ndim > 1:
                raise ValueError(
                    f"expected one discrete action (an int in [0, {space.n})), got an array of shape {action.shape}"
                )
            action = action.reshape(()).item()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, numbers.Integral):
            if isinstance(action, numbers.Real) and not isinstance(action, bool) and float(action).is_integer():
                action = int(action)
            else:
                raise TypeError(
                    f"expected a discrete action: an int in [0, {space.n}), got {action!r} ({type(action).__name__})"
                )
        action = int(action)
        if not 0 <= action < space.n:
            raise ValueError(f"expected a discrete action in [0, {space.n}), got {action}")
        return action
    assert isinstance(space, gym.spaces.Box)
    arr = _numeric_array(action, f"a continuous action of shape {space.shape}")
    if arr.shape != space.shape:
        raise ValueError(f"expected a continuous action of shape {space.shape}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"expected a finite continuous action, got {arr}")
    if np.any(arr < space.low - 1e-6) or np.any(arr > space.high + 1e-6):
        raise ValueError(f"expected a continuous action within [{space.low}, {space.high}], got {arr}")
    return np.clip(arr, space.low, space.high)


def validate_action_batch(space: gym.spaces.Space, actions: Any, num_envs: int) -> np.ndarray:
    """A batch of actions for ``num_envs`` envs: int64 ``(n,)`` or float32 ``(n, d)``."""
    if isinstance(space, gym.spaces.Discrete):
        if actions is None or isinstance(actions, (str, bytes)):
            raise TypeError(f"expected {num_envs} discrete actions (ints in [0, {space.n})), got {actions!r}")
        try:
            arr = np.asarray(actions)
        except (TypeError, ValueError) as e:  # ragged lists
            raise ValueError(f"expected {num_envs} discrete actions, got {actions!r}") from e
        if arr.shape not in ((num_envs,), (num_envs, 1)):
            raise ValueError(f"expected {num_envs} discrete actions, shape ({num_envs},), got shape {arr.shape}")
        arr = arr.reshape(num_envs)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ValueError(f"expected integer discrete actions in [0, {space.n}), got {arr}")
        elif arr.dtype.kind not in "iu":
            raise TypeError(f"expected integer discrete actions in [0, {space.n}), got dtype {arr.dtype}")
        if np.any(arr < 0) or np.any(arr >= space.n):
            raise ValueError(f"expected discrete actions in [0, {space.n}), got {arr}")
        return arr.astype(np.int64)
    assert isinstance(space, gym.spaces.Box)
    arr = _numeric_array(actions, f"continuous actions of shape {(num_envs, *space.shape)}")
    if arr.shape != (num_envs, *space.shape):
        raise ValueError(f"expected continuous actions of shape {(num_envs, *space.shape)}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("expected finite continuous actions, got NaN or inf")
    if np.any(arr < space.low - 1e-6) or np.any(arr > space.high + 1e-6):
        raise ValueError(f"expected continuous actions within [{space.low}, {space.high}], got {arr}")
    return np.clip(arr, space.low, space.high)


def _numeric_array(value: Any, expected: str) -> np.ndarray:
    """``value`` as a float32 array if it holds plain numbers (ints or floats), else TypeError."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"expected {expected}, got {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nesting
        raise TypeError(f"expected {expected}, got {value!r}") from e
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"expected {expected} of numbers, got dtype {raw.dtype} ({value!r})")
    return raw.astype(np.float32)


def to_source_action(spec: WorldSpec, action: Any) -> Any:
    """Map a validated world action to the source env's action."""
    if spec.actions.kind == "discrete":
        return spec.actions.values[int(action)]
    return np.asarray(action, dtype=np.float32)


def encode_actions(spec: WorldSpec, actions: np.ndarray) -> np.ndarray:
    """World actions -> the float vectors the model is conditioned on: one-hot for
    discrete actions, the box scaled to [-1, 1] for continuous ones. Shape (..., A)."""
    a = spec.actions
    if a.kind == "discrete":
        idx = np.asarray(actions, dtype=np.int64)
        return np.eye(a.n, dtype=np.float32)[idx]
    arr = np.asarray(actions, dtype=np.float32)
    low, high = np.array(a.low, np.float32), np.array(a.high, np.float32)
    return (2.0 * (arr - low) / (high - low) - 1.0).astype(np.float32)
