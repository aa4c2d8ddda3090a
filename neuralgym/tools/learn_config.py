"""The settings of ``neuralgym learn``: a dataclass, and a spec's ``[learn]`` table on top of it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from neuralgym.world.spec import WorldSpec, spec_table


@dataclass
class LearnConfig:
    """The loop's settings; a spec's ``[learn]`` table overrides the defaults, flags override both."""

    real_steps: int = 50_000  # the whole loop's real env steps (behaviour, agent collection, evaluation)
    iterations: int = 3
    init: str = "shipped"  # "shipped" (the world's own weights; scratch where it has none), "scratch" or a file
    first_steps: int = 20_000  # from scratch: behaviour-policy steps before the first world
    first_world_steps: int | None = None  # from scratch: training steps of the first world (None: the spec's [train])
    world_steps: int = 600  # training steps of each world update
    world_lr: float = 5e-4
    eval_episodes: int = 10
    epsilons: tuple[float, ...] = (0.0, 0.1, 0.25)  # random-action rates of the collecting agent's episodes
    behaviour_share: float = 0.25  # of each collection, played by the spec's behaviour policy
    obs: str = "latent"
    agent: dict[str, Any] = field(default_factory=dict)  # changes to the world's agent recipe
    agent_continues: bool = True  # each iteration's agent starts from the last one's weights (False: from scratch)
    n_envs: int = 8  # real env lanes while collecting
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in (
            "real_steps",
            "iterations",
            "first_steps",
            "world_steps",
            "eval_episodes",
            "n_envs",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if "steps" in name else 1):
                raise ValueError(f"learn {name} must be an int >= {0 if 'steps' in name else 1}, got {value!r}")
        fws = self.first_world_steps
        if fws is not None and (isinstance(fws, bool) or not isinstance(fws, int) or fws < 0):
            raise ValueError(f"learn first_world_steps must be an int >= 0 or None, got {fws!r}")
        if not isinstance(self.agent_continues, bool):
            raise ValueError(f"learn agent_continues must be true or false, got {self.agent_continues!r}")
        if not 0.0 <= self.behaviour_share <= 1.0:
            raise ValueError(f"learn behaviour_share must be in [0, 1], got {self.behaviour_share!r}")
        self.epsilons = tuple(float(e) for e in self.epsilons)
        if not self.epsilons or not all(0.0 <= e <= 1.0 for e in self.epsilons):
            raise ValueError(f"learn epsilons must be probabilities, got {self.epsilons!r}")


def learn_config(spec: WorldSpec, **overrides: Any) -> LearnConfig:
    """The spec's ``[learn]`` settings with ``overrides`` (``None`` values ignored) on top."""
    table = dict(spec_table(spec, "learn"))
    known = {f.name for f in dataclasses.fields(LearnConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"{spec.path}: [learn] has unknown keys {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "agent" in overrides:  # recipe changes add to the spec's
        overrides["agent"] = {**table.get("agent", {}), **overrides["agent"]}
    table.update(overrides)
    if isinstance(table.get("epsilons"), list):
        table["epsilons"] = tuple(table["epsilons"])
    return LearnConfig(**table)


def jsonable(cfg: LearnConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
