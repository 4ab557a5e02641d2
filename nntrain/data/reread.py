"""A run's own training table read again (eval, resume, explain): the same file, checked by its sha256 (a
folder's or glob's Parquet files: the same files, each by its size and modification time), with the run's own
val / test files after it, through the stored preprocessing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nntrain.data.columns import Report
from nntrain.data.digests import sha256_soon
from nntrain.data.encoding import Encoded, encode_table
from nntrain.data.frames import is_stored_frame
from nntrain.data.readers import kept_parts, parquet_parts, parts_digest, read_parts
from nntrain.data.tables import Table, read_options, read_table
from nntrain.errors import UserError


def load_encoded(prep: dict, rows: list[int] | None = None, report: Report | None = None) -> Encoded:
    """The training table again (with the run's own val / test files after it), or only `rows` of it, through
    the stored preprocessing; refused if a file changed. Every row of it stays when `rows` is None."""
    return encode_table(load_table(prep, rows), prep, prep["source"], report, every_row=rows is None)


def split_encoded(prep: dict, split: dict, run_dir: Path, part: str, report: Report | None = None) -> Encoded | None:
    """A run's rows of one split ("val" or "test") through its preprocessing: those split.json lists, read again
    from its table, or a streamed run's by its hash rule (data/stream.py); None where the split is empty."""
    from nntrain.data.stream_reread import stored_rows

    if "stream" in prep:
        return stored_rows(prep, part, report) if prep["stream"]["split"][part] > 0 else None
    rows = _listed(split, run_dir, part)
    return load_encoded(prep, rows=rows, report=report) if rows else None


def split_table(prep: dict, split: dict, run_dir: Path, part: str) -> Table | None:
    """split_encoded's rows as raw rows (what explain shuffles)."""
    from nntrain.data.stream_reread import stored_table

    if "stream" in prep:
        return stored_table(prep, part) if prep["stream"]["split"][part] > 0 else None
    rows = _listed(split, run_dir, part)
    return load_table(prep, rows) if rows else None


def seen_in_run(prep: dict, table: Table, split: dict, run_dir: Path) -> str | None:
    """seen_in_training for a run's training rows as split.json lists them; None for a streamed run (its
    split.json holds a hash rule, and its table may be larger than memory)."""
    return None if "stream" in prep else seen_in_training(prep, table, _listed(split, run_dir, "train"))


def _listed(split: dict, run_dir: Path, part: str) -> list[int]:
    from nntrain.runs.checkpoints import split_rows

    return split_rows(split, run_dir, part)[0]


def load_table(prep: dict, rows: list[int] | None = None) -> Table:
    """The training table's raw rows again (with the run's own val / test files after it), or only `rows`."""
    read = prep.get("read", {})
    tables = [read_training_file(prep["source"], prep["sha256"], read, prep.get("parts"))]
    tables += [
        read_training_file(f["source"], f["sha256"], read, f.get("parts"), f"data.{f.get('part')}_path")
        for f in prep.get("files", [])
    ]
    frame = pd.concat([t.frame for t in tables], ignore_index=True) if len(tables) > 1 else tables[0].frame
    line = tables[0].header_line if len(tables) == 1 else 0  # rows of several files have no one line number
    if rows is not None:
        frame, line = frame.iloc[rows].reset_index(drop=True), 0
    return Table(frame, prep["source"], prep["sha256"], line)


def read_training_file(
    source: str, sha256: str, read: dict | None = None, parts: dict | None = None, key: str = "data.path"
) -> Table:
    """The file a run was trained on, refused where it changed or went away; a folder's or glob's Parquet files
    (`parts`, readers.kept_parts; None for a run from before they were kept) read again as _parts_again reads them.
    `key` names the config key of a folder in messages."""
    if parts is not None or _names_parts(source):
        return _parts_again(source, sha256, parts, key)
    changed = _not_the_same(source, gone=False)
    if not source.startswith("sklearn:"):  # hashed before it is parsed: a checkpoint names the file it reads
        path = Path(source)
        if not path.is_file():
            raise _not_the_same(source, gone=True)
        if sha256_soon(path).result() != sha256:
            raise changed
    table = read_table(source, options=read_options(read or {}))
    if table.sha256 != sha256:
        raise changed
    return table


def _not_the_same(source: str, gone: bool) -> UserError:
    """The training file gone (or changed); a DataFrame that fit stored (RUNS_DIR/.data) is named as the DataFrame:
    the user never wrote that file and cannot put it back, but can fit again or score other rows."""
    what = "is not there any more" if gone else "changed since the run was trained (sha256 differs)"
    if is_stored_frame(source):
        return UserError(
            f"the DataFrame the run was trained on (stored as {source}) {what}: fit the DataFrame again to train "
            f"on it; evaluate, report and explain score other rows given as data= (a DataFrame or a file; eval "
            f"--data FILE)"
        )
    if gone:
        return UserError(
            f"{source}: the file the run was trained on {what}: put it back; eval and explain score another file's "
            f"rows with --data FILE"
        )
    return UserError(
        f"{source} {what}, so its rows are not the same: put the file back as it was; eval and explain score a new "
        f"file's rows with --data FILE"
    )


def _names_parts(source: str) -> bool:
    """Whether a run's stored source is a folder or a glob of Parquet files, not one file."""
    if source.startswith("sklearn:") or Path(source).is_file():
        return False
    return Path(source).is_dir() or any(c in source for c in "*?[")


def _parts_again(source: str, sha256: str, parts: dict | None, key: str) -> Table:
    """A folder's or glob's Parquet files read again: those the run read, by their absolute paths (from any
    working directory), refused by name where one changed, went away or was added since (its rows are not the ones
    split.json lists), as a streamed run's are (data/stream_reread.py)."""
    from nntrain.data.stream_reread import described, differences

    parts = parts or _parts_then(source, sha256, key)
    diff = differences(parts)
    if any(diff.values()):
        raise _parts_changed(key, source, described(diff))
    return Table(read_parts(parts["files"], key, source), source, sha256, 0)


def _parts_then(source: str, sha256: str, key: str) -> dict:
    """For a run from before each file was kept: the files data.path names now, checked against its digest (of
    their names as it listed them then: absolute, or relative to the working directory of its fit)."""
    try:
        files = parquet_parts(source, Path(source).expanduser()) or []
    except UserError:  # none left
        files = []
    named = [os.path.abspath(f) for f in files]
    if sha256 not in (parts_digest(named), parts_digest([os.path.relpath(f) for f in named])):
        raise _parts_changed(
            key, source, "names, sizes or modification times; or it was trained from another working directory"
        )
    return kept_parts(source, Path(source).expanduser(), files)


def _parts_changed(key: str, source: str, what: str) -> UserError:
    return UserError(
        f"{key}={source}: its Parquet files changed since the run was trained ({what}), so its rows are not the "
        f"same: put the files back as they were; eval and explain score new files' rows with --data FILE"
    )


def seen_in_training(prep: dict, table: Table, trained: list[int] | None, test: list[int] | None = None) -> str | None:
    """A note where rows of `table` equal, in every column the run reads and its target, rows it trained on
    (`trained`, a run's training rows; or, for a bag, every row of its table but `test`): their score flatters
    it. None where none do, or where the training file is gone or changed."""
    import numpy as np

    try:
        own = load_table(prep).frame
    except UserError:
        return None
    rows = trained if trained is not None else np.setdiff1d(np.arange(len(own)), test or [])
    cols = [c for c in [*prep.get("columns", []), prep["target"]] if c in own.columns and c in table.frame.columns]
    if not cols or not len(rows):
        return None
    ours = pd.util.hash_pandas_object(own.iloc[rows][cols], index=False).to_numpy()
    frame = table.frame
    if prep["target"] in frame.columns:  # the rows scored: those without a target are left out of every count
        frame = frame[frame[prep["target"]].notna()]
    theirs = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    n = int(np.isin(theirs, ours).sum())
    if not n:
        return None
    return (
        f"{n:,} of its {len(theirs):,} rows are rows the run trained on (the same values in every column): their "
        f"score flatters it; evaluate on rows it never saw (its test split: eval without --data)"
    )
