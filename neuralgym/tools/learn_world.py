"""``neuralgym learn``'s world phase: how each iteration's world is trained.

The first world of a run from scratch is trained as ``neuralgym train`` would train it (the
spec's ``[train]`` table). Every update continues the previous world: its model configuration
and the way it was trained are kept (:func:`~neuralgym.training.config.continued_settings`),
on the loop's own schedule (``world_steps`` at ``world_lr``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from neuralgym.tools.learn_config import LearnConfig
from neuralgym.training.config import TrainConfig, continued_settings, train_config
from neuralgym.world.spec import WorldSpec


def world_train_config(
    spec: WorldSpec, cfg: LearnConfig, steps: int | None, seed: int, init: str | None
) -> TrainConfig:
    """The training run of one iteration's world: from scratch (``init`` None; ``steps`` None:
    the spec's) or continuing ``init``."""
    kwargs: dict[str, Any] = {"steps": steps, "seed": seed, "device": cfg.device}
    if init is None:
        return train_config(spec, **kwargs)
    from neuralgym.world.model import WorldModelConfig
    from neuralgym.world.weights import read_metadata

    meta = read_metadata(Path(init))
    config = json.loads(meta.get("neuralgym.config", "{}"))
    model_fields = {f.name for f in dataclasses.fields(WorldModelConfig)}
    model = WorldModelConfig(**{k: v for k, v in config.items() if k in model_fields})
    steps = steps or 0  # an update's steps are always the loop's
    kwargs.update(
        continued_settings(json.loads(meta.get("neuralgym.info", "{}")).get("train") or {}),
        init_from=init,
        model=model,
        lr=cfg.world_lr,
        steps=steps,
        warmup=min(TrainConfig().warmup, steps // 5),
        reward_classes=model.reward_classes,
    )
    return TrainConfig(**kwargs)


def train_world(spec: WorldSpec, data: Path, out: Path, run_dir: Path, cfg: TrainConfig, progress: bool) -> dict:
    """Train one world to ``out`` (resuming ``run_dir``'s checkpoint if a kill left one)."""
    from neuralgym.training.loop import train

    out.parent.mkdir(parents=True, exist_ok=True)
    return train(spec, data, out, run_dir, cfg, resume=run_dir.is_dir(), progress=progress)


def dataset_steps(data_dir: Path, spec: WorldSpec) -> int:
    """Real steps held by the episodes in ``data_dir`` (0 where it does not exist yet)."""
    from neuralgym.training.data import episode_paths, load_episode

    if not data_dir.is_dir():
        return 0
    return sum(len(load_episode(p, spec.key)) for p in episode_paths(data_dir))
