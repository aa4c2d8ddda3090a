"""Keyboard -> action: a world's ``[play] keymap`` turned into pygame key codes.

A keymap maps key names (pygame's, case-insensitive: ``left``, ``a``, ``space``, ``f1``)
or ``+``-joined combos (``up+space``) to an action: a discrete action index, or for a
Box world a partial action vector (``left = [-1, 0, 0]``). With several bindings held:

* discrete worlds take the most specific binding (the one with the most keys) and,
  between equally specific ones, the one whose key was pressed last;
* continuous worlds sum the held bindings (a combo's own binding replaces the
  bindings of its parts) and clip the sum to the action box.

With nothing bound held the action is the world's ``actions.noop``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuralgym.common.window import require_pygame
from neuralgym.world.spec import WorldSpec

# Names people write that pygame spells differently.
_ALIASES = {
    "fire": "space",
    "enter": "return",
    "esc": "escape",
    "ctrl": "lctrl",
    "shift": "lshift",
    "alt": "lalt",
    "del": "delete",
    ".": "period",
    ",": "comma",
    "-": "minus",
    "=": "equals",
    "/": "slash",
    ";": "semicolon",
}

# Above this many bindings a Box world's table lists combos of at most 3 bindings
# (the full power set would be 2**n entries).
_MAX_FULL_POWERSET = 10


@dataclass(frozen=True)
class Binding:
    """One keymap entry: the keys that must all be held, and the action they give."""

    name: str
    keys: frozenset[int]
    action: Any  # int (discrete) or float32 vector (box)


def key_code(name: str) -> int:
    """pygame key code for a key name such as ``left``, ``a``, ``space``, ``f1`` or ``.``."""
    pygame = require_pygame()
    raw = name.strip().lower()
    n = _ALIASES.get(raw, raw)
    for attr in (f"K_{n}", f"K_{n.upper()}"):
        code = getattr(pygame, attr, None)
        if isinstance(code, int):
            return code
    raise ValueError(
        f"unknown key name {name!r} in keymap; expected a pygame key name such as "
        "'left', 'right', 'up', 'down', 'space', 'a', 'f1', or a combo like 'up+space'"
    )


def _action_value(spec: WorldSpec, name: str, value: Any) -> Any:
    a = spec.actions
    if a.kind == "discrete":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < a.n:
            raise ValueError(f"keymap entry {name!r}: expected a discrete action index in [0, {a.n}), got {value!r}")
        return int(value)
    vec = np.asarray(value, dtype=np.float32)
    if vec.shape != (a.n,) or not np.all(np.isfinite(vec)):
        raise ValueError(f"keymap entry {name!r}: expected a list of {a.n} finite numbers, got {value!r}")
    return vec


def parse_keymap(spec: WorldSpec) -> list[Binding]:
    """The spec's keymap as :class:`Binding` s, in keymap order; raises ``ValueError``
    naming the entry for unknown keys, bad actions or two entries with the same keys."""
    bindings: list[Binding] = []
    seen: dict[frozenset[int], str] = {}
    for name, value in spec.play.keymap.items():
        parts = [p for p in name.split("+") if p.strip()]
        if not parts:
            raise ValueError(f"keymap entry {name!r}: no key named")
        keys = frozenset(key_code(p) for p in parts)
        if keys in seen:
            raise ValueError(f"keymap entries {seen[keys]!r} and {name!r} name the same keys")
        seen[keys] = name
        bindings.append(Binding(name, keys, _action_value(spec, name, value)))
    return bindings


def noop_action(spec: WorldSpec) -> Any:
    """The action sent while no bound key is held (a fresh array for Box worlds)."""
    a = spec.actions
    return int(a.noop) if a.kind == "discrete" else np.asarray(a.noop, dtype=np.float32)


def action_for_keys(held: Sequence[int], bindings: Sequence[Binding], spec: WorldSpec) -> Any:
    """The action for the keys held now, ``held`` in press order (oldest first)."""
    held_set = set(held)
    matches = [b for b in bindings if b.keys <= held_set]
    # A combo that is held overrides the bindings of its own parts.
    matches = [b for b in matches if not any(b.keys < o.keys for o in matches)]
    if not matches:
        return noop_action(spec)
    if spec.actions.kind == "discrete":
        order = {k: i for i, k in enumerate(held)}
        best = max(matches, key=lambda b: (len(b.keys), max(order[k] for k in b.keys)))
        return best.action
    total = np.sum([b.action for b in matches], axis=0, dtype=np.float32)
    return np.clip(total, np.asarray(spec.actions.low, np.float32), np.asarray(spec.actions.high, np.float32))


def keys_to_action(spec: WorldSpec) -> dict[tuple[int, ...], Any]:
    """``{sorted key codes: action}`` as ``gymnasium.utils.play.play`` expects.

    Discrete worlds list each binding's own keys. Box worlds also list every combination
    of bindings (the union of their keys) with the summed, clipped action, because
    ``play`` looks up exactly the set of keys held.
    """
    bindings = parse_keymap(spec)
    if spec.actions.kind == "discrete":
        return {tuple(sorted(b.keys)): b.action for b in bindings}
    sizes: Iterable[int] = range(1, len(bindings) + 1)
    if len(bindings) > _MAX_FULL_POWERSET:
        sizes = range(1, 4)
    table: dict[tuple[int, ...], Any] = {}
    for r in sizes:
        for combo in itertools.combinations(bindings, r):
            keys = tuple(sorted(frozenset().union(*(b.keys for b in combo))))
            if keys not in table:
                table[keys] = action_for_keys(keys, bindings, spec)
    return table


def describe_action(spec: WorldSpec, action: Any) -> str:
    """Short human label for an action: the discrete name, or the vector."""
    if spec.actions.kind == "discrete":
        names = spec.actions.names
        return names[action] if 0 <= action < len(names) else str(action)
    return "[" + ", ".join(f"{v:+.1f}" for v in np.asarray(action).ravel()) + "]"
