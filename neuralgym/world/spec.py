"""What a world is: the dataclasses of a world spec (``envs/<world>.toml``) and where the
shipped worlds' files live.

A spec says everything that is world-specific: which real env to model, how its
frames are preprocessed, the action set, the context length K, play keys, drift
defaults and the weights file. Nothing else in the pipeline special-cases a world.
:mod:`neuralgym.world.parse` reads a spec file into a :class:`WorldSpec`, and
:mod:`neuralgym.world.catalog` finds the specs (shipped, ``NEURALGYM_WORLDS``, the
user's folder, registered files) and looks worlds up by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from neuralgym.world.drift import DriftSpec

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # neuralgym/ (this file is neuralgym/world/spec.py)


def _data_dir(name: str) -> Path:
    """``envs/`` and ``weights/`` sit at the repo root in a checkout and inside the
    package (``neuralgym/_data/``) in an installed wheel."""
    if (PACKAGE_DIR / "_data").is_dir():
        return PACKAGE_DIR / "_data" / name
    return PACKAGE_DIR.parent / name


ENVS_DIR = _data_dir("envs")
WEIGHTS_DIR = _data_dir("weights")


class SpecError(ValueError):
    """A world spec is missing a field or has a value of the wrong kind."""


#: the largest observation side: a frame of 1024x1024x3 is already 3 MiB a step per lane
MAX_FRAME_SIDE = 1024
#: frame skip and reset no-ops beyond these would make one step or reset run for minutes
MAX_FRAME_SKIP = 1000
MAX_RESET_NOOPS = 100_000


@dataclass(frozen=True)
class PreprocessSpec:
    """How a source frame becomes an observation: crop, resize, colour, frame skip."""

    crop: tuple[int, int, int, int] | None = None  # top, bottom, left, right (source pixels)
    size: tuple[int, int] = (64, 64)  # height, width
    grayscale: bool = False
    frame_skip: int = 1
    frame_source: str = "render"  # "render": env.render(); "observation": the obs is the frame
    # source steps with the no-op action after each reset, drawn from [lo, hi] (Atari's
    # "no-op starts"; e.g. Pong's wait for the serve)
    reset_noops: tuple[int, int] = (0, 0)

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


@dataclass(frozen=True)
class ActionSpec:
    """The world's action space: ``discrete`` (an index into ``values``) or ``box``."""

    kind: str  # "discrete" | "box"
    values: tuple[Any, ...] = ()  # discrete: source-env action for each index
    names: tuple[str, ...] = ()
    low: tuple[float, ...] = ()  # box
    high: tuple[float, ...] = ()
    noop: Any = 0  # what play sends when no key is held
    # discrete: mirror[i] is action i's mirror image when the frames are flipped left-right
    # (the world is then left-right symmetric; neuralgym.dream.mirror). None: not symmetric.
    mirror: tuple[int, ...] | None = None

    @property
    def n(self) -> int:
        """Discrete: number of actions. Box: dimension."""
        return len(self.values) if self.kind == "discrete" else len(self.low)

    @property
    def model_dim(self) -> int:
        """Width of the action vector the model sees (one-hot or the box vector)."""
        return self.n


@dataclass(frozen=True)
class PlaySpec:
    """How a human plays the world: the window's frame rate and the keymap."""

    render_fps: int = 30
    keymap: dict[str, Any] = field(default_factory=dict)  # key name (or "a+b" combo) -> action


@dataclass(frozen=True)
class WorldSpec:
    """One world, as declared in ``envs/<key>.toml``."""

    key: str  # file stem, lower case: "cartpole"
    name: str  # CamelCase id part: "CartPole"
    source_id: str
    source_kwargs: dict[str, Any]
    preprocess: PreprocessSpec
    actions: ActionSpec
    context_length: int
    max_episode_steps: int
    play: PlaySpec
    drift: DriftSpec
    weights_file: str
    collect_policy: str = "random"
    source_module: str | None = None  # imported before gym.make(source_id): the module that registers it
    path: Path | None = None

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        h, w = self.preprocess.size
        return (h, w, self.preprocess.channels)

    @property
    def dream_id(self) -> str:
        return f"neuralgym/{self.name}-v0"

    @property
    def real_id(self) -> str:
        return f"neuralgym/{self.name}-real-v0"

    @property
    def shipped(self) -> bool:
        """Whether this is one of the package's own worlds (its spec lies in ``ENVS_DIR``)."""
        return self.path is None or self.path.resolve().parent == ENVS_DIR.resolve()

    @property
    def weights_path(self) -> Path:
        """Shipped worlds: ``WEIGHTS_DIR/<file>``. Other specs: ``<file>`` relative to the
        spec's own folder (or absolute)."""
        file = Path(self.weights_file).expanduser()
        if file.is_absolute():
            return file
        if self.shipped:
            return WEIGHTS_DIR / file
        return self.path.parent / file  # type: ignore[union-attr]


def is_action_mirror(mirror: Any, n: int) -> bool:
    """Whether ``mirror`` maps each of ``n`` discrete actions to its mirror image: a list of
    ints, a permutation of 0..n-1 that pairs actions both ways (mirror[mirror[i]] == i)."""
    return (
        isinstance(mirror, (list, tuple))
        and all(isinstance(m, int) and not isinstance(m, bool) for m in mirror)
        and sorted(mirror) == list(range(n))
        and all(mirror[m] == i for i, m in enumerate(mirror))
    )


def spec_table(spec: WorldSpec, name: str) -> dict[str, Any]:
    """The raw ``[name]`` table of ``spec``'s file (``{}`` where it has none): the settings the
    spec holds as data for the layers above (``[train]``, ``[agent]``, ``[learn]``)."""
    if spec.path is None or not spec.path.is_file():
        return {}
    return tomllib.loads(spec.path.read_text()).get(name, {})
