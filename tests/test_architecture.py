"""The shape of the code as its stages state it: each subpackage's __init__ says what it may import and every
import (lazy ones included) keeps to that; no import cycle between modules; modules and functions that fit on a
screen; the docs' Architecture page names every module once; tables written from the component records."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from nntrain.config import components_table

from .conftest import REPO

PACKAGE = REPO / "nntrain"
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()  # the README's Architecture section, moved there
CONFIG_GUIDE = (REPO / "docs" / "config.md").read_text()  # holds the Components table
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
# What every stage uses, at the top of the package: they import only one another.
BASE = {"nntrain.errors", "nntrain.metrics", "nntrain.plaindata", "nntrain.resources"}
# The faces (the Python API, its results, the estimators, the command line) sit on top and may import any stage.
FACES = {"nntrain", "nntrain.__main__", "nntrain.api", "nntrain.results", "nntrain.sklearn", "nntrain.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
STAGES = sorted({m for m in MODULES if m.count(".") == 1 and (PACKAGE / m.split(".")[1]).is_dir()} - FACES)


def stage_of(module: str) -> str:
    """The unit imports are checked between: a subpackage, or a module at the top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def imports_of(module: str) -> set[str]:
    """Every nntrain module a module imports, at the top or inside a function (`from nntrain.x import y`
    counts nntrain.x.y where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nntrain":
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "nntrain"}
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{module}: relative import"
    return found - {module}


def allowed(stage: str) -> set[str]:
    """What a stage may import: BASE for the base, anything for a face, a subpackage's `May import:` line."""
    if stage in BASE:
        return BASE
    if stage in FACES:
        return set(MODULES)
    doc = ast.get_docstring(ast.parse(MODULES[stage].read_text())) or ""
    line = re.search(r"^May import: (.*?)(?:\n\n|\Z)", doc, flags=re.M | re.S)
    assert line, f"{stage}/__init__.py does not say what it may import ('May import: ...')"
    return {name.strip() for name in " ".join(line.group(1).split()).rstrip(".").split(",")}


def test_every_module_is_in_a_stage_the_layout_names():
    tops = {stage_of(m) for m in MODULES}
    assert tops <= BASE | FACES | set(STAGES), tops - BASE - FACES - set(STAGES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_what_its_stage_may(module):
    mine, may = stage_of(module), allowed(stage_of(module))
    wrong = sorted(m for m in imports_of(module) if stage_of(m) != mine and stage_of(m) not in may)
    assert wrong == [], f"{module} imports {wrong}; {mine} may import only {sorted(may)}"


def test_the_stages_import_each_other_in_one_order():
    """The May import lines form a chain without a cycle: a stage never may import one that may import it."""
    for stage in STAGES:
        for other in allowed(stage) & set(STAGES):
            assert stage not in allowed(other), f"{stage} and {other} may import each other"


def test_no_import_cycle_between_modules():
    graph = {m: imports_of(m) & MODULES.keys() for m in MODULES}
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state[n] != 1, f"import cycle: {' -> '.join(path[path.index(n) :] + [m, n])}"
            if state[n] == 0:
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if state[m] == 0:
            visit(m, [])


def test_no_module_is_longer_than_the_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_the_architecture_section_names_every_module_once():
    """One line per module that holds code (the stage __init__ files hold only their docstring)."""
    section = ARCHITECTURE.split("# Architecture", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^- `([\w/]+\.py)`", section, flags=re.M)
    files = [str(p.relative_to(PACKAGE)) for p in MODULES.values()]
    code = [f for f in files if Path(f).name not in ("__init__.py", "__main__.py") or f == "cli/__init__.py"]
    assert sorted(named) == sorted(code) and len(named) == len(set(named))


def test_the_components_table_is_the_one_the_records_give():
    """The table under Components in docs/config.md (readme_table() is named after the README that held it)."""
    section = CONFIG_GUIDE.split("\n## Components\n", 1)[1].split("\n## ", 1)[0]
    assert components_table.readme_table() in section
