"""``neuralgym worlds``, ``neuralgym new`` and ``neuralgym collect``: the worlds there are,
a spec for a new one, and the real episodes a world is trained on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuralgym.tools.cliutil import add_common, add_threads, add_world, positive_int, print_json, stdout_to_stderr


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``worlds``, ``new`` and ``collect`` subcommands."""
    p = sub.add_parser(
        "worlds",
        help="list every world found (shipped, NEURALGYM_WORLDS, the user folder)",
        description="List every world: the shipped ones, those in the folders of NEURALGYM_WORLDS "
        "(os.pathsep-separated) and in the user worlds folder, and the spec files named.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="spec files to list as well")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    p.set_defaults(func=cmd_worlds)

    p = sub.add_parser(
        "new",
        help="write a commented spec for any Gymnasium env",
        description="Write a commented world spec for a Gymnasium env, from what the env says about "
        "itself (spaces, render size and fps, action names); edit it, then collect and train.",
    )
    p.add_argument("env_id", help="a Gymnasium env id, e.g. Acrobot-v1 (module:Id also works)")
    p.add_argument("--out", default=None, help="spec file to write (default: <world>.toml in the working folder)")
    p.add_argument("--name", default=None, help="the world's CamelCase name (default: from the env id)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser(
        "collect",
        help="collect episodes from the real env (resumable)",
        description="Collect whole episodes from the real env until --out holds at least --steps "
        "transitions. Rerunning continues where the last run stopped. The folder is "
        "locked while collecting: a second collect into it is refused.",
    )
    add_world(p)
    p.add_argument(
        "--steps",
        type=positive_int,
        required=True,
        help="the least number of transitions the dataset should hold: episodes are kept whole, so the "
        "last one runs to its end and the total may exceed it (one Pong game is ~4,000 steps)",
    )
    p.add_argument(
        "--policy",
        default=None,
        help="behaviour policy: 'random', 'random-hold', 'noop', 'blind' (one of exploit's blind "
        "patterns per episode), another built-in name, or an SB3 .zip (default: the spec's)",
    )
    p.add_argument("--out", default=None, help="dataset folder (default: data/<world>)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i (default: 0)")
    add_threads(p)
    add_common(p)
    p.set_defaults(func=cmd_collect)


def _world_row(spec: Any) -> dict[str, Any]:
    from neuralgym.world.spaces import action_space_for

    return {
        "key": spec.key,
        "name": spec.name,
        "dream_id": spec.dream_id,
        "real_id": spec.real_id,
        "source_id": spec.source_id,
        "obs_shape": list(spec.obs_shape),
        "action_space": str(action_space_for(spec)),
        "context_length": spec.context_length,
        "weights_file": str(spec.weights_path),
        "weights_exist": spec.weights_path.is_file(),
        "spec_file": str(spec.path) if spec.path else None,
        "shipped": spec.shipped,
    }


def cmd_worlds(args: argparse.Namespace) -> int:
    from neuralgym.world.catalog import all_specs, get_spec, search_dirs
    from neuralgym.world.spec import ENVS_DIR

    specs = all_specs()
    for path in args.specs:
        spec = get_spec(path)
        specs.setdefault(spec.key, spec)
    rows = [_world_row(spec) for spec in specs.values()]
    if args.json:
        print_json({"envs_dir": str(ENVS_DIR), "search_path": [str(d) for d in search_dirs()], "worlds": rows})
        return 0
    if not rows:
        print(f"no worlds in {', '.join(map(str, search_dirs()))}")
        return 0
    header = ("key", "dream id", "real id", "obs", "actions", "K", "weights")
    table = [header] + [
        (
            r["key"],
            r["dream_id"],
            r["real_id"],
            "x".join(map(str, r["obs_shape"])),
            r["action_space"],
            str(r["context_length"]),
            f"{Path(r['weights_file']).name} ({'ok' if r['weights_exist'] else 'missing'})",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for r in rows:
        if not r["shipped"]:
            print(f"{r['key']}: spec {r['spec_file']}, weights {r['weights_file']}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from neuralgym.tools.newworld import write_new_spec

    path = write_new_spec(args.env_id, Path(args.out) if args.out else None, force=args.force, name=args.name)
    print(
        f"wrote {path}; next, in its folder: `neuralgym collect {path.name} --steps 20000`, "
        f"`neuralgym train {path.name}`, `neuralgym eval {path.name}`"
    )
    return 0


def _dataset_size(data_dir: Path) -> tuple[int, int]:
    """(episodes, transitions) of the episode files in ``data_dir``."""
    import numpy as np

    from neuralgym.training.data import DatasetError, episode_paths, is_npz_archive, not_an_episode_message

    paths = episode_paths(data_dir)
    steps = 0
    for p in paths:
        if not is_npz_archive(p):
            raise DatasetError(not_an_episode_message(p))
        try:
            with np.load(p, allow_pickle=False) as z:
                steps += len(z["actions"])
        except Exception as e:  # noqa: BLE001 - any unreadable file is a dataset error
            reason = "not a plain array file" if "pickle" in str(e).lower() else f"{type(e).__name__}: {e}"
            raise DatasetError(f"{p}: unreadable episode file ({reason}); delete it and rerun collect") from e
    return len(paths), steps


def cmd_collect(args: argparse.Namespace) -> int:
    from neuralgym.training.collect import collect
    from neuralgym.world.catalog import get_spec

    spec = get_spec(args.world)
    out = Path(args.out) if args.out else Path("data") / spec.key
    _dataset_size(out)  # an unreadable episode already there is a one-line error, not a traceback
    from neuralgym.common.threads import torch_threads

    with stdout_to_stderr(args.json), torch_threads(args.threads):
        for _ in collect(spec, out, args.steps, policy=args.policy, seed=args.seed, progress=not args.no_progress):
            pass
    episodes, steps = _dataset_size(out)
    summary = {
        "world": spec.key,
        "out": str(out),
        "episodes": episodes,
        "steps": steps,
        "steps_requested": args.steps,
        "policy": args.policy or spec.collect_policy,
        "seed": args.seed,
    }
    if args.json:
        print_json(summary)
    else:
        more = (
            f" (--steps {args.steps} is a minimum: episodes are kept whole, so the last one ran to its end)"
            if steps > args.steps
            else ""
        )
        print(f"{out}: {episodes} episodes, {steps} steps of {spec.key}{more}")
    return 0
