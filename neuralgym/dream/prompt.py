"""Prompts: ``reset(options={"frames": ..., "actions": ...})`` checked and encoded.

A prompt starts a dream from real frames (1 <= n <= K of them, uint8 like the
observations) and optionally the actions between them (n-1, or n with the one before
the first frame, which is dropped). Every face of the dream reads its reset options here,
so they accept and refuse exactly the same things.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.world.spaces import encode_actions, validate_action
from neuralgym.world.spec import WorldSpec

#: frames (n, H, W, C) uint8 and the action codes (n-1, A) between them
Prompt = tuple[np.ndarray, np.ndarray]


def validate_prompt(options: dict[str, Any] | None, spec: WorldSpec, action_space: gym.Space) -> Prompt | None:
    """Check ``reset`` options; return the prompt they hold, or None (no ``frames``)."""
    shape, k, dim = spec.obs_shape, spec.context_length, spec.actions.model_dim
    if options is None:
        return None
    if not isinstance(options, dict):
        raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
    unknown = set(options) - {"frames", "actions", "reset_mask"}
    if unknown:
        raise ValueError(
            f"unknown reset option(s) {sorted(map(repr, unknown))}; expected 'frames' and optionally 'actions'"
        )
    if "frames" not in options:
        if "actions" in options:
            raise ValueError("reset option 'actions' needs 'frames' as well")
        return None
    frames = options["frames"]
    if not isinstance(frames, np.ndarray):
        raise TypeError(
            f"options['frames'] must be a numpy uint8 array of shape (n, {', '.join(map(str, shape))}), "
            f"got {type(frames).__name__}"
        )
    if frames.dtype != np.uint8:
        raise TypeError(f"options['frames'] must have dtype uint8 (0..255), got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[1:] != shape:
        hint = " (one frame? pass frames[None])" if frames.shape == shape else ""
        raise ValueError(
            f"options['frames'] must have shape (n, {', '.join(map(str, shape))}) with 1 <= n <= {k}, "
            f"got {frames.shape}{hint}"
        )
    n = frames.shape[0]
    if not 1 <= n <= k:
        raise ValueError(f"options['frames'] must hold 1 to K={k} frames, got {n}")
    actions = options.get("actions")
    if actions is None:
        codes = np.zeros((n - 1, dim), np.float32)
    else:
        if isinstance(actions, (str, bytes, dict)):
            raise TypeError(
                f"options['actions'] must be a sequence of {n - 1} or {n} actions, got {type(actions).__name__}"
            )
        try:
            seq = list(actions)
        except TypeError as e:
            raise TypeError(f"options['actions'] must be a sequence of {n - 1} or {n} actions, got {actions!r}") from e
        if len(seq) not in (n - 1, n):
            raise ValueError(
                f"options['actions'] must hold n-1={n - 1} or n={n} actions for {n} frames, got {len(seq)}"
            )
        seq = [validate_action(action_space, action) for action in seq]
        seq = seq[len(seq) - (n - 1) :] if n > 1 else []  # with n actions the first one precedes the prompt
        codes = encode_actions(spec, np.asarray(seq)) if seq else np.zeros((0, dim), np.float32)
        codes = codes.reshape(n - 1, dim)
    return np.ascontiguousarray(frames), codes
