"""Apply a fitted preprocessing to raw rows: the float32 matrix the model takes, class indices, and
regression values back in the target's units. Fitting it is preprocess.py's job.

The fitted preprocessing is plain data (lists, numbers, strings) so it travels inside a checkpoint that
loads with weights_only=True: nothing is unpickled at eval or predict time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError, listed, quoted
from .tables import Table, read_table, sha256_soon, where


def py(v: Any) -> Any:
    """numpy scalars -> Python scalars, so they survive weights_only loading and JSON."""
    return v.item() if hasattr(v, "item") else v


def unscale(prep: dict, y: Any) -> Any:
    """A standardized regression value (array or tensor) back in the target's own units."""
    return y * prep["target_scale"] + prep["target_shift"]


def numeric_column(s: pd.Series, is_csv: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    as_num = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    bad = as_num.isna() & s.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"column {quoted(s.name)}: {quoted(s.iloc[i])} at {where(is_csv, i)} is not a number")
    return as_num.to_numpy(dtype=np.float64, na_value=np.nan)


def check_finite(v: np.ndarray, col: str, is_csv: bool) -> None:
    bad = np.isinf(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"column '{col}': infinite value {v[i]} at {where(is_csv, i)}; fix or remove that row")


def numeric_values(df: pd.DataFrame, col: str, prep: dict, is_csv: bool) -> np.ndarray:
    """One numeric column as float64, imputed if the run imputes it, with no missing or infinite value."""
    s = df[col]
    if col in prep["impute"]:
        s = s.fillna(prep["impute"][col])
    v = numeric_column(s, is_csv)
    if not np.isfinite(v).all():  # one pass over the column; where the bad value is, only when there is one
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        if np.isnan(v[i]):
            raise UserError(
                f"column '{col}': missing value at {where(is_csv, i)}; fill it, drop the column "
                f"(data.drop), or set data.impute: mean | median | most_frequent"
            )
        check_finite(v, col, is_csv)
    return v


