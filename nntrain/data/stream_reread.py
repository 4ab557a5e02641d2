"""A streamed run's Parquet files read again (eval, explain, conformal sets, the API's test rows, a resume): the
files its checkpoint lists, each checked against the size and modification time it had when the run started.
A changed or removed file is refused by name, as an in-memory run's changed table is (data/reread.py): the
hash split would pick other rows."""

from __future__ import annotations

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
    table_of,
)
from nntrain.data.tables import Table
from nntrain.errors import UserError

PART_NAMES = {"val": "validation", "test": "test"}


def differences(stream: dict) -> dict[str, list[str]]:
    """What differs from the files a streamed run started with: "changed" (another size or modification time)
    and "removed" (gone)."""
    files = stream["files"]
    gone = [f for f in files if not Path(f).is_file()]
    changed = [f for f, was in zip(files, stream.get("stamps") or []) if f not in gone and stamp(f) != was]
    return {"changed": changed, "removed": gone}


def _named(files: list[str]) -> str:
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    return ", ".join(files[:3]) + more


def _described(diff: dict[str, list[str]]) -> str:
    """The differences for a message: `FILE: size or modification time; removed: FILE`."""
    said = [f"{_named(diff['changed'])}: size or modification time"] if diff["changed"] else []
    said += [f"removed: {_named(diff['removed'])}"] if diff["removed"] else []
    return "; ".join(said)


def checked_source(prep: dict, part: str | None = None, report: Report | None = None) -> Source:
    """The files a streamed run started with, opened once none changed or went away: for a resume (`part`
    None) or to read its `part` rows ("val" or "test") again."""
    stream = prep["stream"]
    what = _described(differences(stream))
    if what:
        raise _refused(stream["path"], what, part)
    source = open_source(stream["files"], stream["path"])
    if source.sha256 != prep.get("sha256"):  # a run from before each file's stamp was kept
        raise _refused(stream["path"], "names, sizes or times", part)
    return source


def _refused(path: str, what: str, part: str | None) -> UserError:
    shown = f"data.path={path}: its Parquet files changed since the run"
    if part is None:
        return UserError(f"{shown} started ({what}); a resume would train on other rows: start a new run")
    return UserError(
        f"{shown} was trained ({what}), so its {PART_NAMES[part]} rows are not the same: put the files back as "
        f"they were, or evaluate on the new files with eval --data"
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
