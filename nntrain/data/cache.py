"""A cache of prepared data: the float32 matrix, targets, splits, weights and fitted preprocessing of a table,
so that the next `fit` (a sweep's trials, another seed with data.split_seed) skips the parse.

An entry is a folder under RUNS_DIR/.cache (data.cache_dir), named by a hash of what the preparation depends
on: each file's resolved path, size and modification time, the data config, the seed where it sets the
split, and the source of the modules that prepare data (a change of nntrain never reads an old entry). On
a hit, the sha256 of each file (computed anyway, on its own thread) must equal the entry's, and the matrix is
memory-mapped copy-on-write, once each array file's sha256 equals the one its meta.json recorded. An entry is
written into a temporary folder and renamed into place; the oldest entries are removed past data.cache_max_gb.
Anything wrong with an entry (unreadable, half-written, altered, another sha256) makes it a miss and it is
built again: an entry is never trusted beyond those checks.

The cache deletes only what it can prove it wrote: a folder named as a key whose meta.json carries the cache's
tag and that key, and inside it only the files the cache writes (the folder is removed only once empty). A
data.cache_dir that holds the user's own folders, or run folders, loses nothing to eviction; a relative
data.cache_dir is under the working directory, as runs_dir is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nntrain.config.schema import Config
from nntrain.data.digests import sha256_soon
from nntrain.data.prepare import Prepared, check_against, load_data
from nntrain.data.tables import resolve_path
from nntrain.errors import UserError

ARRAYS = ("X", "y", "train", "val", "test", "loss_weights", "weights")
FORMAT = 2
TAG = "nntrain-cache"  # in every entry's meta.json, with the entry's own key: what eviction may remove
KEY = re.compile(r"[0-9a-f]{32}")
# What prepares data: their source is part of every key.


def cached_data(cfg: Config, config_dir: Path | None) -> tuple[Prepared, Callable[[], None]]:
    """(load_data's result, through the cache when data.cache is on and every input is a file; keep(), which
    writes a missed entry). The caller keeps it once the run has started, so a fit refused later leaves no
    cache entry behind either."""
    files = _files(cfg, config_dir)
    if not cfg.data.cache or files is None:
        return load_data(cfg, config_dir), lambda: None
    entry = cache_dir(cfg, config_dir) / _key(cfg, files)
    data, bad = _read(entry, files)
    if data is not None:
        check_against(cfg, data)  # the entry was made under another loss, say
        data.notes.append(
            f"data from the cache ({entry}; the files' and the entry's sha256 checked); data.cache=false skips it"
        )
        return data, lambda: None
    data = load_data(cfg, config_dir)
    if bad:
        data.notes.append(f"the cache entry {entry} was not used ({bad}); the data was prepared again")
    return data, lambda: _write(entry, data, files, cfg.data.cache_max_gb)


def cache_dir(cfg: Config, config_dir: Path | None = None) -> Path:
    """data.cache_dir (a relative one under the working directory, as runs_dir), or RUNS_DIR/.cache. The runs
    folder itself is refused: its run folders are no cache's."""
    given = cfg.data.cache_dir
    if not given:
        return Path(cfg.runs_dir) / ".cache"
    folder = Path(given).expanduser()
    if folder.resolve() == Path(cfg.runs_dir).expanduser().resolve():
        raise UserError(
            f"data.cache_dir={given}: that is the runs folder (runs_dir={cfg.runs_dir}); name a folder of its "
            f"own, or leave it out for {Path(cfg.runs_dir) / '.cache'}"
        )
    return folder


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


def _read(entry: Path, files: list[Path]) -> tuple[Prepared | None, str | None]:
    """(the entry's data, None) on a hit; (None, why) for an entry there but not usable; (None, None) for none."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"its meta.json is unreadable: {e}"
    try:
        if meta["sha256"] != [sha256_soon(p).result() for p in files]:
            return None, "made from another version of the file"
        stored = meta["arrays"]
        present = sorted(n for n in ARRAYS if (entry / f"{n}.npy").exists())
        if present != sorted(stored):
            return None, "its array files are not the ones it wrote"
        with ThreadPoolExecutor(len(present)) as pool:  # hashlib releases the GIL: the files hashed at once
            digests = dict(zip(present, pool.map(lambda n: _sha256(entry / f"{n}.npy"), present)))
        altered = [f"{n}.npy" for n in present if digests[n] != stored[n]]
        if altered:
            return None, f"{', '.join(altered)} altered since it was written: another sha256"
        arrays = {n: np.load(entry / f"{n}.npy", mmap_mode="c" if n == "X" else None) for n in present}
        arrays |= {n: None for n in ARRAYS if n not in arrays}
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
        ), None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return None, f"unreadable: {e}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        arrays = {}
        for name in ARRAYS:
            value = getattr(data, name)
            if value is not None:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(value))
                arrays[name] = _sha256(tmp / f"{name}.npy")
        meta = {"tag": TAG, "key": entry.name, "prep": data.prep, "task_reason": data.task_reason}
        meta |= {"notes": data.notes, "sha256": [sha256_soon(p).result() for p in files], "arrays": arrays}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if entry.exists():
            _remove(entry)  # this key's entry, which failed its check; anything else in it makes the rename fail
        os.replace(tmp, entry)
        _evict(entry.parent, max_gb * 2**30, keep=entry)
    except OSError:
        pass
    finally:
        if tmp.exists():
            _remove(tmp)


def _remove(folder: Path) -> bool:
    """The files the cache writes removed from one of its folders, then the folder if that left it empty; True if
    it is gone. Callers pass only folders proven the cache's (an entry tagged with its key, this fit's own entry
    or temporary folder); anything else inside is left, and with it the folder."""
    for name in [f"{n}.npy" for n in ARRAYS] + ["meta.json"]:
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
        return True
    except OSError:
        return False


def _evict(folder: Path, limit: float, keep: Path) -> None:
    """The least recently used entries removed until the cache's entries hold at most `limit` bytes. Only the
    cache's own entries count or go; anything else in the folder is left alone."""
    entries, now = [], time.time()
    for e in folder.iterdir():
        if not e.is_dir() or e.is_symlink():
            continue
        if e.name.startswith(".tmp-") and KEY.fullmatch(e.name[5:]) and now - e.stat().st_mtime > 3600:
            _remove(e)  # left by a process that was killed
        elif KEY.fullmatch(e.name) and _tagged(e):
            entries.append((e.stat().st_mtime, sum(f.stat().st_size for f in e.iterdir() if f.is_file()), e))
    total = sum(size for _, size, _ in entries)
    for _, size, e in sorted(entries, key=lambda t: t[0]):
        if total <= limit:
            break
        if e != keep and _remove(e):
            total -= size


def _tagged(entry: Path) -> bool:
    try:
        meta = json.loads((entry / "meta.json").read_text())
        return isinstance(meta, dict) and meta.get("tag") == TAG and meta.get("key") == entry.name
    except (OSError, ValueError):
        return False
