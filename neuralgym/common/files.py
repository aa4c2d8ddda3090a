"""Files written so that a crash or a kill never leaves half of one: write a temporary,
fsync it, rename it over the target; and the cleanup of temporaries a killed writer left.

Also where derived data is cached (``NEURALGYM_CACHE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file_object)`` on a temporary file, fsync it, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON through :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    if not 0 < pid < 2**31:  # no such pid (and os.kill would overflow)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except OSError:
        return False
    try:  # a killed but not yet reaped process is gone for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Delete ``.{name}.tmp<PID>`` files (the temporaries of :func:`atomic_write_bytes`) in
    ``folder`` whose writer is gone: what a killed write left behind. A live writer's
    temporary stays. Returns the files deleted."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.tmp(\d+)$")
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:  # no folder (yet), or not readable: nothing to clean
        return removed
    for p in entries:
        m = pattern.match(p.name)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def cache_dir() -> Path:
    """Where derived data (real-frame indexes) is cached: ``NEURALGYM_CACHE``, default ``~/.cache/neuralgym``."""
    return Path(os.environ.get("NEURALGYM_CACHE", Path.home() / ".cache" / "neuralgym"))
