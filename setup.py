"""Ship the repo-root ``envs/`` and ``weights/`` inside the package.

In a checkout, ``neuralgym.world.spec`` reads ``envs/`` and ``weights/`` from the repo root.
An installed wheel has no repo root, so the build copies them to
``neuralgym/_data/{envs,weights}``, which ``neuralgym.world.spec`` looks for first. An
editable install keeps reading the checkout's folders, so nothing is copied there.
Everything else about the package lives in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: the shipped worlds, by name: only these files go into the package (never whatever
#: else lies in envs/ or weights/, such as a world a user trained in the checkout)
WORLDS = ("cartpole", "pong", "carracing")
SHIPPED = {"envs": tuple(f"{w}.toml" for w in WORLDS), "weights": tuple(f"{w}.safetensors" for w in WORLDS)}


class BuildPyWithWorlds(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data_root = Path(self.build_lib) / "neuralgym" / "_data"
        shutil.rmtree(data_root, ignore_errors=True)  # no stale worlds from an earlier build
        for folder, names in SHIPPED.items():
            target = data_root / folder
            self.mkpath(str(target))
            for name in names:
                src = ROOT / folder / name
                if not src.is_file():
                    raise FileNotFoundError(f"shipped world file {src} is missing")
                self.copy_file(str(src), str(target / name))


setup(cmdclass={"build_py": BuildPyWithWorlds})
