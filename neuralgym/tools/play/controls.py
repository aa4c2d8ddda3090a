"""Play's own keys (quit, pause, step, reset, switch, record, screenshot, help) and the
polling of pygame's key events into held game keys and control commands.

A key the world's keymap uses belongs to the keymap, so e.g. Space pauses only in
worlds that do not bind it (P always does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuralgym.world.keymap import Binding, key_code

# command, key names (first is the one shown in help), description
CONTROLS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("quit", ("escape",), "quit"),
    ("pause", ("space", "p"), "pause / resume"),
    ("step", ("period",), "single step (paused)"),
    ("reset", ("return", "kp_enter"), "reset episode"),
    ("switch", ("tab",), "switch dream <-> real"),
    ("record", ("r", "f9"), "start / stop recording"),
    ("screenshot", ("f12",), "save a screenshot"),
    ("help", ("f1",), "show / hide this help"),
)
_KEY_LABELS = {"escape": "Esc", "space": "Space", "period": ".", "return": "Enter", "kp_enter": "", "tab": "Tab"}


def control_keys(bindings: Sequence[Binding]) -> tuple[dict[int, str], list[tuple[str, str]]]:
    """Key code -> control command, and (key label, description) rows for the help.

    A key the world's keymap uses belongs to the keymap, so e.g. Space pauses only in
    worlds that do not bind it (P always does)."""
    taken = set().union(*(b.keys for b in bindings)) if bindings else set()
    codes: dict[int, str] = {}
    rows: list[tuple[str, str]] = []
    for command, names, description in CONTROLS:
        free = [n for n in names if key_code(n) not in taken]
        for n in free:
            codes[key_code(n)] = command
        if free:
            labels = [_KEY_LABELS.get(n, n.upper()) for n in free]
            rows.append((" / ".join(label for label in labels if label), description))
    return codes, rows


def poll(pg: Any, held: list[int], relevant: set[int], controls: dict[int, str]) -> list[str]:
    """Update ``held`` (the game keys held, in press order) from pygame's events; return the
    control commands pressed."""
    commands = []
    for event in pg.event.get():
        if event.type == pg.QUIT:
            commands.append("quit")
        elif event.type == pg.KEYDOWN:
            if event.key in relevant:
                if event.key not in held:
                    held.append(event.key)
            elif event.key in controls:
                commands.append(controls[event.key])
        elif event.type == pg.KEYUP and event.key in held:
            held.remove(event.key)
        elif event.type == getattr(pg, "WINDOWFOCUSLOST", -1):
            held.clear()  # no stuck keys after alt-tab
    return commands
