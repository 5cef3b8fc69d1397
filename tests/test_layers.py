"""The package's layers (docs/design.md): a module imports only from its own layer or the ones
below, and no two modules import each other, directly or through others."""

from __future__ import annotations

import ast

from conftest import ROOT

# lowest first; `morel/pmdp.py` is a layer of its own
LAYERS = ("core", "config", "envs", "npg", "data", "models", "pmdp", "runs", "experiments")
PACKAGE = ROOT / "morel"


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    return module.split(".")[1]


def imports(path) -> set[str]:
    """The morel modules a file imports (at any depth of the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("morel.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("morel"):
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_layer():
    for module in graph():
        if module != "morel":
            assert layer(module) in LAYERS, module


def test_imports_only_go_down():
    upward = [f"{module} imports {target}" for module, targets in graph().items()
              if module != "morel" for target in targets
              if LAYERS.index(layer(target)) > LAYERS.index(layer(module))]
    assert not upward, upward


def test_no_import_cycles():
    edges = graph()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            target = target if target in edges else target.rsplit(".", 1)[0]
            assert state.get(target) != "open", " -> ".join([*trail, module, target])
            if target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_checks_see_an_upward_import(tmp_path):
    """A module of a low layer that imports a run would be caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from morel.runs.morel import run_morel\n")
    target = next(iter(imports(bad)))
    assert LAYERS.index(layer(target)) > LAYERS.index("core")
