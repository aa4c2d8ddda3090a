"""Shipped worlds: model weights, config and start banks in one safetensors file.

No pickle anywhere: tensors are safetensors, everything else is JSON in its metadata.
The file holds
* ``model.*``: the :class:`~neuralgym.world.model.WorldModel` state dict,
* ``bank.starts`` (N, H, W, C) uint8: real reset frames (the dream's start contexts),
* ``bank.frames`` (M, K, H, W, C) uint8 and ``bank.actions`` (M, K-1, A) float32: real
  mid-episode context windows (what a drift re-anchor swaps in),
and metadata ``neuralgym.world``, ``neuralgym.config`` (JSON), ``neuralgym.info`` (JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from neuralgym.common.files import atomic_write_bytes, remove_stale_temporaries
from neuralgym.world.model import WorldModel, WorldModelConfig
from neuralgym.world.spec import WorldSpec


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or made for another world or model shape."""


@dataclass
class World:
    """A loaded world: the model (in eval mode) and its banks of real contexts."""

    model: WorldModel
    starts: np.ndarray  # (N, H, W, C) uint8
    anchor_frames: np.ndarray  # (M, K, H, W, C) uint8
    anchor_actions: np.ndarray  # (M, K-1, A) float32
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_world(
    path: Path,
    model: WorldModel,
    spec: WorldSpec,
    starts: np.ndarray,
    anchor_frames: np.ndarray,
    anchor_actions: np.ndarray,
    info: dict[str, Any] | None = None,
) -> None:
    """Write atomically: a crash leaves the previous file intact. The file gets the
    ordinary mode (0644 under the usual umask 022), readable by the machine's other users
    like the shipped weights; temporaries of killed earlier writes are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["bank.starts"] = torch.from_numpy(np.ascontiguousarray(starts, dtype=np.uint8))
    tensors["bank.frames"] = torch.from_numpy(np.ascontiguousarray(anchor_frames, dtype=np.uint8))
    tensors["bank.actions"] = torch.from_numpy(np.ascontiguousarray(anchor_actions, dtype=np.float32))
    metadata = {
        "neuralgym.world": spec.key,
        "neuralgym.config": json.dumps(model.config.to_dict()),
        "neuralgym.info": json.dumps(info or {}),
        "format": "pt",
    }
    # safetensors' own save_file creates files 0600; written through Python's open() the file
    # gets 0666 less the umask, and is fsynced before the rename
    blob = save(tensors, metadata=metadata)
    atomic_write_bytes(path, lambda f: f.write(blob))


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e


def load_world(path: str | Path, spec: WorldSpec, device: torch.device | str = "cpu") -> World:
    """Load and check a world file against ``spec``; raise :class:`WeightsError` naming the file and the mismatch."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(
            f"weights path {path} is a folder, not a file: expected a .safetensors file (world {spec.key!r})"
        )
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist (world {spec.key!r}); train one with "
            f"`neuralgym train {spec.key} --data DIR`"
        )
    meta = read_metadata(path)
    world = meta.get("neuralgym.world")
    if world != spec.key:
        raise WeightsError(f"{path}: weights are for world {world!r}, expected {spec.key!r}")
    try:
        config = WorldModelConfig(**_json_metadata(path, meta, "neuralgym.config"))
        info = _json_metadata(path, meta, "neuralgym.info", "{}")
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: missing or invalid model config in metadata ({e})") from e
    _check_config(path, config)
    _check_info(path, info)
    expected = (spec.obs_shape[0], spec.obs_shape[1], spec.obs_shape[2], spec.context_length, spec.actions.model_dim)
    got = (config.height, config.width, config.channels, config.context, config.action_dim)
    if got != expected:
        raise WeightsError(
            f"{path}: model config (H, W, C, K, A) = {got} does not match world {spec.key!r}: {expected}"
        )
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: corrupt or truncated safetensors file ({e})") from e
    try:
        model = WorldModel(config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as e:
        raise WeightsError(f"{path}: model config {config.to_dict()} does not build a model: {e}") from e
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    if config.reward_classes == 1:  # older files stored a classifier over one class, which never decided anything
        state = {k: v for k, v in state.items() if not k.startswith("reward_head.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{path}: tensors do not fit the model config: {e}") from e
    for key in ("bank.starts", "bank.frames", "bank.actions"):
        if key not in tensors:
            raise WeightsError(f"{path}: missing tensor {key!r}")
    k, a = spec.context_length, spec.actions.model_dim
    starts, frames, actions = (tensors[key] for key in ("bank.starts", "bank.frames", "bank.actions"))
    if starts.dtype != torch.uint8 or starts.ndim != 4 or tuple(starts.shape[1:]) != spec.obs_shape or len(starts) == 0:
        raise WeightsError(
            f"{path}: start bank is {starts.dtype} of shape {tuple(starts.shape)}, "
            f"expected uint8 of shape (N>0, {', '.join(map(str, spec.obs_shape))})"
        )
    if frames.dtype != torch.uint8 or frames.ndim != 5 or tuple(frames.shape[1:]) != (k, *spec.obs_shape):
        raise WeightsError(
            f"{path}: anchor frames are {frames.dtype} of shape {tuple(frames.shape)}, "
            f"expected uint8 of shape (M, {k}, {', '.join(map(str, spec.obs_shape))})"
        )
    if (
        not actions.is_floating_point()
        or tuple(actions.shape) != (len(frames), k - 1, a)
        or not torch.isfinite(actions).all()
    ):
        raise WeightsError(
            f"{path}: anchor actions are {actions.dtype} of shape {tuple(actions.shape)}, "
            f"expected finite floats of shape ({len(frames)}, {k - 1}, {a})"
        )
    if not all(torch.isfinite(v).all() for k, v in state.items() if v.is_floating_point()):
        raise WeightsError(f"{path}: model tensors hold NaN or inf")
    model.eval().to(device)
    return World(model, starts.numpy(), frames.numpy(), actions.float().numpy(), info, path)


def _json_metadata(path: Path, meta: dict[str, str], key: str, default: str | None = None) -> Any:
    """Metadata ``key`` parsed as JSON (KeyError if absent and no ``default``)."""
    text = meta[key] if default is None else meta.get(key, default)
    try:
        return json.loads(text)
    except RecursionError as e:  # e.g. "[" * 100000: json's parser recurses once per level
        raise WeightsError(f"{path}: metadata {key!r} is JSON nested too deeply (expected a flat JSON object)") from e


#: model config fields whose 0 means "this part is absent", and their largest sane value
OPTIONAL_PARTS = {"background": 1, "reward_classes": 64, "bottleneck": 1024, "gated_futures": 1, "object_cells": 1}


def _check_config(path: Path, config: WorldModelConfig) -> None:
    """Every field of the model config has a sane type and value (before a model is built from it)."""
    for name, value in config.to_dict().items():
        if name == "diff_scale":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            want = "a finite number > 0"
        elif name in OPTIONAL_PARTS:  # optional parts: 0 means absent
            top = OPTIONAL_PARTS[name]
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top
            want = "0 or 1" if top == 1 else f"an int in [0, {top}]"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            want = "an int >= 1"
        if not ok:
            raise WeightsError(f"{path}: model config field {name!r} must be {want}, got {value!r}")
    try:
        config.validate()
    except ValueError as e:
        raise WeightsError(f"{path}: invalid model config: {e}") from e


def _check_info(path: Path, info: Any) -> None:
    """``neuralgym.info`` is a JSON object; the fields the dream reads from it are sane."""
    if not isinstance(info, dict):
        raise WeightsError(f"{path}: metadata 'neuralgym.info' must be a JSON object, got {type(info).__name__}")
    train = info.get("train", {})
    if not isinstance(train, dict):
        raise WeightsError(f"{path}: metadata 'neuralgym.info' field 'train' must be a JSON object, got {train!r}")
    for key in ("term_pos_weight", "terminal_oversample"):
        w = train.get(key, 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise WeightsError(f"{path}: metadata 'neuralgym.info' train.{key} must be a finite number > 0, got {w!r}")
    drift = info.get("drift", {})
    if not isinstance(drift, dict):
        raise WeightsError(f"{path}: metadata 'neuralgym.info' field 'drift' must be a JSON object, got {drift!r}")
    thr = drift.get("threshold")
    if thr is not None and (
        isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr) or thr < 0
    ):
        raise WeightsError(
            f"{path}: metadata 'neuralgym.info' drift.threshold must be a finite number >= 0 or null, got {thr!r}"
        )
