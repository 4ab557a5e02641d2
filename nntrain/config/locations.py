"""A config's problems where the user wrote them: pydantic's errors as Problems (key, value, message, an
example), and the YAML line (in the file, or the base that sets it) or the command line that set each key."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nntrain.config.schema import Config
from nntrain.errors import Problem, did_you_mean
from nntrain.plaindata import flow

TYPE_TAGS = ("function-", "literal[", "list[", "int", "dict[")
TYPE_NAMES = ("str", "bool", "float", "InitConfig", "LayerConfig", "constrained-int")
EXAMPLES = {
    "epochs": "30",
    "batch_size": "32",
    "lr": "0.001",
    "val_size": "0.1",
    "test_size": "0.2",
    "seed": "42",
    "dropout": "0.2",
    "hidden": "[64, 128]",
    "size": "64",
    "patience": "10",
    "scale": "standard",
    "task": "auto",
    "device": "auto",
    "batch_norm": "false",
}


def format_errors(e: ValidationError) -> list[Problem]:
    """pydantic's errors as Problems: one per key, with a correct example where one helps."""
    out: list[Problem] = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(TYPE_TAGS)]
        loc = [p for p in loc if p not in TYPE_NAMES]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = model_at(loc[:-1])
            fields = list(parent.model_fields) if parent else []
            out.append(Problem(key, f"unknown key{did_you_mean(loc[-1], fields)}; allowed here: {', '.join(fields)}"))
            continue
        if err["type"] == "missing":
            out.append(Problem(key, "required key is missing"))
            continue
        if out and out[-1].key == key and out[-1].value is not None:
            # one key failing every member of a union (batch_size: an int or 'full'): one line
            out[-1] = dataclasses.replace(
                out[-1], message=f"{out[-1].message}, or {err['msg'].removeprefix('Input should be ')}"
            )
            continue
        out.append(Problem(key, err["msg"].removeprefix("Value error, "), value=flow(err.get("input"), width=80)))
    leaf = lambda p: p.key.rsplit(".", 1)[-1]  # noqa: E731
    return [
        dataclasses.replace(p, message=f"{p.message}; e.g. {leaf(p)}: {EXAMPLES[leaf(p)]}")
        if p.value is not None and leaf(p) in EXAMPLES
        else p
        for p in out
    ]


def model_at(loc: list[str]) -> type[BaseModel] | None:
    """The schema model a key path leads to (model.layers.0 -> LayerConfig), read from the fields' types."""
    model: Any = Config
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        model = submodel(field.annotation) if field is not None else None
        if model is None:
            return None
    return model


def submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(submodel, typing.get_args(annotation)) if m is not None), None)


def locate(p: Problem, roots: list[tuple[Path, yaml.Node | None]], overridden: set[str]) -> Problem:
    """The problem with the YAML line that sets its key (in the file, else in the base that sets it), or marked
    as set on the command line."""
    if any(p.key == o or p.key.startswith(o + ".") or o.startswith(p.key + ".") for o in overridden):
        return dataclasses.replace(p, from_command_line=True)
    keys = p.key.split(".")
    for k, (file, root) in enumerate(roots):
        line = yaml_line(root, keys, whole=True) if root is not None else None
        if line:
            return dataclasses.replace(p, line=line, file=str(file) if k else None)
    line = yaml_line(roots[0][1], keys) if roots and roots[0][1] is not None else None
    return dataclasses.replace(p, line=line) if line else p


def composed(text: str) -> yaml.Node | None:
    """The file's node tree, for line numbers (None for no file, or one that does not parse)."""
    try:
        return yaml.compose(text) if text else None
    except yaml.YAMLError:
        return None


def yaml_line(node: yaml.Node, keys: list[str], whole: bool = False) -> int | None:
    """The line that sets the dotted key `keys` in a composed document, or the deepest part of it found (whole:
    None unless the key itself is there)."""
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == key]
            if not match:
                return None if whole else line
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            return None if whole else line
    return line
