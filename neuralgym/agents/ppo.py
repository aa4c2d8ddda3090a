"""Train a PPO agent (stable-baselines3) in a neuralgym env, save it, load it, evaluate it.

An agent on disk is ``OUT.zip`` (the SB3 model; member 0 of an ensemble),
``OUT.member<i>.zip`` for the other members, and ``OUT.json``: what :func:`load_agent`
needs to rebuild the same observation pipeline (mode, world weights, mirror pair) and policy.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.save_util import load_from_zip_file

from neuralgym.agents.ensemble import PolicyEnsemble
from neuralgym.agents.pipeline import FRAME_STACK, make_agent_env
from neuralgym.agents.recipe import AgentRecipe
from neuralgym.common.files import atomic_write_bytes, atomic_write_json
from neuralgym.dream.mirror import action_mirror, symmetrise
from neuralgym.world.catalog import get_spec


@dataclass(frozen=True)
class AgentRun:
    """One training run: the recipe, where it trains, where it goes."""

    recipe: AgentRecipe
    env_id: str  # a neuralgym id: neuralgym/<World>-v0 (dream) or -real-v0
    out: str  # output path without extension
    seed: int = 0
    weights: str | None = None  # world weights (None: the shipped world)
    device: str = "cpu"  # the world model's device (and the CNN policy's in pixel mode)
    temperature: float | None = None
    uncertainty_penalty: float = 0.0
    progress: bool = True
    init_from: str | None = None  # an agent (OUT or OUT.zip) whose policy weights start each member


def member_seeds(seed: int, members: int) -> list[int]:
    """Member 0 trains with ``seed`` itself (a one-member run is a plain PPO run); the
    others with independent seeds drawn from it."""
    return [seed] + [int(x) for x in np.random.SeedSequence(seed).generate_state(members - 1)]


def member_path(out: str | Path, i: int) -> Path:
    return Path(f"{out}.zip") if i == 0 else Path(f"{out}.member{i}.zip")


def _train_member(run: AgentRun, i: int, seed: int, threads: int) -> dict[str, Any]:
    """Trains one PPO agent (in its own process for an ensemble) and saves it."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    r = run.recipe
    env = make_agent_env(
        run.env_id,
        obs=r.obs,
        n_envs=r.n_envs,
        seed=seed,
        weights=run.weights,
        device=run.device,
        drift_policy=r.drift_policy,
        temperature=run.temperature,
        uncertainty_penalty=run.uncertainty_penalty,
        compile=r.compile,
        sticky=r.sticky,
    )
    policy = "MlpPolicy" if r.obs == "latent" else "CnnPolicy"
    agent_device = run.device if r.obs == "pixels" else "cpu"  # small MLPs run faster on the CPU
    model = PPO(
        policy, env, seed=seed, verbose=0, device=agent_device, tensorboard_log=f"{run.out}_tb", **r.ppo.ppo_kwargs()
    )
    if run.init_from is not None:  # continued training: member i starts from the agent's member i (or its first)
        zip_path, meta = agent_paths(run.init_from)
        names = meta.get("members") or [zip_path.name]
        start = zip_path.parent / names[min(i, len(names) - 1)]
        _, params, _ = load_from_zip_file(start, device=agent_device)
        if params is None or "policy" not in params:
            raise ValueError(f"{start} holds no policy weights to start from")
        try:
            model.policy.load_state_dict(params["policy"])
        except RuntimeError as e:
            raise ValueError(f"{start} does not fit this recipe's policy (observations, actions, net_arch): {e}") from e
    t0 = time.time()
    model.learn(
        total_timesteps=r.timesteps,
        progress_bar=run.progress and i == 0,
        tb_log_name="ppo" if i == 0 else f"ppo_member{i}",
    )
    wall = time.time() - t0
    if r.mirror:  # the saved agent acts on the scene and its mirror image (observations: the pair)
        model = symmetrise(model, action_mirror(get_spec(run.env_id)))
    path = member_path(run.out, i)
    atomic_write_bytes(path, model.save)  # SB3 saves into a file object too
    env.close()
    return {
        "path": path.name,
        "seed": seed,
        "wall_seconds": wall,
        "returns": [float(ep["r"]) for ep in model.ep_info_buffer],
    }


