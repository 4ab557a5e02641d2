"""The documentation as the code states it: a short README that starts with its two commands; the two reference
pages equal to what docs/gen_reference.py writes from the CLI and the JSON Schema now; every `nntrain COMMAND` and
every dotted config key (`data.target`, `train.bag`) that the README or a docs page names, real; the README's
links to the docs, there; and the site built by `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
MAX_README_LINES = 250
FIRST_LINES = [
    "# nntrain",
    "",
    "```bash",
    "pip install -e . && nntrain fit configs/phone.yaml",
    'pip install -e ".[dev]" && pytest',
    "```",
]
# a dotted name ending in one of these is a file (`model.onnx.json`), not a config key
FILE_SUFFIXES = {"json", "onnx", "csv", "tsv", "gz", "yaml", "yml", "py", "png", "pt", "md", "txt", "parquet", "xlsx"}


@cache
def generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_of(text: str) -> list[str]:
    """The code of a Markdown page: each fenced block, and each inline code span outside them."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def name(page: Path) -> str:
    return str(page.relative_to(REPO))


def test_the_readme_is_short_and_starts_with_its_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"
    assert lines[: len(FIRST_LINES)] == FIRST_LINES


def test_ci_runs_what_the_readme_says():
    """.ci/run installs the project with the README's install command, builds the site, then runs the README's
    test command."""
    ci = (REPO / ".ci" / "run").read_text()
    install, build, test = 'pip install -q -e ".[dev]"', "mkdocs build --strict --site-dir .ci-site", "\npytest\n"
    assert install in ci and build in ci and test in ci
    assert ci.index(install) < ci.index(build) < ci.index(test)
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".ci-site/" in ignored and "site/" in ignored


@pytest.mark.parametrize("page", ["cli.md", "config.md"])
def test_a_reference_page_is_what_the_generator_writes_now(page):
    path = DOCS / "reference" / page
    assert path.is_file(), f"{name(path)} is missing: run python docs/gen_reference.py"
    assert path.read_text() == generator().generated()[path], (
        f"{name(path)} differs from what the CLI and the JSON Schema give now: run python docs/gen_reference.py"
    )


def test_the_reference_pages_cover_every_command_and_key():
    cli, config = (generator().generated()[DOCS / "reference" / p] for p in ("cli.md", "config.md"))
    for path in generator().command_paths():
        assert f"\n## {' '.join(('nntrain', *path))}\n" in cli
    for key in ("data.path", "data.target", "model.hidden", "model.numeric_embedding.size", "train.bag", "seed"):
        assert f"| `{key}` |" in config


@cache
def commands() -> dict[str, set[str]]:
    """Each command, with its subcommands (empty for a plain command)."""
    found: dict[str, set[str]] = {}
    for path in generator().command_paths():
        if len(path) == 1:
            found.setdefault(path[0], set())
        elif len(path) == 2:
            found.setdefault(path[0], set()).add(path[1])
    return found


def test_every_command_the_pages_name_exists():
    """`nntrain CMD` (and `nntrain GROUP SUB`) in the code of README.md and docs/**/*.md."""
    wrong = []
    for page in PAGES:
        for code in code_of(page.read_text()):
            for m in re.finditer(r"(?<![\w./-])nntrain[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?", code):
                command, sub = m.groups()
                if command not in commands():
                    wrong.append(f"{name(page)}: nntrain {command}")
                elif commands()[command] and sub and sub not in commands()[command]:
                    wrong.append(f"{name(page)}: nntrain {command} {sub}")
    assert wrong == [], f"commands that do not exist (nntrain --help lists {sorted(commands())}): {wrong}"


@cache
def schema() -> dict:
    return generator().schema()


def alternatives(node: dict) -> list[dict]:
    """A schema node and its anyOf alternatives, with $refs resolved."""
    doc = schema()
    nodes = node.get("anyOf", [node])
    return [doc["$defs"][n["$ref"].split("/")[-1]] if "$ref" in n else n for n in nodes]


