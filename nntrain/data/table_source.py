"""Whether a command's CONFIG (or the Python API's config) names a table, not a YAML config, and the config of
the recipe on it: `nntrain fit house.csv` and nntrain.fit("house.csv") train the same run, named house."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nntrain.config.schema import Config, dump_yaml, name_from
from nntrain.data.digests import sha256_soon
from nntrain.data.readers import is_table
from nntrain.data.tables import resolve_path
from nntrain.errors import UserError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json", "")  # no suffix: a config, as before


def names_a_table(source: str, target: str | bool | None = None) -> bool:
    """Whether a command's CONFIG (or the API's config) names a table to train the recipe on, not a YAML config:
    sklearn:NAME, a table file by its suffix, a folder or glob of Parquet files, or a .txt table."""
    return (
        source.startswith("sklearn:")
        or is_table(Path(source))
        or is_folder_table(source)
        or is_text_table(source, target)
        or given_target(source, target)
    )


def given_target(path: str, target: str | bool | None) -> bool:
    """A file with --target beside it that is no YAML config by its suffix (housing.data, sheet.ods): a table, which
    the reader reads, or refuses naming the formats it reads (not a YAML parse error about a table's bytes)."""
    return bool(target) and Path(path).suffix.lower() not in CONFIG_SUFFIXES and Path(path).is_file()


def table_config(config: Any, data: Any, overrides: list[str]) -> Any:
    """The API's config read as the commands read CONFIG: a table (names_a_table) is the recipe on it, the run
    named after it; anything else as it is."""
    target = any(o.startswith("data.target=") for o in overrides)
    if not isinstance(config, (str, Path)) or not names_a_table(str(config), target):
        return config
    if data is not None:
        raise UserError(f"{config} and data=: name the table once")
    return {"name": table_stem(str(config)), "data": {"path": str(config)}}


def is_text_table(path: str, target: str | None) -> bool:
    """A .txt file that is a table, not a config: --target names one of its columns, or it is UTF-16 (Excel's
    "Unicode text"), or its first line that is no comment is no `key:` of YAML."""
    p = Path(path)
    if p.suffix.lower() != ".txt" or not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(4096)
    if target or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    lines = [line for line in head.decode("utf-8", "replace").splitlines() if line.strip()]
    first = next((line for line in lines if not line.lstrip().startswith("#")), "")
    return bool(first) and not re.match(r"\s*[\w.-]+\s*:", first)


def is_folder_table(path: str) -> bool:
    """A folder or a glob of Parquet files (read whole or streamed, data.stream); the data says which."""
    return Path(path).is_dir() or any(c in path for c in "*?[")


def table_stem(table: str) -> str:
    """The run's name for a table: house.csv.gz -> house, sklearn:iris -> iris, clicks/ and clicks/*.parquet ->
    clicks."""
    if table.startswith("sklearn:"):
        return name_from(table.removeprefix("sklearn:"), "table")
    p = Path(table)
    return name_from((p.parent if any(c in p.name for c in "*?[") else p).name.split(".")[0], "table")


def recorded(cfg: Config, config_dir: Path | None) -> str:
    """The config.yaml a run (or a bag) keeps: its tables named by absolute path where a relative one was found
    (beside the config or a folder up), so `nntrain fit RUN/config.yaml` trains on them from any folder."""
    kept = cfg.model_copy(deep=True)
    for key in ("path", "val_path", "test_path"):
        given = getattr(kept.data, key)
        found = resolve_path(given, config_dir) if given and not given.startswith("sklearn:") else None
        if found is not None and found.exists():
            setattr(kept.data, key, str(found.resolve()))
    return dump_yaml(kept)


def hash_ahead(config: str | dict, overrides: list[str]) -> None:
    """Start hashing the data file a config names (or the table fit was given) before the config is even
    checked: `fit` calls this before importing torch, which takes one core for 1-2 s. Anything odd is left
    alone for the real check to report."""
    from nntrain.config.loading import MAX_BYTES, parse_yaml

    try:
        given = [o.split("=", 1)[1] for o in overrides if o.startswith("data.path=")]
        if isinstance(config, dict):
            path, base = given[-1] if given else config["data"]["path"], Path.cwd()
        else:
            config = Path(config)
            if not given and (not config.is_file() or config.stat().st_size > MAX_BYTES):
                return  # not a config: the real check refuses it without reading it
            path = given[-1] if given else parse_yaml(config.read_text(encoding="utf-8"))["data"]["path"]
            base = config.parent
        p = resolve_path(str(path), base)
        if not str(path).startswith("sklearn:") and p.is_file():
            sha256_soon(p)
    except Exception:
        pass
