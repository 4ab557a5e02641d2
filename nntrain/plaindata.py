"""Plain data, as YAML and JSON hold it: nested dicts flattened to dotted keys, one-line YAML, strict JSON.

Imports nothing heavier than yaml, so the run listing (`nntrain runs`) can use it and stay fast.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

MAX_DEPTH = 64  # lists and mappings inside each other; a config nests 4 or 5 deep


def check_depth(text: str) -> None:
    """Refuse YAML (or JSON) nested deeper than MAX_DEPTH before anything recursive (PyYAML's composer, pydantic,
    a dump) sees it; the event parser walked here is a loop, so any depth is counted safely."""
    depth = 0
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise yaml.YAMLError(f"it nests lists and mappings more than {MAX_DEPTH} levels deep (line {line})")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer.lr': 0.1}: one key per setting, so configs compare key by key."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):  # model.layers: per layer
            out.update(flatten({str(i): x for i, x in enumerate(v)}, key + "."))
        else:
            out[key] = v
    return out


def flow(value: Any, width: int = 10**6) -> str:
    """A value in YAML's one-line form, as an override's right-hand side takes it: [64, 128], adam, 0.001, null."""
    return yaml.safe_dump(value, default_flow_style=True, width=width).strip().removesuffix("...").strip()


def strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON that strict parsers accept: NaN and infinities (an AUC with one class present) become null."""

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(obj), indent=indent)