def is_free_form(node: dict) -> bool:
    """A mapping the schema leaves open: a component (loss, optimizer, scheduler, an activation, an init) takes
    its own arguments, so any key under it is one."""
    return any(
        n.get("type") == "object" and "properties" not in n and n.get("additionalProperties", True) is not False
        for n in alternatives(node)
    )


def sections() -> set[str]:
    return {k for k, v in schema()["properties"].items() if any(n.get("type") == "object" for n in alternatives(v))}


def key_exists(parts: list[str]) -> bool:
    """Whether section.key(.key...) is a config key, as deep as the schema knows it."""
    node = schema()["properties"][parts[0]]
    for part in parts[1:]:
        if is_free_form(node):
            return True
        nested = [n for n in alternatives(node) if "properties" in n]
        nested += [n["items"] for n in alternatives(node) if n.get("type") == "array" and "$ref" in n.get("items", {})]
        nested = [alternatives(n)[0] for n in nested]
        holder = next((n for n in nested if part in n["properties"]), None)
        if holder is None:
            return False
        node = holder["properties"][part]
    return True


def dotted_keys(code: str) -> list[list[str]]:
    pattern = r"(?<![\w./$-])(" + "|".join(sorted(sections())) + r")((?:\.[A-Za-z_]\w*)+)"
    found = []
    for m in re.finditer(pattern, code):
        parts = [m.group(1), *m.group(2).lstrip(".").split(".")]
        if parts[-1].lower() not in FILE_SUFFIXES:
            found.append(parts)
    return found


def test_the_key_check_knows_a_key_from_a_typo():
    for key in (
        "data.target",
        "train.bag",
        "model.hidden",
        "model.numeric_embedding.name",
        "scheduler.patience",
        "optimizer.lr",
        "model.activation.negative_slope",
        "model.init.weight",
        "sweep.trials",
    ):
        assert key_exists(key.split(".")), key
    for key in ("data.targets", "train.bags", "model.hiden", "model.numeric_embedding.nmae", "model.hidden.size"):
        assert not key_exists(key.split(".")), key
    assert dotted_keys("`model.onnx.json`, runs/data.x, `nntrain fit c.yaml train.epochs=3`") == [["train", "epochs"]]


def test_every_config_key_the_pages_name_exists():
    """Dotted keys whose first part is a section (data, model, loss, optimizer, scheduler, train, sweep), in the
    code of README.md and docs/**/*.md: inline `data.target`, `train.bag: auto`, and overrides in code blocks."""
    wrong = [
        f"{name(page)}: {'.'.join(parts)}"
        for page in PAGES
        for code in code_of(page.read_text())
        for parts in dotted_keys(code)
        if not key_exists(parts)
    ]
    assert wrong == [], f"config keys that are not in the JSON Schema (nntrain schema): {wrong}"


def slugs(page: Path) -> set[str]:
    """The anchors MkDocs gives a page's headings (Python-Markdown's toc slugify)."""
    from markdown.extensions.toc import slugify

    prose = re.sub(r"^```[^\n]*\n.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slugify(h.replace("`", ""), "-") for h in re.findall(r"^#+ (.*)$", prose, flags=re.M)}


def test_the_readme_links_to_pages_and_anchors_that_exist():
    pytest.importorskip("markdown")
    wrong = []
    for target in re.findall(r"\]\((docs/[^)\s]+)\)", README.read_text()):
        path, _, anchor = target.partition("#")
        missing = not (REPO / path).is_file()
        if missing or (anchor and path.endswith(".md") and anchor not in slugs(REPO / path)):
            wrong.append(target)
    assert wrong == []


def test_the_site_builds_under_mkdocs_strict(tmp_path):
    """A broken link or anchor, a page left out of the nav, or a missing image fails the build."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip('mkdocs and mkdocs-material are not installed (pip install -e ".[docs]")')
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