def encode(df: pd.DataFrame, prep: dict, is_csv: bool, values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Raw rows -> the float32 matrix the model takes, with the stored preprocessing. `values`: numeric
    columns already read and checked (by prepare).

    Written straight into float32, never as a float64 copy of the whole table."""
    missing = [c for c in prep["columns"] if c not in df.columns]
    if missing:
        raise UserError(f"input lacks column(s) {', '.join(map(repr, missing))} that the model was trained on")
    X = np.empty((len(df), len(prep["encoded"])), dtype=np.float32)
    where, columns, j = [], [], 0
    for col in prep["columns"]:
        if prep["kinds"][col] == "numeric":
            where.append(j)
            columns.append(values[col] if values else numeric_values(df, col, prep, is_csv))
            j += 1
        else:
            block = _one_hot(df[col], prep, is_csv)
            X[:, j : j + block.shape[1]] = block
            j += block.shape[1]
    shift, scale = np.asarray(prep["shift"])[:, None], np.asarray(prep["scale"])[:, None]
    if where and where[-1] - where[0] == len(where) - 1:
        where = slice(where[0], where[-1] + 1)  # a run of columns, written without fancy indexing

    def fill(part: range) -> None:
        # A block of rows at a time and every numeric column at once, with the block in cache: float64 columns
        # in, float32 rows out (column by column over the whole row-major matrix took four times as long).
        block = np.empty((len(columns), ROWS_PER_BLOCK))
        for start in part:
            stop = min(start + ROWS_PER_BLOCK, part.stop)
            b = block[:, : stop - start]
            for i, v in enumerate(columns):
                b[i] = v[start:stop]
            b -= shift
            b /= scale
            X[start:stop, where] = b.T

    n, parts = len(df), THREADS if len(df) >= PARALLEL_ROWS else 1
    if columns:
        map_rows(fill, [range(n * i // parts, n * (i + 1) // parts, ROWS_PER_BLOCK) for i in range(parts)], n)
    return X


ROWS_PER_BLOCK = 8192
# numpy releases the GIL over a whole column, so on big tables the per-column work runs on every core.
THREADS = os.cpu_count() or 1
PARALLEL_ROWS = 100_000


def map_rows(fn: Callable, items: Iterable, n_rows: int) -> list:
    """[fn(x) for x in items], on THREADS threads for tables of PARALLEL_ROWS rows or more; the first error in
    item order is raised, as a plain loop would."""
    if n_rows < PARALLEL_ROWS or THREADS == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, items))


def _one_hot(s: pd.Series, prep: dict, is_csv: bool) -> np.ndarray:
    col = str(s.name)
    if col in prep["impute"]:
        s = s.fillna(prep["impute"][col])
    cats = prep["categories"][col]
    lookup = {c: i for i, c in enumerate(cats)}
    idx, uniques = pd.factorize(s)  # each distinct value named once; -1 for a missing one
    known = categories(pd.Series(uniques)).map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    codes = np.where(idx >= 0, known[np.maximum(idx, 0)] if len(known) else -1, -1)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        if pd.isna(s.iloc[i]):
            raise UserError(
                f"column '{col}': missing value at {where(is_csv, i)}; fill it, drop the column "
                f"(data.drop), or set data.impute: most_frequent"
            )
        raise UserError(
            f"column {quoted(col)}: value {quoted(s.iloc[i])} at {where(is_csv, i)} was never seen in training; "
            f"known values: {listed(cats, most=20, limit=20)}"
        )
    out = np.zeros((len(s), len(cats)), dtype=np.float32)
    out[np.arange(len(s)), codes] = 1.0
    return out


def categories(s: pd.Series) -> pd.Series:
    """Category names as strings, vectorized; 3 and 3.0 are the same zone."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype(np.float64)
        integral = v.notna() & (v == v.round())
        out = v.astype(str).astype(object)
        out[integral] = v[integral].astype(np.int64).astype(str)
        return out
    return s.astype(str)


def encode_labels(y: pd.Series, classes: list, target: str, is_csv: bool) -> np.ndarray:
    """Class indices, vectorized (a million labels through a Python loop take seconds). Numeric labels match
    by value, so 1, 1.0 and '1' are one class."""
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        ref = np.asarray(classes, dtype=np.float64)
        pos = np.clip(np.searchsorted(ref, values), 0, len(ref) - 1)
        codes = np.where(ref[pos] == values, pos, -1)
    else:
        lookup = {str(c): i for i, c in enumerate(classes)}
        codes = y.astype(str).map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise UserError(
            f"column {quoted(target)} (the target): label {quoted(py(y.iloc[i]))} at {where(is_csv, i)} was never "
            f"seen in training; known labels: {listed(classes, most=20, limit=20)}"
        )
    return codes.astype(np.int64)


def encode_table(table: Table, prep: dict, shown: str) -> tuple[np.ndarray, np.ndarray]:
    """A table with the training columns and target, as (features, targets) through the stored preprocessing."""
    if prep["target"] not in table.frame.columns:
        raise UserError(f"{shown}: no target column '{prep['target']}' to evaluate against")
    return encode(table.frame, prep, table.is_csv), encode_target(table.frame[prep["target"]], prep, table.is_csv)


def load_encoded(prep: dict, rows: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training table again (or only `rows` of it), encoded with the stored preprocessing; refused if the
    file changed."""
    source = prep["source"]
    changed = UserError(
        f"{source} changed since the run was trained (sha256 differs), so its rows are not the same; evaluate on it "
        f"with --data, or start a new run"
    )
    if not source.startswith("sklearn:"):  # hashed before it is parsed: a checkpoint names the file it reads
        path = Path(source)
        if not path.is_file():
            raise UserError(f"{source}: the file the run was trained on is not there any more; evaluate with --data")
        if sha256_soon(path).result() != prep["sha256"]:
            raise changed
    table = read_table(source)
    if table.sha256 != prep["sha256"]:
        raise changed
    if rows is not None:
        table = dataclasses.replace(table, frame=table.frame.iloc[rows].reset_index(drop=True))
    return encode_table(table, prep, prep["source"])


def encode_target(y: pd.Series, prep: dict, is_csv: bool) -> np.ndarray:
    target = prep["target"]
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise UserError(f"column '{target}' (the target): missing value at {where(is_csv, i)}")
    if prep["task"] == "regression":
        v = numeric_column(y, is_csv)
        check_finite(v, target, is_csv)
        return ((v - prep["target_shift"]) / prep["target_scale"]).astype(np.float32)
    return encode_labels(y, prep["classes"], target, is_csv)
