"""A streamed run's Parquet files read again (eval, explain, conformal sets, the API's test rows, a resume): the
files its checkpoint lists, each checked against the size and modification time it had when the run started.
A changed or removed file is refused by name, as an in-memory run's changed table is (data/reread.py): the
hash split would pick other rows. A Parquet file data.path names now that the run never read is refused by a
resume (it would go on training without it) and noted by eval, which scores the rows the run was split on."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nntrain.data.columns import Report
from nntrain.data.readers import stamp
from nntrain.data.stream import (
    HashSplit,
    Share,
    Source,
    evaluated_frames,
    evaluated_rows,
    evaluation_data,
    open_source,
    parquet_files,
    table_of,
)
from nntrain.data.tables import Table
from nntrain.errors import UserError

PART_NAMES = {"val": "validation", "test": "test"}


def differences(stream: dict) -> dict[str, list[str]]:
    """What differs from the files a streamed run started with: "changed" (another size or modification time),
    "removed" (gone) and "added" (Parquet files data.path lists now besides them)."""
    files = stream["files"]
    gone = [f for f in files if not Path(f).is_file()]
    changed = [f for f, was in zip(files, stream.get("stamps") or []) if f not in gone and stamp(f) != was]
    return {"changed": changed, "removed": gone, "added": _added(stream)}


def _added(stream: dict) -> list[str]:
    """The Parquet files data.path lists now that the run never read: its absolute form kept at fit (a run from
    before that: data.path from the working directory)."""
    try:
        now = parquet_files(stream.get("where") or stream["path"]) or []
    except UserError:  # no Parquet file left (every stored one is then gone), or a table of another format beside
        return []
    had = {os.path.abspath(f) for f in stream["files"]}
    return [f for f in now if os.path.abspath(f) not in had]


def _named(files: list[str]) -> str:
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    return ", ".join(files[:3]) + more


def described(diff: dict[str, list[str]]) -> str:
    """The differences for a message: `FILE: size or modification time; removed: FILE`."""
    said = [f"{_named(diff['changed'])}: size or modification time"] if diff["changed"] else []
    said += [f"removed: {_named(diff['removed'])}"] if diff["removed"] else []
    said += [f"added: {_named(diff['added'])}"] if diff["added"] else []
    return "; ".join(said)


def checked_source(prep: dict, part: str | None = None, report: Report | None = None) -> Source:
    """The files a streamed run started with, opened once none changed or went away and, for a resume (`part`
    None), none was added; reading its `part` rows ("val" or "test") again, a file added is noted in `report`."""
    stream = prep["stream"]
    diff = differences(stream)
    if diff["changed"] or diff["removed"] or (diff["added"] and part is None):
        raise _refused(stream["path"], described(diff), part, only_added=not (diff["changed"] or diff["removed"]))
    if diff["added"] and report is not None:
        n = len(diff["added"])
        report.notes.append(
            f"data.path={stream['path']}: {n} Parquet file{'s' if n > 1 else ''} added since the run was trained "
            f"({_named(diff['added'])}): its {PART_NAMES[part]} rows are those of the files it was trained on; "
            f"eval and explain score a file's rows with --data FILE"
        )
    source = open_source(stream["files"], stream["path"])
    if source.sha256 != prep.get("sha256"):  # a run from before each file's stamp was kept
        raise _refused(stream["path"], "names, sizes or times", part)
    return source


def _refused(path: str, what: str, part: str | None, only_added: bool = False) -> UserError:
    shown = f"data.path={path}: its Parquet files changed since the run"
    if part is None and only_added:
        return UserError(
            f"{shown} started ({what}); a resume reads the files the run started with, not the new ones: move them "
            f"out to resume it, or start a new run to train on them too"
        )
    if part is None:
        return UserError(f"{shown} started ({what}); a resume would train on other rows: start a new run")
    return UserError(
        f"{shown} was trained ({what}), so its {PART_NAMES[part]} rows are not the same: put the files back as "
        f"they were; eval and explain score new files' rows with --data FILE"
    )


def stored_rows(prep: dict, part: str, report: Report | None = None):
    """A streamed run's evaluated rows of one part ("val" or "test"), read again from its files (encoding.Encoded)."""
    from nntrain.data.encoding import Encoded

    source = checked_source(prep, part, report)
    return Encoded(*evaluated_rows(source, prep, HashSplit(**prep["stream"]["split"]), part))


def stored_table(prep: dict, part: str) -> Table:
    """A streamed run's evaluated rows of one part as raw rows (what explain shuffles)."""
    source = checked_source(prep, part)
    frames = [rows for _, rows in evaluated_frames(source, HashSplit(**prep["stream"]["split"]), part)]
    return table_of(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=source.columns), source)


def resumed_data(prep: dict, share: Share = Share()):
    """A streamed run's evaluated rows again, for a resume; refused where its files changed since it started."""
    source = checked_source(prep)
    return evaluation_data(source, HashSplit(**prep["stream"]["split"]), prep, "as when the run started", share=share)
