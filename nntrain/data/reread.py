"""A run's own training table read again (eval, resume, explain): the same file, checked by its sha256, with
the run's own val / test files after it, through the stored preprocessing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nntrain.data.columns import Report
from nntrain.data.encoding import Encoded, encode_table
from nntrain.data.tables import Table, read_options, read_table, sha256_soon
from nntrain.errors import UserError


def load_encoded(prep: dict, rows: list[int] | None = None, report: Report | None = None) -> Encoded:
    """The training table again (with the run's own val / test files after it), or only `rows` of it, through
    the stored preprocessing; refused if a file changed. Every row of it stays when `rows` is None."""
    return encode_table(load_table(prep, rows), prep, prep["source"], report, every_row=rows is None)


def load_table(prep: dict, rows: list[int] | None = None) -> Table:
    """The training table's raw rows again (with the run's own val / test files after it), or only `rows`."""
    read = prep.get("read", {})
    tables = [read_training_file(prep["source"], prep["sha256"], read)]
    tables += [read_training_file(f["source"], f["sha256"], read) for f in prep.get("files", [])]
    frame = pd.concat([t.frame for t in tables], ignore_index=True) if len(tables) > 1 else tables[0].frame
    if rows is not None:
        frame = frame.iloc[rows].reset_index(drop=True)
    return Table(frame, prep["source"], prep["sha256"], all(t.is_csv for t in tables))


def read_training_file(source: str, sha256: str, read: dict | None = None) -> Table:
    changed = UserError(
        f"{source} changed since the run was trained (sha256 differs), so its rows are not the same; evaluate on it "
        f"with --data, or start a new run"
    )
    if not source.startswith("sklearn:"):  # hashed before it is parsed: a checkpoint names the file it reads
        path = Path(source)
        if not path.is_file():
            raise UserError(f"{source}: the file the run was trained on is not there any more; evaluate with --data")
        if sha256_soon(path).result() != sha256:
            raise changed
    table = read_table(source, options=read_options(read or {}))
    if table.sha256 != sha256:
        raise changed
    return table
