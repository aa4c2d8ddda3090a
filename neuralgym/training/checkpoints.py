"""Starting and resuming training: a world file's tensors as a start (widened to a longer
context where needed), and atomic checkpoints that load without unpickling code.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from neuralgym.common.files import atomic_write_bytes
from neuralgym.training.config import TrainConfig
from neuralgym.training.windows import EpochSampler
from neuralgym.world.model import WorldModel, WorldModelConfig
from neuralgym.world.weights import WeightsError

#: the parameters of the reward, termination and error heads, and of a world with futures' head
#: that says which comes (each future's frame stays as it was)
HEAD_PREFIXES = ("heads.", "reward_head.", "future_head.")


def init_from_world(model: WorldModel, path: str | Path) -> list[str]:
    """Copy into ``model`` every tensor of the world file ``path`` whose name and shape fit;
    return the names of the parameters left as initialised. The model configs must agree
    on the frame and action sizes; a world with a shorter context is widened
    (:func:`widen_context`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"--init-from: {path} is a folder, not a file: expected a .safetensors world file")
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no world file at {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"--init-from: {path} is not a readable safetensors world file ({e})") from e
    ours = model.state_dict()
    theirs = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    theirs = widen_context(theirs, ours, model.config)
    fitting = {k: v for k, v in theirs.items() if k in ours and v.shape == ours[k].shape}
    if not any(k.startswith(("inp.", "out.")) for k in fitting):
        raise ValueError(f"--init-from {path}: its model does not fit this world's (no input/output layer matches)")
    model.load_state_dict(fitting, strict=False)
    return sorted(k for k in ours if k not in fitting)


def widen_context(
    theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], config: WorldModelConfig
) -> dict[str, torch.Tensor]:
    """Fit a shorter-context world's input layers into a model with a longer context.

    The input conv sees [newest frame, K-1 frame differences oldest first] and the action
    embedding the K action codes oldest first, so the old world's tensors become the
    newest slots of the wider ones and the older slots start at zero: the widened model
    computes exactly what the old one did until training teaches it to use the extra
    history."""
    c, p = config, config.patch
    w_in, w_act = theirs.get("inp.weight"), theirs.get("action_embed.0.weight")
    if w_in is None or w_act is None or w_in.shape == ours["inp.weight"].shape:
        return theirs
    per_frame = c.channels * p * p
    old_k = w_in.shape[1] // per_frame
    if (
        w_in.shape[1] % per_frame
        or w_in.shape[0] != ours["inp.weight"].shape[0]
        or not 2 <= old_k < c.context
        or w_act.shape[1] != old_k * c.action_dim
    ):
        return theirs  # not a narrower context of the same model: left to the shape check
    out = dict(theirs)
    inp = torch.zeros_like(ours["inp.weight"]).view(c.fine_width, c.context, per_frame)
    old = w_in.view(c.fine_width, old_k, per_frame)
    inp[:, 0] = old[:, 0]  # the newest frame
    inp[:, c.context - old_k + 1 :] = old[:, 1:]  # the newest old_k - 1 differences
    out["inp.weight"] = inp.view_as(ours["inp.weight"])
    act = torch.zeros_like(ours["action_embed.0.weight"]).view(-1, c.context, c.action_dim)
    act[:, c.context - old_k :] = w_act.view(-1, old_k, c.action_dim)
    out["action_embed.0.weight"] = act.view_as(ours["action_embed.0.weight"])
    return out


def save_checkpoint(
    path: Path,
    model: WorldModel,
    opt: torch.optim.Optimizer,
    step: int,
    sampler: EpochSampler,
    cfg: TrainConfig,
    extra: dict[str, Any],
) -> None:
    """Atomic; loaded with ``torch.load(weights_only=True)``, so no pickled code runs."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "sampler": sampler.state(),
        "torch_rng": torch.get_rng_state(),
        "config": json.dumps(asdict(cfg)),
        "extra": json.dumps(extra),
    }
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (no pickled code runs); ValueError naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a foreign or damaged file
        raise ValueError(
            f"{path}: not a readable training checkpoint ({type(e).__name__}: {e}); delete it to train from scratch"
        ) from e
    missing = [
        k
        for k in ("model", "optimizer", "step", "sampler", "torch_rng")
        if not isinstance(state, dict) or k not in state
    ]
    if missing:
        raise ValueError(
            f"{path}: not a training checkpoint (missing {', '.join(missing)}); delete it to train from scratch"
        )
    return state
