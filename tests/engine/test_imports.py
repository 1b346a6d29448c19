"""The engine takes data and returns data: no module of engine/ imports the YAML layer, a source, the store,
notify, or another engine module that imports it back (DESIGN.md, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import macrowatch.engine

ENGINE = Path(macrowatch.engine.__file__).resolve().parent
FORBIDDEN = ("macrowatch.config.rules", "macrowatch.config.yamlsrc", "macrowatch.config.load", "macrowatch.sources",
             "macrowatch.store", "macrowatch.notify")
MODULES = sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")


def imports(module: str) -> set[str]:
    """Every module `module` names in an import, anywhere in it (also inside functions and TYPE_CHECKING)."""
    tree = ast.parse((ENGINE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the engine package
                base = ".".join(["macrowatch", "engine", *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from macrowatch import store`
    return found


def test_the_walk_sees_the_engine_modules():
    assert {"breakout", "batch", "conditions", "evaluator", "outcomes", "timeline"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_an_engine_module_imports_no_yaml_source_store_or_notify_module(module):
    bad = sorted(m for m in imports(module) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"engine/{module}.py imports {', '.join(bad)}"


def test_engine_modules_import_each_other_without_a_cycle():
    graph = {m: {i.rsplit(".", 1)[-1] for i in imports(m) if i.startswith("macrowatch.engine.")} & set(MODULES)
             for m in MODULES}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    cycles = sorted(m for m in MODULES if m in reach(m))
    assert not cycles, f"engine modules in an import cycle: {', '.join(cycles)}"
