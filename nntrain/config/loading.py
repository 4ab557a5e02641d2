"""load_config(path, overrides): YAML read as a user means it, dotted KEY=VALUE overrides applied, the schema
validated and the parts checked, every problem of the file reported at once with its key, value and line.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nntrain.config.checks import semantic_problems
from nntrain.config.components import canonical, record
from nntrain.config.locations import composed, format_errors, locate
from nntrain.config.recipe import with_recipe
from nntrain.config.schema import SPEC_DEFAULTS, Config, name_from
from nntrain.errors import ConfigError, Problem, UserError
from nntrain.plaindata import check_depth

MAX_BYTES = 4 * 2**20  # a config is a page of keys; a bigger file is not one
MAX_NODES = 100_000  # scalars, lists and mappings once aliases are expanded: a billion laughs is refused


class Loader(yaml.SafeLoader):
    """YAML as a user means it: `1e-3` is a number (PyYAML reads it as a string) and `yes`, `no`, `on`,
    `off` stay strings (only true and false are booleans), as in YAML 1.2. A key given twice in one mapping is
    an error (PyYAML keeps the last silently: a second `train:` dropped the whole first one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML refuses an unhashable key below, in its own words
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice, on line {seen[key]} and line {line}: the second would "
                    f"replace the whole first; merge them into one",
                    key_node.start_mark,
                )
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep)


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """A YAML document, refused when it nests too deep or its aliases expand it out of proportion (before
    anything is built)."""
    check_depth(text)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node, {})
        if expanded > MAX_NODES:
            raise yaml.YAMLError(f"it expands to {expanded:,} values through its aliases (at most {MAX_NODES:,})")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in the document once every alias is copied out; each node is counted once (an alias shares it)."""
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a node that contains itself counts once (and PyYAML refuses to build it)
        if isinstance(node, yaml.SequenceNode):
            sizes[id(node)] += sum(_expanded_size(n, sizes) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            sizes[id(node)] += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    return sizes[id(node)]


def load_config(
    path: str | Path | None,
    overrides: list[str] = (),
    raw: dict | None = None,
    name: str | None = None,
    arguments_too: bool = True,
) -> Config:
    """Read YAML, apply dotted KEY=VALUE overrides (and --name), validate, check that the parts agree.
    arguments_too=False checks component names but not their arguments, which needs torch (`params`).
    Raises ConfigError with every problem, and the config with its invalid keys at their defaults."""
    chain: list[tuple[Path, str]] = []
    notes: list[str] = []
    if raw is None:
        path = Path(path)
        chain, raw, notes = read_with_bases(path)
    elif "base" in raw:
        raw, notes = with_bases(raw, Path.cwd())
    raw = apply_overrides(with_recipe(raw, overrides), overrides)
    if name is not None:
        raw["name"] = name  # as typed: --name 001 stays the string '001'
    notes += _prune_after_rename(raw, overrides)
    given = {item.partition("=")[0] for item in overrides} | ({"name"} if name is not None else set())
    problems: list[Problem] = []
    removed: list[str] = []
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        problems = format_errors(e)
        cfg, removed = _repaired(raw, e)  # so the checks below still see the rest of the file
    if cfg is not None:
        # a check that leans on a key replaced by its default would only mislead
        problems += [p for p in semantic_problems(cfg, arguments_too) if not any(p.reads(r) for r in removed)]
    if problems:
        roots = [(p, composed(text)) for p, text in chain]  # once, for every problem's line
        raise ConfigError([locate(p, roots, given) for p in problems], source=str(path or "config"), partial=cfg)
    cfg._notes = notes + activation_warnings(cfg)
    return cfg


def activation_warnings(cfg: Config) -> list[str]:
    """What the activations' records warn of (the step: nothing before it learns), for each key that uses one."""
    layers = cfg.model.layers
    uses_default = layers is None or any(layer.activation is None for layer in layers)
    specs = [("model.activation", "activation", cfg.model.activation)] if uses_default else []
    specs += [(f"model.layers[{k}].activation", "activation", layer.activation) for k, layer in enumerate(layers or [])]
    specs.append(("model.output_activation", "output_activation", cfg.model.output_activation))
    said: dict[str, list[str]] = {}
    for key, kind, spec in specs:
        if spec is not None and record(kind, spec["name"]).warning:
            said.setdefault(f"{canonical(kind, spec['name'])}: {record(kind, spec['name']).warning}", []).append(key)
    return [f"warning: {', '.join(keys)} = {text}" for text, keys in said.items()]


