"""The layers of docs/architecture.md, checked by walking every import in ``taller/`` (AST).

Bottom to top: base → domain libraries → tools → agent → interfaces. A module may import from
its own package and from any layer below its own, never from above. Packages of one layer stay
independent of each other (the few exceptions are listed in ``SAME_LAYER_ALLOWED``), and no two
packages import each other, directly or through others. Lazy imports inside functions count too:
they are what made the earlier package cycles invisible at import time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "taller"

# Component (first name below ``taller``) → layer number.
LAYERS: dict[str, int] = {
    # 1. base: settings, data sets, progress, errors, paths, LLM backends, embeddings
    "__init__": 1, "config": 1, "data": 1, "progress": 1, "errors": 1, "paths": 1, "llm": 1,
    "embeddings": 1, "locks": 1, "text": 1,
    # 2. domain libraries: plain data in and out, the model as a parameter
    "trainers": 2, "knowledge": 2, "vision": 2,
    # 3. thin tool adapters, one registry
    "tools": 3,
    # 4. the agent: graph, router, prompts, session, thread store
    "agent": 4,
    # 5. interfaces
    "cli": 5, "tui": 5, "ui": 5, "server": 5, "client": 5, "doctor": 5, "__main__": 5,
}

# Imports between different components of one layer that are part of the design.
SAME_LAYER_ALLOWED: set[tuple[str, str]] = {
    ("cli", "tui"), ("cli", "server"), ("cli", "client"), ("cli", "doctor"),  # the dispatcher
    ("tui", "ui"),  # the Textual app and its widgets, screens and helpers
    ("__main__", "cli"),
    # base modules build on each other (data and llm read the settings, and so on)
    ("data", "config"), ("llm", "config"), ("embeddings", "config"), ("paths", "config"),
    ("llm", "errors"), ("paths", "errors"), ("data", "errors"), ("progress", "errors"),
    ("embeddings", "errors"), ("llm", "paths"), ("data", "paths"), ("locks", "errors"),
}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _component(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "taller":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every ``taller`` module imported by ``path`` with the line, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, node.lineno))
            # ``from taller import tools`` imports the component ``tools``.
            if name == "taller":
                found += [(f"taller.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name == "taller" or name.startswith("taller.")]


def _edges() -> list[tuple[str, str, str, int]]:
    """(importing component, imported component, file, line) for imports across components."""
    edges = []
    for module, path in _modules():
        source = _component(module)
        for name, line in _imports(module, path):
            target = _component(name)
            if target is None or target == source or (name == "taller" and target == "__init__"):
                continue
            edges.append((source, target, str(path.relative_to(ROOT.parent)), line))
    return edges


def test_every_component_has_a_layer():
    components = {_component(module) for module, _ in _modules()}
    assert components <= set(LAYERS), f"add these to LAYERS and docs/architecture.md: {components - set(LAYERS)}"


def test_imports_point_down():
    upward = []
    for source, target, where, line in _edges():
        if target not in LAYERS:
            continue
        if LAYERS[target] > LAYERS[source]:
            upward.append(f"{where}:{line}: {source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})")
        elif LAYERS[target] == LAYERS[source] and (source, target) not in SAME_LAYER_ALLOWED:
            upward.append(f"{where}:{line}: {source} imports {target}, another component of layer {LAYERS[source]}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_package_cycles():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in _edges():
        graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack += graph.get(node, ())
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, f"components that import each other: {cycles}"


def test_the_walker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a planted upward import (lazy, inside a function) is found."""
    fake_root = tmp_path / "taller"
    (fake_root / "knowledge").mkdir(parents=True)
    (fake_root / "__init__.py").write_text("")
    (fake_root / "knowledge" / "__init__.py").write_text("")
    (fake_root / "knowledge" / "bad.py").write_text("def f():\n    from taller.agent import graph\n")
    (fake_root / "agent").mkdir()
    (fake_root / "agent" / "__init__.py").write_text("from ..knowledge import bad\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    with pytest.raises(AssertionError, match="knowledge/bad.py:2: knowledge .layer 2. imports agent"):
        test_imports_point_down()
    with pytest.raises(AssertionError, match="agent.*knowledge"):
        test_no_package_cycles()


# Frameworks that belong to one layer: the agent framework stays in the agent, the terminal UI
# framework in the terminal interface. (``progress`` once called LangGraph; now the agent binds it.)
FRAMEWORK_OWNERS = {"langgraph": {"agent"}, "textual": {"tui", "ui"}}


def test_frameworks_stay_in_their_layer():
    misplaced = []
    for module, path in _modules():
        component = _component(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                owners = FRAMEWORK_OWNERS.get(name.split(".")[0])
                if owners is not None and component not in owners:
                    misplaced.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {name}")
    assert not misplaced, "framework imports outside their layer:\n" + "\n".join(misplaced)
