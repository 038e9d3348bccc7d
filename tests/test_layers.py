"""Every sam2sod import (inside functions too) points down or sideways in `sam2sod._layers.LAYERS`, and the
module graph has no cycle. Third-party imports are ignored (lazy ones keep start-up fast)."""

from __future__ import annotations

import ast
from pathlib import Path

import sam2sod
from sam2sod._layers import LAYERS, layer_of

SRC = Path(sam2sod.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = ("sam2sod", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest known module that `name` (a module or an attribute of one) lies in."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The sam2sod modules `module` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name, modules) for a in node.names if a.name.split(".")[0] == "sam2sod"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "sam2sod":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in modules else _resolve(source, modules))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_every_module_has_a_layer() -> None:
    unlisted = sorted(m for m in _modules() if layer_of(m) is None)
    assert not unlisted, f"add these to sam2sod._layers.LAYERS: {unlisted}"


def test_no_import_points_to_a_higher_layer() -> None:
    def show(m: str) -> str:
        return f"{m} ({'/'.join(LAYERS[layer_of(m)]) or 'sam2sod'})"

    upward = sorted(f"{show(m)} -> {show(d)}" for m, deps in import_graph().items() for d in deps
                    if layer_of(d) is not None and layer_of(m) is not None and layer_of(d) > layer_of(m))
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("sam2sod.cli") > layer_of("sam2sod.infer.predictor") > layer_of("sam2sod.models.registry")
    modules = _modules()
    assert imports_of("sam2sod.losses.modules", modules["sam2sod.losses.modules"], modules) >= {
        "sam2sod.losses.functional"}
