"""``neuralgym new ENV_ID``: a commented world spec for any Gymnasium env.

Everything the spec says is read from the env itself: its action space (kind, values,
bounds, names where the env gives them through ``get_action_meanings()``), its render
size and fps, whether its observation already is a frame. The rest are the defaults a
first world needs: the whole frame scaled to 64x64 grey, K = 4, random actions held
for a few steps as the behaviour policy, a keymap for play, and no drift threshold (training calibrates one).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.world.catalog import all_specs
from neuralgym.world.parse import load_spec
from neuralgym.world.spec import ENVS_DIR, SpecError

#: action names of classic-control envs that do not name their actions themselves
KNOWN_ACTION_NAMES: dict[str, tuple[list[str], int]] = {  # id prefix -> (names, noop index)
    "CartPole": (["push left", "push right"], 0),
    "Acrobot": (["torque -1", "torque 0", "torque +1"], 1),
    "MountainCar-": (["push left", "no push", "push right"], 1),
    "LunarLander": (["noop", "fire left engine", "fire main engine", "fire right engine"], 0),
}

#: Atari action meanings -> play keys
_MEANING_KEYS = {"UP": "up", "DOWN": "down", "LEFT": "left", "RIGHT": "right", "FIRE": "space"}


def world_names(env_id: str) -> tuple[str, str]:
    """(key, CamelCase name) for ``env_id``: ``Acrobot-v1`` -> (``acrobot``, ``Acrobot``)."""
    base = env_id.split(":")[-1].split("/")[-1]
    base = re.sub(r"-v\d+$", "", base)
    name = re.sub(r"[^0-9A-Za-z]", "", base)
    if not name or not name[0].isalpha():
        raise SpecError(f"cannot derive a world name from env id {env_id!r}: expected an id like 'Acrobot-v1'")
    name = name[0].upper() + name[1:]
    return name.lower(), name


def _source_module(env_id: str) -> str | None:
    if ":" in env_id:
        return env_id.split(":", 1)[0]
    if env_id.startswith("ALE/"):
        return "ale_py"
    return None


def _make(env_id: str) -> tuple[gym.Env, str]:
    """The env with rgb_array rendering where it has it; and the id without a module prefix."""
    module = _source_module(env_id)
    if module:
        importlib.import_module(module)
    source_id = env_id.split(":", 1)[1] if ":" in env_id else env_id
    try:
        return gym.make(source_id, render_mode="rgb_array"), source_id
    except gym.error.Error as e:
        raise SpecError(f"cannot make Gymnasium env {env_id!r}: {e}") from e
    except TypeError:  # no render_mode argument: its observation must be the frame
        return gym.make(source_id), source_id


def _is_frame(space: gym.Space) -> bool:
    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and (len(space.shape) == 2 or (len(space.shape) == 3 and space.shape[2] in (1, 3)))
    )


def _discrete_keymap(n: int, names: list[str], meanings: list[str] | None, noop: int) -> dict[str, int]:
    """Atari meanings -> arrow keys and space; two or three actions -> left/right; else 1..9."""
    keymap: dict[str, int] = {}
    if meanings:
        for i, meaning in enumerate(meanings):
            parts = [k for word, k in _MEANING_KEYS.items() if word in meaning.upper()]
            if parts and "+".join(parts) not in keymap:
                keymap["+".join(parts)] = i
        if keymap:
            return keymap
    others = [i for i in range(n) if i != noop] if n == 3 else list(range(n))
    if n in (2, 3) and len(others) == 2:
        return {"left": others[0], "right": others[1]}
    return {str(i + 1): i for i in range(min(n, 9))}


def _toml(value: Any) -> str:
    """A TOML literal for a string, number, bool or list of them (JSON spells them alike)."""
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _inline_table(d: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in d.items()) + " }"


def spec_text(env_id: str, key: str, name: str) -> str:
    """The commented TOML of a new world modelling ``env_id``."""
    env, source_id = _make(env_id)
    try:
        obs, _ = env.reset(seed=0)
        frame_source = "observation" if _is_frame(env.observation_space) else "render"
        frame = obs if frame_source == "observation" else env.render()
        if frame is None or not hasattr(frame, "shape") or len(frame.shape) not in (2, 3):
            raise SpecError(
                f"{env_id}: neither its observation nor render() is an image; "
                "a world needs frames (expected render_mode='rgb_array' support)"
            )
        h, w = int(frame.shape[0]), int(frame.shape[1])
        fps = int(env.metadata.get("render_fps") or 30)
        max_steps = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else 1000
        space = env.action_space
        meanings = None
        get_meanings = getattr(env.unwrapped, "get_action_meanings", None)
        if callable(get_meanings):
            try:
                meanings = [str(m) for m in get_meanings()]
            except Exception:  # noqa: BLE001 - optional: names are a nicety
                meanings = None
    finally:
        env.close()

    module = _source_module(env_id)
    lines = [
        f"# {name}: a world of the Gymnasium env {source_id}, written by `neuralgym new {env_id}`.",
        "# Every value below was read from the env or is a first-world default: edit freely.",
        f'name = "{name}"                # the ids are neuralgym/{name}-v0 (dream) and neuralgym/{name}-real-v0',
        "",
        "[source]",
        f'id = "{source_id}"',
        "kwargs = {}                   # keyword arguments of gym.make(id, ...)",
    ]
    if module:
        lines.append(f'module = "{module}"          # imported first: it registers the id')
    lines += [
        "",
        "[preprocess]",
        f"# The env's frames are {h}x{w} ({'its observation' if frame_source == 'observation' else 'env.render()'}).",
        "# The crop keeps the whole frame; cut it to the part where things move for a sharper world.",
        f"crop = [0, {h}, 0, {w}]        # top, bottom, left, right (source pixels)",
        "size = [64, 64]               # height, width of the observation (at least 36x36)",
        "grayscale = true              # false: RGB (3 channels); grey is cheaper where colour says little",
        "frame_skip = 1                # source steps per world step (the action repeats)",
        f'frame_source = "{frame_source}"      # "render": env.render(); "observation": the observation is the frame',
        "",
        "[actions]",
    ]
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        values = list(range(start, start + n))
        known = next((v for prefix, v in KNOWN_ACTION_NAMES.items() if source_id.startswith(prefix)), None)
        if meanings and len(meanings) == n:
            names = [m.lower() for m in meanings]
            noop = names.index("noop") if "noop" in names else 0
            origin = "from the env's get_action_meanings()"
        elif known and len(known[0]) == n:
            names, noop = known
            origin = "neuralgym's names for this env"
        else:
            names, noop = [f"action {v}" for v in values], 0
            origin = "the env does not name them"
        keymap: dict[str, Any] = _discrete_keymap(n, names, meanings, noop)
        lines += [
            f'kind = "discrete"             # {space}',
            f"values = {_toml(values)}        # the source action of each world action",
            f"names = {_toml(names)}  # {origin}",
            f"noop = {noop}                      # what play sends with no key held",
        ]
    elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        low = [float(v) if np.isfinite(v) else -1.0 for v in space.low]
        high = [float(v) if np.isfinite(v) else 1.0 for v in space.high]
        noop = [float(np.clip(0.0, lo, hi)) for lo, hi in zip(low, high)]
        keymap = {}
        if len(low) >= 1:
            keymap["left"] = [low[0] if i == 0 else noop[i] for i in range(len(low))]
            keymap["right"] = [high[0] if i == 0 else noop[i] for i in range(len(low))]
        if len(low) >= 2:
            keymap["up"] = [high[1] if i == 1 else noop[i] for i in range(len(low))]
            keymap["down"] = [low[1] if i == 1 else noop[i] for i in range(len(low))]
        lines += [
            f'kind = "box"                  # {space}'
            + (
                "; infinite bounds became [-1, 1]"
                if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
                else ""
            ),
            f"low = {_toml(low)}",
            f"high = {_toml(high)}",
            f"names = {_toml([f'a{i}' for i in range(len(low))])}",
            f"noop = {_toml(noop)}",
        ]
    else:
        raise SpecError(f"{env_id}: action space {space} is not supported; expected Discrete or a 1-D Box")
    lines += [
        "",
        "[model]",
        "context_length = 4            # K frames of history; more (up to 32) where motion is slow to read",
        "",
        "[episode]",
        f"max_steps = {max_steps}              # the dream's episode limit (gym.make's max_episode_steps overrides it)",
        "",
        "[play]",
        f"render_fps = {fps}               # the env's own metadata['render_fps']",
        f"keymap = {_inline_table(keymap)}",
        "",
        "[drift]",
        '# What the dream does once its frames have drifted from anything real: "truncate" ends',
        '# the episode, "reanchor" swaps in the nearest real context, "none" only reports it.',
        'policy = "truncate"',
        "# No threshold here: `neuralgym train` calibrates one on held-out data and stores it in",
        "# the weights. Set `threshold = ...` (accumulated predicted RMSE, grey levels) to override it.",
        "max_horizon = 0               # also act after this many dreamt steps (0: no cap)",
        "hysteresis = 2                # consecutive steps over the threshold before acting",
        "fidelity_psnr = 30.0          # a dream frame under this PSNR (dB) against reality counts as off",
        "",
        "[collect]",
        "# The behaviour policy of `neuralgym collect` (a built-in name or an SB3 .zip). Random",
        "# actions held for a few steps swing a system far, so goals get reached and learned;",
        '# "random" draws a new one every step.',
        'policy = "random-hold"',
        "",
        "[train]",
        "# How `neuralgym train` makes the world (any TrainConfig field; its flags override these).",
        "# The next frame is decoded from a code of [train.model] bottleneck numbers, so a long dream",
        "# shows plausible frames instead of piling up debris; the decoder first learns to draw real",
        "# frames (decoder_pretrain steps); noise on the context frames teaches recovery.",
        "steps = 2000",
        "decoder_pretrain = 3000",
        "context_noise = 0.02",
        "",
        "[train.model]",
        "bottleneck = 32",
        "",
        "[weights]",
        f"# Relative to this file's folder (or absolute): `neuralgym train {key}.toml`, run in this",
        "# folder, writes exactly here.",
        f'file = "runs/{key}/{key}.safetensors"',
        "",
    ]
    return "\n".join(lines)


def write_new_spec(env_id: str, out: Path | None = None, force: bool = False, name: str | None = None) -> Path:
    """Write the spec of a new world for ``env_id`` to ``out`` (default ``<key>.toml`` in the
    working folder); check that it loads; return its path."""
    key, derived = world_names(env_id)
    name = name or derived
    out = Path(out) if out is not None else Path(f"{key}.toml")
    if out.suffix.lower() != ".toml":
        raise SpecError(f"--out {out}: expected a .toml file name (its stem is the world's key)")
    if out.exists() and not force:
        raise SpecError(f"{out} exists; pass --force to overwrite it")
    shipped = all_specs(ENVS_DIR)
    stem = out.stem.lower()
    if stem in shipped or name.lower() in {s.name.lower() for s in shipped.values()}:
        raise SpecError(
            f"world {name!r} ({stem}.toml) would take the ids of a shipped world; "
            f"choose another --out file name and --name"
        )
    text = spec_text(env_id, stem, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    try:
        load_spec(out)
    except SpecError as e:  # a bug here, not the user's: say so plainly
        raise SpecError(f"the spec written to {out} does not load ({e}); edit it by hand") from e
    return out
