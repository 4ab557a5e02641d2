"""The shipped example configs (`nntrain configs`, `configs show`, `configs copy`) and the config's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nntrain.cli.app import (
    console,
    guarded,
)


def schema() -> None:
    """Print the config's JSON Schema, for an editor's YAML plugin to complete and check keys."""
    from nntrain.config.schema import Config

    doc = Config.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(doc, indent=2))


configs_app = typer.Typer(
    help="List the shipped example configs, or copy one to start from.", invoke_without_command=True
)


CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"  # package data: there in every install


def _shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIGS_DIR.glob("*.yaml"))}


@configs_app.callback()
def configs_list(ctx: typer.Context) -> None:
    """The shipped configs with what each trains."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    table = Table(title=f"shipped configs ({CONFIGS_DIR})")
    table.add_column("name")
    table.add_column("what it trains")
    for name, path in _shipped().items():
        table.add_row(name, first_sentence(path.read_text()))
    console(False).print(table)


def first_sentence(text: str) -> str:
    """The first sentence of a config's opening comment, however many lines it runs over."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    comment = " ".join(lines)
    end = comment.find(". ")
    return comment if end < 0 else comment[: end + 1]


@configs_app.command("show")
@guarded
def configs_show(
    config: Path = typer.Argument(..., help="a config file (its base: chain is merged), or a shipped one's name"),
) -> None:
    """The config as its base: chain merges it, key by key, as fit reads it (before overrides and defaults)."""
    import yaml

    from nntrain.config.loading import read_with_bases
    from nntrain.errors import UserError, did_you_mean

    shipped, name = _shipped(), config.name.removesuffix(".yaml")
    if not config.exists() and config.parent == Path(".") and name in shipped:
        config = shipped[name]  # `configs show phone`, as `configs copy phone`
    elif not config.exists() and config.parent == Path(".") and not config.suffix:
        raise UserError(f"no file {config}, and no shipped config '{name}'{did_you_mean(name, shipped)}")
    chain, merged, notes = read_with_bases(config)
    print(f"# {' <- '.join(str(p) for p, _ in reversed(chain))}")
    for note in notes:
        print(f"# note: {note}")
    print(yaml.safe_dump(merged, sort_keys=False, default_flow_style=None).rstrip())


@configs_app.command("copy")
@guarded
def configs_copy(
    name: str = typer.Argument(..., help="a shipped config, e.g. phone"),
    dest: Path = typer.Argument(..., help="where to write it (a file or a folder)"),
) -> None:
    """Copy a shipped config to start from; an existing file is never overwritten."""

    from nntrain.errors import UserError, did_you_mean
    from nntrain.runs.files import write_output

    shipped = _shipped()
    if name.removesuffix(".yaml") not in shipped:
        raise UserError(f"no shipped config '{name}'{did_you_mean(name, shipped)}; choose one of: {', '.join(shipped)}")
    target = dest / f"{name.removesuffix('.yaml')}.yaml" if dest.is_dir() else dest
    if target.exists() or target.is_symlink():  # a dangling link too: writing through it would land elsewhere
        raise UserError(f"{target} exists; choose another destination (nothing was overwritten)")
    if not target.parent.is_dir():
        raise UserError(f"folder {target.parent} does not exist")
    text = renamed(shipped[name.removesuffix(".yaml")].read_text(encoding="utf-8"), target)
    write_output(target, lambda f: f.write(text.encode("utf-8")), str(target))
    console(True).print(f"wrote {target}", markup=False)


def renamed(text: str, target: Path) -> str:
    """A copied config named after its new file (my.yaml: name: my), so its runs land in runs/my rather than
    in the shipped config's folder; the rest as shipped, comments included."""
    import re

    from nntrain.config.schema import name_from

    stem = name_from(target.stem, "")
    if not stem:
        return text
    found = re.search(r"(?m)^name:[ \t]*([^\s#]+).*$", text)
    if found is None:
        return text
    line = found.group(0).replace(found.group(1), stem)  # the name, and the comment that names its folder
    return text[: found.start()] + line + text[found.end() :]