MAX_BASES = 32


def read_with_bases(path: Path) -> tuple[list[tuple[Path, str]], dict, list[str]]:
    """The file merged over its `base:` chain, key by key: ([(file, text)] the file first, then its bases; the
    merged mapping; notes). A base's path is relative to the file naming it; a cycle is refused. Switching a
    component's name drops the base's arguments the new one does not take, as an override does."""
    chain: list[tuple[Path, str, dict]] = []
    at = path
    while True:
        if any(at.resolve() == seen.resolve() for seen, _, _ in chain):
            cycle = " -> ".join(str(p) for p, _, _ in chain) + f" -> {at}"
            raise UserError(f"{chain[-1][0]}: base: {at} makes a cycle ({cycle})")
        text, raw = _read(at)
        chain.append((at, text, raw))
        base = raw.pop("base", None)
        if base is None:
            break
        if not isinstance(base, str) or not base or len(chain) >= MAX_BASES:
            raise UserError(f"{at}: base: give the path of another YAML config (at most {MAX_BASES} in a chain)")
        named, at = at, Path(base).expanduser() if Path(base).expanduser().is_absolute() else at.parent / base
        if not at.is_file():
            raise UserError(f"{named}: base: {base}: file not found (looked for {at})")
    merged, notes = chain[-1][2], []
    for file, _, raw in reversed(chain[:-1]):
        if file != path:
            raw.pop("name", None)  # a base's own file name is not the run's
        given = _merge(merged, raw)
        notes += [n.replace("was overridden", f"is set in {file}") for n in _prune_after_rename(merged, given)]
    return [(p, text) for p, text, _ in chain], merged, notes


def with_bases(raw: dict, folder: Path) -> tuple[dict, list[str]]:
    """A mapping given as the config (the API's dict) merged over its `base:` chain as a file is over its own;
    a relative base is under `folder` (the working directory): (the merged mapping, notes)."""
    raw = dict(raw)
    base = raw.pop("base")
    if not isinstance(base, str) or not base:
        raise UserError(f"config: base: give the path of a YAML config, not {base!r}")
    at = Path(base).expanduser()
    at = at if at.is_absolute() else folder / at
    if not at.is_file():
        raise UserError(f"config: base: {base}: file not found (looked for {at})")
    _, merged, notes = read_with_bases(at)
    merged.pop("name", None)  # a base's own file name is not the run's
    given = _merge(merged, raw)
    return merged, notes + [
        n.replace("was overridden", "is set in the config") for n in _prune_after_rename(merged, given)
    ]


def _merge(into: dict, over: dict, prefix: str = "") -> list[str]:
    """`over`'s keys into `into`, nested mappings key by key (lists and values replace); the dotted keys set,
    as `KEY=` items for _prune_after_rename."""
    given = []
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            given += [f"{prefix}{k}="] + _merge(into[k], v, f"{prefix}{k}.")
        else:
            into[k] = copy.deepcopy(v)
            given.append(f"{prefix}{k}=")
            given += [f"{prefix}{k}.{kk}=" for kk in v] if isinstance(v, dict) else []  # written with it
    return given


