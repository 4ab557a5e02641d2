"""A cache of prepared data: the float32 matrix, targets, splits, weights and fitted preprocessing of a table,
so that the next `fit` (a sweep's trials, another seed with data.split_seed) skips the parse.

An entry is a folder under RUNS_DIR/.cache (data.cache_dir), named by a hash of what the preparation depends
on: each file's resolved path, size and modification time, the data config, the seed where it sets the
split, and the source of the modules that prepare data (a change of nntrain never reads an old entry). On
a hit, the sha256 of each file (computed anyway, on its own thread) must equal the entry's, and the matrix is
memory-mapped copy-on-write. An entry is written into a temporary folder and renamed into place; the oldest
entries are removed past data.cache_max_gb. Anything wrong with an entry (unreadable, half-written,
another sha256) makes it a miss and it is built again: an entry is never trusted beyond those checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nntrain.config.schema import Config
from nntrain.data.prepare import Prepared, check_against, load_data
from nntrain.data.tables import resolve_path, sha256_soon

ARRAYS = ("X", "y", "train", "val", "test", "loss_weights", "weights")
FORMAT = 1
# What prepares data: their source is part of every key.


def cached_data(cfg: Config, config_dir: Path | None) -> tuple[Prepared, Callable[[], None]]:
    """(load_data's result, through the cache when data.cache is on and every input is a file; keep(), which
    writes a missed entry). The caller keeps it once the run has started, so a fit refused later leaves no
    cache entry behind either."""
    files = _files(cfg, config_dir)
    if not cfg.data.cache or files is None:
        return load_data(cfg, config_dir), lambda: None
    entry = cache_dir(cfg, config_dir) / _key(cfg, files)
    data = _read(entry, files)
    if data is not None:
        check_against(cfg, data)  # the entry was made under another loss, say
        data.notes.append(f"data from the cache ({entry}; the files' sha256 checked); data.cache=false skips it")
        return data, lambda: None
    data = load_data(cfg, config_dir)
    return data, lambda: _write(entry, data, files, cfg.data.cache_max_gb)


def cache_dir(cfg: Config, config_dir: Path | None) -> Path:
    given = cfg.data.cache_dir
    return resolve_path(given, config_dir) if given else Path(cfg.runs_dir) / ".cache"


def _files(cfg: Config, config_dir: Path | None) -> list[Path] | None:
    """The files the data comes from, resolved as read_table resolves them; None for a bundled dataset or
    a file that is not there (load_data says why)."""
    named = [cfg.data.path, cfg.data.val_path, cfg.data.test_path]
    paths = [resolve_path(p, config_dir) for p in named if p is not None]
    if any(str(p).startswith("sklearn:") for p in named if p) or not all(p.is_file() for p in paths):
        return None
    return [p.resolve() for p in paths]


def _key(cfg: Config, files: list[Path]) -> str:
    data = cfg.data.model_dump(mode="json")
    for k in ("cache", "cache_dir", "cache_max_gb"):
        data.pop(k)
    seed = cfg.seed if cfg.data.split_seed is None else None  # the split depends on it
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    # the data stage's own code: a change to how tables are read or prepared makes a new entry
    code = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(__file__).parent.glob("*.py"))]
    text = json.dumps({"format": FORMAT, "data": data, "seed": seed, "files": stats, "code": code}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read(entry: Path, files: list[Path]) -> Prepared | None:
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta["sha256"] != [sha256_soon(p).result() for p in files]:
            return None
        arrays = {}
        for name in ARRAYS:
            path = entry / f"{name}.npy"
            arrays[name] = np.load(path, mmap_mode="c" if name == "X" else None) if path.exists() else None
        os.utime(entry)  # recently used: evicted last
        return Prepared(
            arrays["X"],
            arrays["y"],
            arrays["train"],
            arrays["val"],
            arrays["test"],
            meta["prep"],
            meta["task_reason"],
            meta["notes"],
            arrays["loss_weights"],
            arrays["weights"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(entry: Path, data: Prepared, files: list[Path], max_gb: float) -> None:
    """The entry written whole into a temporary folder, then renamed into place; a failure leaves no entry."""
    size = sum(getattr(data, n).nbytes for n in ARRAYS if getattr(data, n) is not None)
    if size > max_gb * 2**30:
        return
    tmp = entry.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        if size > shutil.disk_usage(entry.parent).free / 4:  # the run's checkpoints come first
            return
        tmp.mkdir()
        for name in ARRAYS:
            value = getattr(data, name)
            if value is not None:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(value))
        meta = {"prep": data.prep, "task_reason": data.task_reason, "notes": data.notes}
        meta["sha256"] = [sha256_soon(p).result() for p in files]
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
        _evict(entry.parent, max_gb * 2**30, keep=entry)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _evict(folder: Path, limit: float, keep: Path) -> None:
    """The least recently used entries removed until the cache holds at most `limit` bytes."""
    entries, now = [], time.time()
    for e in folder.iterdir():
        if e.name.startswith(".tmp-") and now - e.stat().st_mtime > 3600:  # left by a process that was killed
            shutil.rmtree(e, ignore_errors=True)
        elif e.is_dir() and not e.name.startswith("."):
            entries.append((e.stat().st_mtime, sum(f.stat().st_size for f in e.iterdir()), e))
    total = sum(size for _, size, _ in entries)
    for _, size, e in sorted(entries, key=lambda t: t[0]):
        if total <= limit:
            break
        if e != keep:
            shutil.rmtree(e, ignore_errors=True)
            total -= size
