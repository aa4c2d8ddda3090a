"""Episode files: the dataset format, checksums, loading, and the lock a collector holds.

A dataset is a folder of ``episode_NNNNNN.npz`` files, one per episode, each holding
``frames`` (T+1, H, W, C) uint8, ``actions`` (T,) or (T, A), ``rewards``,
``terminated``, ``truncated`` (T,), the world key and a SHA-256 of the arrays. Files
are written to a temporary name and renamed, so a crash loses at most the episode in
progress; ``collect`` (:mod:`neuralgym.training.collect`) resumes from what is on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock falls back to the pid alone
    fcntl = None  # type: ignore[assignment]

import numpy as np

from neuralgym.common.files import atomic_write_bytes, pid_alive
from neuralgym.world.spec import WorldSpec

EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")
ARRAY_KEYS = ("frames", "actions", "rewards", "terminated", "truncated")
#: the lock file a collector holds in its dataset folder (it holds the collector's pid)
LOCK_NAME = ".neuralgym-collect.lock"


class DatasetError(ValueError):
    """An episode file is missing, corrupt, or of another world."""


@dataclass
class Episode:
    frames: np.ndarray  # (T+1, H, W, C) uint8: frames[0] is the reset frame
    actions: np.ndarray  # (T,) int64 or (T, A) float32: actions[t] leads frames[t] -> frames[t+1]
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.actions)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in ARRAY_KEYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_episode(path: Path, episode: Episode, world: str) -> None:
    arrays = {k: getattr(episode, k) for k in ARRAY_KEYS}
    digest = _checksum(arrays)
    atomic_write_bytes(
        path,
        lambda f: np.savez_compressed(f, **arrays, world=np.array(world), sha256=np.array(digest)),
    )


def load_episode(path: Path, world: str | None = None) -> Episode:
    """Load and verify one episode file; raise :class:`DatasetError` naming the file."""
    if not is_npz_archive(path):
        raise DatasetError(not_an_episode_message(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ARRAY_KEYS}
            stored = str(z["sha256"])
            stored_world = str(z["world"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DatasetError(f"{path}: unreadable or incomplete episode file ({_reason(e)})") from e
    except Exception as e:  # zipfile.BadZipFile and friends
        raise DatasetError(f"{path}: corrupt episode file ({type(e).__name__}: {_reason(e)})") from e
    if not all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values()):
        raise DatasetError(f"{path}: corrupt episode file (an array entry is not a numeric .npy array)")
    if _checksum(arrays) != stored:
        raise DatasetError(f"{path}: checksum mismatch, the file is corrupt")
    if world is not None and stored_world != world:
        raise DatasetError(f"{path}: episode of world {stored_world!r}, expected {world!r}")
    ep = Episode(**arrays)
    if ep.frames.shape[0] != len(ep) + 1:
        raise DatasetError(f"{path}: {ep.frames.shape[0]} frames for {len(ep)} actions (expected actions + 1)")
    return ep


def is_npz_archive(path: Path) -> bool:
    """Whether ``path`` is a zip archive (what every ``.npz`` is), checked without unpickling anything."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def not_an_episode_message(path: Path) -> str:
    return f"{path}: not an episode file (expected a .npz archive written by `neuralgym collect`); move or delete it"


def _reason(e: BaseException) -> str:
    """An exception's message for a user, minus numpy's advice to unpickle untrusted data."""
    text = " ".join(str(e).split()) or type(e).__name__
    return "not a plain array file" if "pickle" in text.lower() else text


def episode_paths(data_dir: Path) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p for p in data_dir.iterdir() if EPISODE_RE.match(p.name))


def load_dataset(data_dir: Path, spec: WorldSpec) -> list[Episode]:
    """Every episode in ``data_dir``, verified, with frames of the world's shape."""
    paths = episode_paths(data_dir)
    if not paths:
        raise DatasetError(f"no episode files (episode_NNNNNN.npz) in {data_dir}")
    episodes = []
    for p in paths:
        ep = load_episode(p, spec.key)
        if ep.frames.shape[1:] != spec.obs_shape:
            raise DatasetError(f"{p}: frames of shape {ep.frames.shape[1:]}, world expects {spec.obs_shape}")
        if len(ep) >= 1:
            episodes.append(ep)
    return episodes


def prepare_folder(folder: Path, what: str = "dataset folder") -> Path:
    """Create ``folder`` (and its parents) or raise :class:`DatasetError` saying why it cannot
    be a folder: a file is in the way, or no permission."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == folder else f"lies under {blocker}, which is a file"
        raise DatasetError(f"{folder} {where}, not a folder: expected a {what}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise DatasetError(f"cannot create the {what} {folder}: permission denied ({e.filename})") from e
    return folder


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _held_message(folder: Path, pid: int | None, lock: Path) -> str:
    who = f"process {pid}" if pid is not None else "another process"
    return (
        f"{folder} is locked by {who}, another collect writing to it (lock file {lock}); wait for it to finish "
        f"or choose another --out (if no collect is running there, delete the lock file)"
    )


@contextlib.contextmanager
def dataset_lock(folder: Path) -> Iterator[Path]:
    """Hold ``folder``'s lock file for a writer: it holds the writer's pid, and while
    held another writer gets a :class:`DatasetError` instead of mixing two datasets.

    The lock is an ``flock`` on the file, so a killed writer's lock is free at once; a
    lock file naming a process that no longer exists is stale and taken over. The file
    is removed on release. Raises :class:`DatasetError` when the folder is not writable."""
    folder = Path(folder)
    lock = folder / LOCK_NAME
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0), 0o644)
        except FileExistsError:  # no flock on this platform: the pid decides
            try:
                owner = int(lock.read_text().strip() or -1)
            except (OSError, ValueError):
                owner = -1
            if owner != os.getpid() and pid_alive(owner):
                raise DatasetError(_held_message(folder, owner, lock)) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except PermissionError as e:
            raise DatasetError(
                f"{folder} is not writable (cannot create {lock.name}: permission denied); "
                "expected a folder this user can write to"
            ) from e
        except OSError as e:
            raise DatasetError(f"{folder} is not writable (cannot create {lock.name}: {e.strerror})") from e
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise DatasetError(_held_message(folder, _read_pid(fd), lock)) from None
                try:  # a releasing owner may have removed the file we opened: retry on the new one
                    same = os.stat(lock).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    fd = -1
                    continue
                owner = _read_pid(fd)
                if owner is not None and owner != os.getpid() and pid_alive(owner):
                    raise DatasetError(_held_message(folder, owner, lock))
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        try:
            yield lock
        finally:
            with contextlib.suppress(OSError):
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    lock.unlink()
            os.close(fd)
        return
    raise DatasetError(f"could not lock {folder}: its lock file {lock} keeps changing")