def train_agent(run: AgentRun) -> dict[str, Any]:
    """Train ``run.recipe.members`` agents (one process each when more than one), write
    ``OUT.zip`` (+ members) and ``OUT.json``; return the JSON's contents."""
    r = run.recipe
    if r.mirror and get_spec(run.env_id).actions.mirror is None:
        raise ValueError(
            f"a mirror-symmetric recipe needs a world whose spec declares [actions] mirror "
            f"(world {get_spec(run.env_id).key!r})"
        )
    Path(run.out).parent.mkdir(parents=True, exist_ok=True)
    seeds = member_seeds(run.seed, r.members)
    t0 = time.time()
    if r.members == 1:
        results = [_train_member(run, 0, seeds[0], torch.get_num_threads())]
    else:  # one process per member, all at once: the cores are shared out, no member waits for another
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // r.members)
        with ProcessPoolExecutor(r.members, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_train_member, [run] * r.members, range(r.members), seeds, [threads] * r.members))
    returns = [x for res in results for x in res["returns"]]
    meta = {
        "env": run.env_id,
        "obs": r.obs,
        "frame_stack": FRAME_STACK if r.obs == "pixels" else 1,
        "weights": str(Path(run.weights).resolve()) if run.weights else None,
        "temperature": run.temperature,
        "uncertainty_penalty": run.uncertainty_penalty,
        "drift_policy": r.drift_policy,
        "mirror": r.mirror,
        "timesteps": r.timesteps,
        "n_envs": r.n_envs,
        "compile": r.compile,
        "recipe": asdict(r),
        "seed": run.seed,
        "init_from": str(agent_paths(run.init_from)[0].resolve()) if run.init_from else None,
        "members": [res["path"] for res in results],
        "member_seeds": seeds,
        "wall_seconds": time.time() - t0,
        "member_wall_seconds": [res["wall_seconds"] for res in results],
        "train_return_last100": float(np.mean(returns)) if returns else None,
    }
    atomic_write_json(Path(f"{run.out}.json"), meta)
    return meta


def agent_paths(model_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(OUT.zip, the contents of OUT.json)`` for an agent given as ``OUT`` or ``OUT.zip``."""
    model_path = str(model_path)
    zip_path = Path(model_path if model_path.endswith(".zip") else model_path + ".zip")
    if not zip_path.is_file():
        raise FileNotFoundError(f"no agent at {zip_path}")
    meta_path = zip_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"obs": "pixels"}
    return zip_path, meta


def load_agent(model_path: str | Path, seed: int = 0) -> tuple[PPO | PolicyEnsemble, dict[str, Any]]:
    """The saved agent (one SB3 model, or the ensemble its ``.json`` lists) and its metadata."""
    zip_path, meta = agent_paths(model_path)
    names = meta.get("members") or [zip_path.name]
    paths = [zip_path.parent / name for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the agent's members are missing: {', '.join(missing)}")
    models = [PPO.load(str(p), device="cpu") for p in paths]
    return (models[0] if len(models) == 1 else PolicyEnsemble(models, seed)), meta


def evaluate_agent(
    model_path: str | Path,
    env_id: str,
    episodes: int,
    seed: int = 0,
    deterministic: bool = True,
    n_envs: int = 1,
    weights: str | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` whole episodes of the saved agent in ``env_id`` (the env as it is:
    its own drift policy; only the observation pipeline is rebuilt) and summarise the returns.
    ``weights``: the world whose encoder builds latent observations (default: the agent's)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    model, meta = load_agent(model_path, seed)
    env = make_agent_env(
        env_id,
        obs=meta["obs"],
        n_envs=n_envs,
        seed=seed,
        weights=weights or meta.get("weights"),
        temperature=meta.get("temperature"),
        drift_policy=meta.get("drift_policy"),
        mirror=meta.get("mirror", False),
    )
    returns: list[float] = []
    lengths: list[int] = []
    obs = env.reset()
    while len(returns) < episodes:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, _, dones, infos = env.step(action)
        for i in np.flatnonzero(dones):
            if "episode" in infos[i] and len(returns) < episodes:
                returns.append(float(infos[i]["episode"]["r"]))
                lengths.append(int(infos[i]["episode"]["l"]))
    env.close()
    return {
        "env": env_id,
        "model": str(agent_paths(model_path)[0]),
        "obs": meta["obs"],
        "members": len(getattr(model, "models", [model])),
        "episodes": episodes,
        "seed": seed,
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "min": float(np.min(returns)),
        "max": float(np.max(returns)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
    }