def _read(path: Path) -> tuple[str, dict]:
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: not a regular file; give a YAML config (or a table file with --target COLUMN)")
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes is not a config (at most {MAX_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8")
        raw = parse_yaml(text)
    except UnicodeDecodeError:
        if path.suffix.lower() in (".yaml", ".yml", ".json", ""):
            raise UserError(f"{path}: not a UTF-8 text file") from None
        raise UserError(  # sheet.ods: a table of a format the reader takes by no suffix
            f"{path}: not a YAML config (not UTF-8 text), nor a table by its suffix ({path.suffix!r}): save the table "
            f"as CSV or Excel (.xlsx) and give it with --target COLUMN"
        ) from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {yaml_problem(e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", name_from(path.stem))
    return text, raw


RENAMABLE = {
    "optimizer": "optimizer",
    "scheduler": "scheduler",
    "loss": "loss",
    "model.activation": "activation",
    "model.output_activation": "output_activation",
}


def _prune_after_rename(raw: dict, overrides: list[str]) -> list[str]:
    """`optimizer.name=adam` on an SGD config: drop the file's arguments adam does not take (momentum), saying so;
    an argument written with the new name (optimizer={name: sgd, momentun: 0.9}) stays, to be checked."""
    from nntrain.config.components import arguments, canonical

    notes, given = [], set()
    for item in overrides:  # a key given, and the keys of a mapping given whole (optimizer={name: sgd, ...})
        key, _, value = item.partition("=")
        given.add(key)
        if value.lstrip().startswith("{"):
            try:
                parsed = parse_yaml(value)
            except yaml.YAMLError:
                continue
            given |= {f"{key}.{k}" for k in parsed} if isinstance(parsed, dict) else set()
    for path, kind in RENAMABLE.items():
        if f"{path}.name" not in given and path not in given:
            continue
        node: Any = raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        name = canonical(kind, node.get("name", "")) if isinstance(node, dict) else None
        if name is None:
            continue
        for key in [k for k in node if k != "name" and k not in arguments(kind, name) and f"{path}.{k}" not in given]:
            notes.append(f"{path}.{key}={node.pop(key)} dropped: {name} takes no '{key}' ({path}.name was overridden)")
    return notes


def _repaired(raw: dict, e: ValidationError) -> tuple[Config | None, list[str]]:
    """The config with every invalid key removed (defaults in their place), or None if that is not valid; and
    the dotted keys removed."""
    fixed, removed = copy.deepcopy(raw), []
    for err in e.errors():
        parent, key, node = None, None, fixed
        for part in err["loc"]:  # down to the deepest key that exists (union tags like 'int' do not)
            in_dict = isinstance(node, dict) and part in node
            if in_dict or isinstance(node, list) and isinstance(part, int) and part < len(node):
                parent, key, node = node, part, node[part]
            else:
                break
        dotted = ".".join(str(p) for p in err["loc"][: err["loc"].index(key) + 1]) if parent is not None else ""
        if any(r == dotted or r.startswith(dotted + ".") for r in removed):
            continue  # a union's other member failing on a key already removed: its parent stays
        if isinstance(parent, dict):
            parent.pop(key, None)
            removed.append(dotted)
    try:
        return Config.model_validate(fixed), removed
    except ValidationError:
        return None, removed


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, value = item.partition("=")
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise UserError(f"override '{item}' must look like KEY=VALUE with a dotted key, e.g. optimizer.lr=0.001")
    try:
        parsed = parse_yaml(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for depth, k in enumerate(keys[:-1]):
            child = node.get(k)
            if isinstance(child, str):  # `optimizer: adam` then optimizer.lr=0.1
                child = {"name": child}
            elif not isinstance(child, dict):
                # optimizer.lr=0.1 with no optimizer section: start from the default optimizer
                child = dict(SPEC_DEFAULTS.get(".".join(keys[: depth + 1]), {}))
            node[k] = child
            node = child
        node[keys[-1]] = value
    return raw


# pydantic's names for the members of a union and for constrained types: not keys of the config


def yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error in nntrain's words: the problem and the line and column of the file where it was found
    (PyYAML names the text "<unicode string>" and adds the line where the construct it was reading began)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(e, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "")
