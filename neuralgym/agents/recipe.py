"""Agent recipes as data: a world's spec file declares them, nothing per world lives in code.

A spec may hold, per observation mode, an ``[agent.latent]`` / ``[agent.pixels]`` table
(the PPO settings under ``[agent.<obs>.ppo]``); a world without one gets
:data:`GENERIC`, the stable-baselines3 zoo's classic-control settings.

.. code-block:: toml

    [agent.latent]
    timesteps = 600000
    n_envs = 16
    drift_policy = "truncate"

    [agent.latent.ppo]
    n_steps = 64
    learning_rate = 1e-3
    net_arch = [64, 64]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from neuralgym.world.spec import WorldSpec, spec_table

OBS_MODES = ("latent", "pixels")


@dataclass(frozen=True)
class PPOParams:
    """stable-baselines3 PPO settings (the subset the recipes tune)."""

    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] | None = None  # hidden layers of the policy and value MLPs (None: SB3's)
    log_std_init: float | None = None  # Box actions: the initial log std of the Gaussian policy

    def ppo_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``stable_baselines3.PPO``."""
        kwargs: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "n_steps",
                "batch_size",
                "n_epochs",
                "learning_rate",
                "gamma",
                "gae_lambda",
                "clip_range",
                "ent_coef",
            )
        }
        policy_kwargs: dict[str, Any] = {}
        if self.net_arch is not None:
            policy_kwargs["net_arch"] = list(self.net_arch)
        if self.log_std_init is not None:
            policy_kwargs["log_std_init"] = self.log_std_init
        if policy_kwargs:
            kwargs["policy_kwargs"] = policy_kwargs
        return kwargs


@dataclass(frozen=True)
class AgentRecipe:
    """How to train a PPO agent in a world's dream."""

    obs: str = "latent"  # "latent": the world's encoder features (MlpPolicy); "pixels": stacked frames (CnnPolicy)
    timesteps: int = 200_000  # per member
    n_envs: int = 16
    drift_policy: str = "none"  # the dream's drift policy while training ("truncate": PPO bootstraps at the cut)
    members: int = 1  # > 1: an ensemble acting on its members' mean action probabilities
    mirror: bool = False  # save mirror-symmetric agents (a world whose spec declares [actions] mirror)
    compile: bool = False  # the dream's model under torch.compile
    # while training, each lane repeats its previous action with this probability (agents/sticky.py):
    # a random start then swings a system far enough to find its goal; the saved agent is not sticky
    sticky: float = 0.0
    ppo: PPOParams = field(default_factory=PPOParams)

    def __post_init__(self) -> None:
        if self.obs not in OBS_MODES:
            raise ValueError(f"recipe obs must be one of {OBS_MODES}, got {self.obs!r}")
        for name in ("timesteps", "n_envs", "members"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"recipe {name} must be an int >= 1, got {value!r}")
        if isinstance(self.sticky, bool) or not isinstance(self.sticky, (int, float)) or not 0 <= self.sticky < 1:
            raise ValueError(f"recipe sticky must be a probability in [0, 1), got {self.sticky!r}")
        if self.mirror and self.obs != "latent":
            raise ValueError("a mirror-symmetric recipe needs obs = 'latent'")

    def replace(self, **changes: Any) -> AgentRecipe:
        """A copy with ``changes`` (``None`` values are ignored); ``ppo`` may be a dict of changes."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if isinstance(changes.get("ppo"), dict):
            changes["ppo"] = dataclasses.replace(self.ppo, **_tuples(changes["ppo"]))
        return dataclasses.replace(self, **changes)


#: a world whose spec declares no recipe (classic-control-like settings on the latent; sticky
#: actions so that a goal reached only by a long swing is found: Acrobot, docs/learn.md)
GENERIC = {
    "latent": AgentRecipe(obs="latent", sticky=0.75, ppo=PPOParams(net_arch=(64, 64))),
    "pixels": AgentRecipe(
        obs="pixels",
        timesteps=200_000,
        n_envs=8,
        ppo=PPOParams(n_steps=128, n_epochs=4, learning_rate=2.5e-4, ent_coef=0.01),
    ),
}


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def recipe_from_table(table: dict[str, Any], obs: str, where: str = "recipe") -> AgentRecipe:
    """An :class:`AgentRecipe` from a TOML table (unknown keys are an error naming them)."""
    table = dict(table)
    ppo_table = table.pop("ppo", {})
    known = {f.name for f in dataclasses.fields(AgentRecipe)} - {"obs", "ppo"}
    known_ppo = {f.name for f in dataclasses.fields(PPOParams)}
    unknown = sorted(set(table) - known) + [f"ppo.{k}" for k in sorted(set(ppo_table) - known_ppo)]
    if unknown:
        raise ValueError(
            f"{where}: unknown recipe keys {', '.join(unknown)}; expected {', '.join(sorted(known))} "
            f"and ppo.{{{', '.join(sorted(known_ppo))}}}"
        )
    return AgentRecipe(obs=obs, ppo=PPOParams(**_tuples(ppo_table)), **_tuples(table))


def recipe_for(spec: WorldSpec, obs: str = "latent") -> AgentRecipe:
    """The recipe ``spec`` declares for ``obs`` (``[agent.<obs>]``), else :data:`GENERIC`'s."""
    if obs not in OBS_MODES:
        raise ValueError(f"obs must be one of {OBS_MODES}, got {obs!r}")
    table = spec_table(spec, "agent").get(obs)
    if table is None:
        return GENERIC[obs]
    return recipe_from_table(table, obs, where=f"{spec.path}: [agent.{obs}]")
