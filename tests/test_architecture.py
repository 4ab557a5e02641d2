"""The shape of the code as the README's Architecture section states it: the module order that imports follow,
functions that fit on a screen, and tables written from the component records."""

from __future__ import annotations

import ast
import re

import pytest

from nntrain.config import components
from .conftest import REPO

PACKAGE = REPO / "nntrain"
README = (REPO / "README.md").read_text()
MAX_FUNCTION_LINES = 60


def documented_order() -> list[str]:
    """The modules of the Architecture table, top to bottom."""
    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.M)


def nntrain_imports(path) -> set[str]:
    """Every nntrain module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nntrain."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("nntrain.")}
    return {m.split(".")[0] for m in found}


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_the_architecture_table_names_every_module_once():
    order = documented_order()
    assert sorted(order) == MODULES and len(order) == len(set(order))


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_modules_above_it(module):
    order = documented_order()
    later = [m for m in nntrain_imports(PACKAGE / f"{module}.py") if order.index(m) >= order.index(module)]
    assert later == [], f"{module} imports {later}, which the README puts below it"


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_the_readme_components_table_is_the_one_the_records_give():
    assert components.readme_table() in README
