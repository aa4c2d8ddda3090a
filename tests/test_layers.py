"""The package's layers, checked from its source: every module sits in one layer, imports
only from its own layer or below, the imports form no cycle, and no file is long.

Layers, bottom to top (``LAYERS``): ``common`` (helpers that import nothing of ours),
``world`` (what a world is), ``dream`` (running one), ``training`` (making one),
``metrics`` (measuring one against reality), ``agents`` (PPO agents for a world), ``tools``
(the command line, play, bench, the learn loop);
the package root (``neuralgym/__init__.py``, ``__main__.py``) sits above them all. Every
``import`` statement counts, also those inside functions: a lazy import still points
the dependency its way.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import neuralgym

PACKAGE = Path(neuralgym.__file__).resolve().parent
LAYERS = ("common", "world", "dream", "training", "metrics", "agents", "tools")
MAX_LINES = 400


def module_name(path: Path, root: Path) -> str:
    """``root/dream/core.py`` -> ``neuralgym.dream.core`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([root.name, *parts])


def layer(module: str, package: str) -> int:
    """The module's layer index; the package root (and its ``__main__``) is above every layer."""
    parts = module.split(".")[1:]
    if not parts or parts == ["__main__"]:
        return len(LAYERS)
    if parts[0] not in LAYERS:
        raise ValueError(f"{module} is in no layer: put it in one of {package}.{{{', '.join(LAYERS)}}}")
    return LAYERS.index(parts[0])


def imported(tree: ast.AST, module: str, is_package: bool, known: set[str], package: str) -> set[str]:
    """The modules of ``package`` that ``tree`` imports anywhere (``from a import b``: ``a.b``
    where that is a module, else ``a``; relative imports resolved)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == package or name.startswith(package + "."):
                while name not in known and "." in name:  # `import a.b.c` where c is an attribute
                    name = name.rsplit(".", 1)[0]
                out.add(name)
    out.discard(module)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def problems(root: Path) -> list[str]:
    """Everything wrong with the layering of the package at ``root``: modules in no layer,
    imports from a higher layer, a cycle, files over ``MAX_LINES`` lines."""
    package = root.name
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        text = path.read_text()
        lines = text.count("\n") + (not text.endswith("\n") and bool(text))
        if lines > MAX_LINES:
            found.append(f"{path.relative_to(root.parent)} has {lines} lines (at most {MAX_LINES})")
        try:
            own = layer(module, package)
        except ValueError as e:
            found.append(str(e))
            continue
        graph[module] = imported(ast.parse(text, str(path)), module, path.name == "__init__.py", known, package)
        for target in sorted(graph[module]):
            try:
                theirs = layer(target, package)
            except ValueError:
                continue  # reported as its own module
            if theirs > own:
                found.append(
                    f"{module} ({LAYERS[own]}) imports {target} from a higher layer "
                    f"({LAYERS[theirs] if theirs < len(LAYERS) else 'the package root'})"
                )
    cycle = find_cycle(graph)
    if cycle:
        found.append("import cycle: " + " -> ".join(cycle))
    return found


def test_the_package_is_layered() -> None:
    assert problems(PACKAGE) == []


def test_every_layer_exists() -> None:
    for name in LAYERS:
        assert (PACKAGE / name / "__init__.py").is_file(), name


def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``fakegym`` of the given files (relative path -> source)."""
    root = tmp_path / "fakegym"
    for rel, source in {"__init__.py": "", **{f"{name}/__init__.py": "" for name in LAYERS}, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(source))
    return root


def test_a_clean_fake_package_passes(tmp_path: Path) -> None:
    root = fake_package(
        tmp_path,
        {
            "common/a.py": "import os\n",
            "world/b.py": "from fakegym.common.a import x\nfrom fakegym.common import a\n",
            "tools/c.py": "def f():\n    from ..world import b\n    import fakegym.dream\n",
        },
    )
    assert problems(root) == []


@pytest.mark.parametrize(
    "source",
    [
        "from fakegym.tools.c import f\n",  # a name from a module
        "from fakegym.tools import c\n",  # a module from a package
        "import fakegym.tools.c\n",
        "def lazy():\n    from ..tools import c\n",  # relative, inside a function
        "from fakegym import register\n",  # the package root is above every layer
    ],
)
def test_an_import_from_a_higher_layer_fails(tmp_path: Path, source: str) -> None:
    root = fake_package(tmp_path, {"world/b.py": source, "tools/c.py": "f = 1\n"})
    assert any(
        p.startswith("fakegym.world.b (world) imports fakegym") and "from a higher layer" in p for p in problems(root)
    )


def test_a_cycle_fails(tmp_path: Path) -> None:
    root = fake_package(
        tmp_path,
        {"dream/a.py": "from fakegym.dream import b\n", "dream/b.py": "def f():\n    from fakegym.dream.a import x\n"},
    )
    assert problems(root) == ["import cycle: fakegym.dream.a -> fakegym.dream.b -> fakegym.dream.a"]


def test_a_module_outside_the_layers_fails(tmp_path: Path) -> None:
    root = fake_package(tmp_path, {"loose.py": "x = 1\n"})
    assert any("fakegym.loose is in no layer" in p for p in problems(root))


def test_a_long_file_fails(tmp_path: Path) -> None:
    root = fake_package(tmp_path, {"common/long.py": "x = 1\n" * (MAX_LINES + 1)})
    assert problems(root) == [f"fakegym/common/long.py has {MAX_LINES + 1} lines (at most {MAX_LINES})"]
