"""``neuralgym learn``: the loop every dream-trained agent of note uses (SimPLe, World Models'
iterative procedure, IRIS, STORM, DIAMOND, Dreamer): collect real experience with the
current agent, update the world on everything collected so far, train the agent in the
dream, repeat, under a fixed budget of real steps.

One iteration ``i``:

1. **world** ``i``: the starting world (the shipped one, a file, or one trained from
   scratch on the spec's behaviour policy's episodes) for ``i = 0``; after that, world
   ``i - 1`` trained further on all the episodes collected so far.
2. **agent** ``i``: trained in world ``i``'s dream by the world's agent recipe, from scratch
   or, with ``agent_continues``, from agent ``i - 1``'s weights (a latent agent observes world
   ``i``'s own encoder features, which a world update moves only a little).
3. **evaluation**: ``eval_episodes`` real episodes with the agent's deterministic actions;
   they are recorded too (they are real experience and count against the budget).
4. **collection** (all but the last iteration): real episodes by the agent, acting at random
   with a per-episode probability from ``epsilons``, plus a ``behaviour_share`` of the
   spec's behaviour policy, so the world keeps seeing what the agent does not do.

The agent kept is the one with the best real evaluation. With ``reference``, the same agent
recipe is then trained in the real env for as many real steps as the loop used, and both
agents play the same fresh real episodes: what the world bought over spending the real steps
on the agent directly (its steps are a measurement, outside the budget). Everything is written under
``out`` (worlds, agents, data, ``state.json``, ``report.json``, TensorBoard curves in ``tb/``);
each phase ends with an atomic write of ``state.json`` and ``--resume`` continues from the
last finished phase. Per-world settings are data: the spec's ``[learn]`` table (any field of
:class:`LearnConfig` and an ``agent`` table of recipe changes), else the defaults below.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from neuralgym.agents.recipe import AgentRecipe, recipe_for
from neuralgym.common.files import atomic_write_bytes, atomic_write_json
from neuralgym.tools.learn_config import LearnConfig, jsonable
from neuralgym.tools.learn_world import dataset_steps, train_world, world_train_config
from neuralgym.world.spec import WorldSpec

STATE = "state.json"
REPORT = "report.json"


def _log(msg: str) -> None:
    print(f"[learn {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Loop:
    """One ``learn`` run: its folder, its state, its phases."""

    def __init__(
        self,
        spec: WorldSpec,
        cfg: LearnConfig,
        out: Path,
        resume: bool = False,
        progress: bool = True,
        reference: bool = False,
    ):
        self.spec, self.cfg, self.out, self.progress, self.with_reference = spec, cfg, Path(out), progress, reference
        self.data = self.out / "data"
        state_path = self.out / STATE
        if state_path.is_file() and not resume:
            raise FileExistsError(
                f"{self.out} holds a learn run already: pass --resume to continue it, or choose another --out"
            )
        if resume and state_path.is_file():
            self.state = json.loads(state_path.read_text())
            if self.state["config"] != jsonable(cfg):
                raise ValueError(f"{self.out}: --resume with other settings than the run's ({state_path})")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            self.state = {
                "world": spec.key,
                "config": jsonable(cfg),
                "real_steps": 0,
                "iterations": [],
                "wall_seconds": 0.0,
                "done": False,
            }
        self.recipe: AgentRecipe = recipe_for(spec, cfg.obs).replace(**cfg.agent)
        self._t0 = time.time() - self.state["wall_seconds"]

    # -- bookkeeping ---------------------------------------------------------------------
    def _save(self) -> None:
        self.state["wall_seconds"] = time.time() - self._t0
        atomic_write_json(self.out / STATE, self.state)

    def _iteration(self, i: int) -> dict[str, Any]:
        while len(self.state["iterations"]) <= i:
            self.state["iterations"].append({"iteration": len(self.state["iterations"])})
        return self.state["iterations"][i]

    def _data_phase(self, it: dict[str, Any], name: str) -> int:
        """Start (or restart after a kill) a phase that writes episodes: drop the episodes a
        killed attempt left, so a resumed run collects exactly what an uninterrupted one does."""
        from neuralgym.agents.collect import next_episode_index
        from neuralgym.training.data import EPISODE_RE, episode_paths

        key = f"{name}_first_episode"
        if key in it:
            for p in episode_paths(self.data):
                if int(EPISODE_RE.match(p.name).group(1)) >= it[key]:
                    p.unlink()
        else:
            self.data.mkdir(parents=True, exist_ok=True)
            it[key] = next_episode_index(self.data)
        return it[key]

    def collection_steps(self) -> int:
        """Real steps of each iteration's collection: what the budget leaves after the first
        world's data and the worst case of every evaluation."""
        cfg = self.cfg
        if cfg.iterations == 1:
            return 0
        evals = cfg.iterations * cfg.eval_episodes * self.spec.max_episode_steps
        first = max(cfg.first_steps, self.spec.max_episode_steps) if self.from_scratch else 0
        left = cfg.real_steps - first - evals
        if left < 0:
            raise ValueError(
                f"--real-steps {cfg.real_steps} does not cover the first world's {first} steps and "
                f"{cfg.iterations} evaluations of up to {evals // cfg.iterations} steps each"
            )
        return left // (cfg.iterations - 1)

    @property
    def from_scratch(self) -> bool:
        return self.cfg.init == "scratch" or (self.cfg.init == "shipped" and not self.spec.weights_path.is_file())

    # -- phases --------------------------------------------------------------------------
    def world(self, i: int) -> str:
        it = self._iteration(i)
        if "world" in it:
            return it["world"]
        t0 = time.time()
        if i == 0 and not self.from_scratch:
            path = str(self.spec.weights_path if self.cfg.init == "shipped" else Path(self.cfg.init).resolve())
            it["world"], it["world_seconds"] = path, 0.0
            self._save()
            return path
        if i == 0:  # from scratch: the behaviour policy's episodes first
            self._data_phase(it, "behaviour")
            _log(f"iteration 0: {self.cfg.first_steps} real steps of the behaviour policy {self.spec.collect_policy!r}")
            self.state["real_steps"] += self._behaviour(self.cfg.first_steps, seed=self.cfg.seed * 1_000_003)
        path = self._train_world(i, init=None if i == 0 else self._iteration(i - 1)["world"])
        it["world"], it["world_seconds"] = path, time.time() - t0
        self._save()
        return path

    def _train_world(self, i: int, init: str | None) -> str:
        steps = self.cfg.first_world_steps if init is None else self.cfg.world_steps
        cfg = world_train_config(self.spec, self.cfg, steps, seed=self.cfg.seed + i, init=init)
        _log(
            f"iteration {i}: world {'from scratch' if init is None else 'update'}, {cfg.steps} steps on "
            f"{dataset_steps(self.data, self.spec)} real steps of data"
        )
        out = self.out / "worlds" / f"world_{i}.safetensors"
        result = train_world(self.spec, self.data, out, self.out / "worlds" / f"run_{i}", cfg, self.progress)
        self._iteration(i)["world_result"] = {k: v for k, v in result.items() if isinstance(v, (int, float))}
        return str(out)

    def agent(self, i: int) -> str:
        from neuralgym.agents.ppo import AgentRun, train_agent

        it = self._iteration(i)
        if "agent" in it:
            return it["agent"]
        t0 = time.time()
        out = self.out / "agents" / f"agent_{i}"
        _log(f"iteration {i}: agent, {self.recipe.timesteps} dream steps x {self.recipe.members} member(s)")
        meta = train_agent(
            AgentRun(
                recipe=self.recipe,
                env_id=f"neuralgym/{self.spec.name}-v0",
                out=str(out),
                seed=self.cfg.seed + 1000 * i,
                weights=it["world"],
                device=self.cfg.device,
                progress=self.progress,
                init_from=self._iteration(i - 1)["agent"] if self.cfg.agent_continues and i > 0 else None,
            )
        )
        it["agent"], it["agent_seconds"] = str(out), time.time() - t0
        it["dream_return"] = meta["train_return_last100"]
        self._save()
        return str(out)

    def evaluate(self, i: int) -> None:
        from neuralgym.agents.collect import play_agent
        from neuralgym.agents.ppo import load_agent

        it = self._iteration(i)
        if "real_return" in it:
            return
        t0 = time.time()
        self._data_phase(it, "eval")
        agent, meta = load_agent(it["agent"], seed=self.cfg.seed)
        got = play_agent(
            self.spec,
            agent,
            meta,
            self.data,
            seed=self.cfg.seed * 7919 + 2 * i,
            epsilons=[0.0],
            episodes=self.cfg.eval_episodes,
            n_envs=self.cfg.eval_episodes,
        )
        self.state["real_steps"] += got.steps
        it.update(
            real_return=float(sum(got.returns) / len(got.returns)),
            real_returns=got.returns,
            eval_steps=got.steps,
            eval_seconds=time.time() - t0,
            real_steps_after_eval=self.state["real_steps"],
        )
        _log(
            f"iteration {i}: real return {it['real_return']:.1f} over {got.episodes} episodes "
            f"(dream {it.get('dream_return') or float('nan'):.1f}); real steps so far {self.state['real_steps']}"
        )
        self._save()

    def collect(self, i: int) -> None:
        from neuralgym.agents.collect import play_agent
        from neuralgym.agents.ppo import load_agent

        it = self._iteration(i)
        if "collect_steps" in it or i == self.cfg.iterations - 1:
            return
        t0 = time.time()
        self._data_phase(it, "collect")
        budget = self.collection_steps()
        behaviour = int(round(budget * self.cfg.behaviour_share))
        agent, meta = load_agent(it["agent"], seed=self.cfg.seed)
        _log(
            f"iteration {i}: collect {budget - behaviour} real steps with the agent, "
            f"{behaviour} with the behaviour policy"
        )
        got = play_agent(
            self.spec,
            agent,
            meta,
            self.data,
            seed=self.cfg.seed * 7919 + 2 * i + 1,
            epsilons=self.cfg.epsilons,
            steps=budget - behaviour,
            n_envs=self.cfg.n_envs,
        )
        steps = got.steps
        if behaviour >= self.spec.max_episode_steps:
            steps += self._behaviour(behaviour, seed=self.cfg.seed * 1_000_003 + 10_007 * (i + 1))
        self.state["real_steps"] += steps
        it.update(collect_steps=steps, collect_returns=got.returns, collect_seconds=time.time() - t0)
        self._save()

    def _keep_agent(self, agent: str) -> None:
        """Copy the agent (its members and its JSON, renamed to match) to ``out/agent.*``."""
        from neuralgym.agents.ppo import member_path

        meta = json.loads(Path(f"{agent}.json").read_text())
        kept = self.out / "agent"
        names = []
        for i, _ in enumerate(meta["members"]):
            dst, data = member_path(kept, i), member_path(agent, i).read_bytes()
            atomic_write_bytes(dst, lambda f, data=data: f.write(data))
            names.append(dst.name)
        atomic_write_json(Path(f"{kept}.json"), {**meta, "members": names})

    def reference(self) -> dict[str, Any]:
        """The world's agent recipe trained in the real env on the loop's real steps (an
        ensemble's members share them), then it and the kept agent on the same fresh real
        episodes; nothing it plays is recorded."""
        from neuralgym.agents.ppo import AgentRun, evaluate_agent, train_agent

        if "reference" in self.state:
            return self.state["reference"]
        t0 = time.time()
        steps = self.state["real_steps"]
        out = self.out / "agents" / "reference"
        real_id = f"neuralgym/{self.spec.name}-real-v0"
        _log(f"reference: the agent recipe trained in the real env for {steps} real steps")
        train_agent(
            AgentRun(
                recipe=self.recipe.replace(timesteps=max(1, steps // self.recipe.members)),
                env_id=real_id,
                out=str(out),
                seed=self.cfg.seed,
                weights=self.state["world_file"],  # latent agents: the kept world's encoder
                device=self.cfg.device,
                progress=self.progress,
            )
        )
        seed, episodes = self.cfg.seed * 7919 + 104_729, self.cfg.eval_episodes
        ref = evaluate_agent(out, real_id, episodes, seed=seed)  # one lane: long episodes count as much
        kept = evaluate_agent(self.out / "agent.zip", real_id, episodes, seed=seed)
        self.state["reference"] = {
            "real_steps": steps,
            "episodes": episodes,
            "seed": seed,
            "reference_return": ref["mean"],
            "reference_std": ref["std"],
            "agent_return": kept["mean"],
            "agent_std": kept["std"],
            "seconds": time.time() - t0,
        }
        _log(f"reference: real-trained {ref['mean']:.1f}, dream-trained (kept) {kept['mean']:.1f} on the same episodes")
        self._save()
        return self.state["reference"]

    def _behaviour(self, cap: int, seed: int) -> int:
        """Whole episodes of the spec's behaviour policy, at most ``cap`` steps (at least one
        episode); returns the steps taken."""
        from neuralgym.training.collect import collect

        before = dataset_steps(self.data, self.spec)
        target = before + max(1, cap - self.spec.max_episode_steps + 1)  # the last episode may run to its limit
        for _ in collect(self.spec, self.data, target, seed=seed, progress=self.progress):
            pass
        return dataset_steps(self.data, self.spec) - before

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        self.collection_steps()  # a budget that cannot work fails before anything runs
        writer = SummaryWriter(str(self.out / "tb"))
        for i in range(self.cfg.iterations):
            self.world(i)
            self.agent(i)
            self.evaluate(i)
            it = self._iteration(i)
            x = it["real_steps_after_eval"]
            writer.add_scalar("return/real", it["real_return"], x)
            if it.get("dream_return") is not None:
                writer.add_scalar("return/dream", it["dream_return"], x)
            for k, v in it.get("world_result", {}).items():
                writer.add_scalar(f"world/{k}", v, i)
            self.collect(i)
        writer.close()
        best = max(range(self.cfg.iterations), key=lambda j: (self._iteration(j)["real_return"], j))
        self._keep_agent(self._iteration(best)["agent"])
        self.state.update(
            done=True, best_iteration=best, agent=str(self.out / "agent.zip"), world_file=self._iteration(best)["world"]
        )
        self._save()
        if self.with_reference:
            self.reference()
        report = {
            "world": self.spec.key,
            "real_steps": self.state["real_steps"],
            "best_iteration": best,
            "real_return": self._iteration(best)["real_return"],
            "agent": self.state["agent"],
            "weights": self.state["world_file"],
            "wall_seconds": self.state["wall_seconds"],
            "iterations": [
                {k: v for k, v in it.items() if not k.endswith("_first_episode")} for it in self.state["iterations"]
            ],
            "config": self.state["config"],
        }
        if "reference" in self.state:
            report["reference"] = self.state["reference"]
        atomic_write_json(self.out / REPORT, report)
        return report
