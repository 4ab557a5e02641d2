"""Which columns matter: permutation importance of a trained run, one row per original column.

A column's values are shuffled across the rows (a one-hot or embedded column moves as one; a date column's
parts move with it, being computed from it), the rows go through the stored preprocessing and the model,
and the monitored metric is measured again: its mean change for the worse over `repeats` shuffles, with
the standard deviation, is the column's importance (Breiman 2001; scikit-learn's permutation_importance).
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from nntrain import metrics as M
from nntrain.data.encoding import labelled_rows
from nntrain.data.reread import load_table, split_table
from nntrain.data.tables import Table
from nntrain.errors import UserError
from nntrain.tools.inference import LoadedRun, data_label, evaluate_run, read_input

MAX_REPEATS = 100


def importance(
    run: LoadedRun, data: str | Table | None = None, repeats: int = 5, seed: int = 0, bag: tuple | None = None
) -> dict:
    """{"metric", "base", "rows", "data", "table": DataFrame (column, importance, std, and the metric after each
    shuffle), most important first}. bag: (its folder, bag.json, its members) where `run` is a bag's first
    member: the members' mean is what is scored, on the bag's test split."""
    from nntrain.tools.bag_inference import bag_report

    for key, value in (("--repeats", repeats), ("seed", seed)):  # from Python: "3" would fail below as TypeError
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            range_ = f" from 1 to {MAX_REPEATS}" if key == "--repeats" else ""
            raise UserError(f"{key}: give a whole number{range_}, not {type(value).__name__}")
    if not 1 <= repeats <= MAX_REPEATS:
        raise UserError(f"--repeats {repeats}: give 1 to {MAX_REPEATS}")
    table, label = _rows(run, data, None if bag is None else (bag[0], bag[1]["test"]))
    table = replace(table, frame=labelled_rows(table.frame, run.prep))  # shuffled among the rows scored
    if len(table.frame) < 2:  # one row shuffled is the same row: every importance would be 0
        raise UserError(
            f"{label}: {len(table.frame)} row(s); shuffling a column moves its values between rows, give 2 or more"
        )
    metric = M.monitor_name(run.cfg.train.monitor).removeprefix("val_")
    worse = -1.0 if M.maximize(metric) else 1.0  # a change for the worse counts positive

    def score(frame: pd.DataFrame) -> float:
        rows = Table(frame, table.source, table.sha256, table.header_line)
        return (evaluate_run(run, rows) if bag is None else bag_report(*bag, rows))["metrics"][metric]

    base = score(table.frame)
    rng = np.random.default_rng(seed)
    rows = []
    for col in run.prep["columns"]:
        after = []
        for _ in range(repeats):
            shuffled = table.frame.copy()
            shuffled[col] = table.frame[col].to_numpy()[rng.permutation(len(shuffled))]
            after.append(score(shuffled))
        drops = worse * (np.array(after) - base)
        rows.append({"column": col, "importance": drops.mean(), "std": drops.std(ddof=1) if repeats > 1 else 0.0})
    frame = pd.DataFrame(rows).sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    return {"metric": metric, "base": base, "rows": len(table.frame), "data": label, "table": frame}


def _rows(run: LoadedRun, data: str | Table | None, bag_test: tuple | None) -> tuple[Table, str]:
    """The raw rows to shuffle: the run's test split (from split.json; a bag's: (folder, rows)), or a file, or
    a Table in memory."""
    if data is not None:  # a file read as eval reads it: the run's separator, decimal and text columns
        return data if isinstance(data, Table) else read_input(data, "--data", run.prep), data_label(data)
    if bag_test is None:
        table, folder = split_table(run.prep, run.split, run.run_dir, "test"), run.run_dir
    else:
        folder, test = bag_test
        table = load_table(run.prep, test) if test else None
    if table is None:
        raise UserError(f"{folder} has no test split (data.test_size=0): explain it on a file with --data")
    return table, "test split"


def explained(folder: Path, result: dict) -> dict:
    """An importance result with its files (importance.csv, .png) written to `folder` while it is there."""
    from nntrain.runs.files import write_output
    from nntrain.runs.plots import importance_png
    from nntrain.tools.inference import spreadsheet_safe

    result["files"] = []
    if folder.is_dir():
        csv = folder / "importance.csv"  # column names are the data's text: escaped as predict's cells
        write_output(csv, lambda f: spreadsheet_safe(result["table"]).to_csv(f, index=False), str(csv))
        shown, png = f"{folder.name}: {result['data']}, {result['rows']:,} rows", folder / "importance.png"
        result["files"] = [csv, importance_png(result["table"], png, result["metric"], shown)]
    return result
