"""Command lines the CLI tests share."""

from __future__ import annotations

from pathlib import Path


def train_argv(tmp_path: Path, *data: Path, steps: int = 1) -> list[str]:
    """``neuralgym train cartpole`` on ``data`` for ``steps`` steps on the CPU, its run folder
    and weights file under ``tmp_path``."""
    return [
        "train",
        "cartpole",
        "--data",
        *map(str, data),
        "--steps",
        str(steps),
        "--device",
        "cpu",
        "--run-dir",
        str(tmp_path / "run"),
        "--out",
        str(tmp_path / "w.safetensors"),
    ]
