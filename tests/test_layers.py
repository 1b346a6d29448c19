"""The package is layered (DESIGN.md, Layout): a module imports only its own layer and those below it, the engine is
pure, the daemon never imports a command, and no two modules import each other, directly or round a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import macrowatch

PACKAGE = Path(macrowatch.__file__).resolve().parent
# Lowest first. A module may import its own layer and any layer below; never one above.
LAYERS = {"model": 0, "clock": 0, "secrets": 0, "config": 1, "sources": 2, "store": 2, "engine": 2, "notify": 3,
          "runtime": 4, "commands": 5, "__main__": 5}
TOP_LEVEL = {"__init__", "__main__", "model", "clock", "secrets"}  # the package face and the shared bottom


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["macrowatch", *parts])


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The macrowatch modules `name` imports anywhere in it (also inside functions and TYPE_CHECKING)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]  # `from x import module`
            candidates = subs + ([base] if len(subs) < len(node.names) else [])
        else:
            continue
        found |= {c for c in candidates if c in MODULES and c != "macrowatch"}
    return found - {name}


def layer(name: str) -> str:
    return name.split(".")[1] if name != "macrowatch" else "__init__"


def test_the_top_level_holds_only_the_shared_bottom_and_the_package_face():
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert loose == TOP_LEVEL
    assert rooms == {"config", "sources", "store", "engine", "notify", "runtime", "commands"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "macrowatch"))
def test_a_module_imports_only_downward(name):
    own = LAYERS[layer(name)]
    up = sorted(i for i in imports(name) if LAYERS[layer(i)] > own)
    assert not up, f"{name} imports the higher layer(s) {', '.join(up)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "engine"))
def test_the_engine_imports_no_io_layer_and_no_yaml(name):
    banned = ("sources", "store", "notify", "runtime", "commands")
    yaml = {"macrowatch.config.rules", "macrowatch.config.yamlsrc", "macrowatch.config.load",
            "macrowatch.config.sections", "macrowatch.config.fields", "macrowatch.config.safeio"}
    bad = sorted(i for i in imports(name) if layer(i) in banned or i in yaml)
    assert not bad, f"{name} imports {', '.join(bad)}"


def test_sources_and_store_do_not_import_the_engine():  # three siblings of one layer, none leaning on another's insides
    bad = sorted((n, i) for n in MODULES if layer(n) in ("sources", "store")
                 for i in imports(n) if layer(i) == "engine")
    assert not bad


def test_no_import_cycle_anywhere_in_the_package():
    graph = {n: imports(n) for n in MODULES}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    cycles = sorted(n for n in MODULES if n in reach(n))
    assert not cycles, f"modules in an import cycle: {', '.join(cycles)}"
