"""The package's import graph: layers that only import downwards, no cycles, no stage importing a stage.

Every `import` statement counts, inside functions too, so a cycle cannot hide in a function-level import.
The layers are docs/architecture.md's picture.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "worldmodels"

# lowest first; a module may import its own layer or the ones below it
LAYERS = [
    ["errors", "seeding", "checkpoint", "config", "logger", "media", "runtime"],
    ["models.*", "data.*", "envs", "envs.base", "envs.carracing", "envs.doom", "es", "executors", "training"],
    ["artifacts"],
    ["envs.dream", "rollout", "policies"],
    ["stages.*"],
    ["iterate", "pipeline", "tools.*"],
    ["cli", "bench", "__main__", "__init__"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
    return name


def imports_of(path: Path) -> set[str]:
    """The worldmodels modules that `path` imports (names relative to the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("worldmodels"):
            base = node.module.removeprefix("worldmodels").lstrip(".")
            for alias in node.names:  # `from worldmodels.stages import collect` imports a module
                candidate = f"{base}.{alias.name}" if base else alias.name
                found.add(candidate if candidate in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("worldmodels.") for a in node.names if a.name.startswith("worldmodels.")}
    return found - {""}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    for rank, patterns in enumerate(LAYERS):
        if any(fnmatch(name, pattern) for pattern in patterns):
            return rank
    raise AssertionError(f"module worldmodels.{name} has no layer in {__file__}: add it")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_its_layer_or_below(name):
    upward = [target for target in GRAPH[name] if layer(target) > layer(name)]
    assert not upward, f"worldmodels.{name} (layer {layer(name)}) imports a layer above it: {upward}"


def test_no_stage_imports_another_stage():
    for name, targets in GRAPH.items():
        if name.startswith("stages."):
            others = [t for t in targets if t.startswith("stages") and t != name]
            assert not others, f"worldmodels.{name} imports {others}: stages talk only through the run directory"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_graph_is_read():
    """The checks above would pass on an empty graph: make sure they see the known edges."""
    assert "artifacts" in GRAPH["stages.evaluate"] and "stages.collect" in GRAPH["pipeline"]
    assert {"stages.train_controller", "rollout"} <= GRAPH["iterate"]
