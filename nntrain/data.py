"""Read a table, check it, split it, and fit the preprocessing on the training split only.

The fitted preprocessing is plain data (lists, numbers, strings) so it travels inside a checkpoint that
loads with weights_only=True: nothing is unpickled at eval or predict time.
"""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .config import Config, task_problems
from .errors import UserError, did_you_mean

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
# Integer-valued numeric targets with at most this many distinct values are read as classes.
MAX_AUTO_CLASSES = 20


@dataclass
class Table:
    frame: pd.DataFrame
    source: str  # resolved path, or sklearn:NAME
    sha256: str
    is_csv: bool


def resolve_path(path: str, base: Path | None = None) -> Path:
    """A relative path is tried in the working directory, then beside the config, then one folder up
    (so configs/x.yaml can name data/x.csv from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or base is None:
        return p
    for folder in (base, base.parent):
        if (folder / p).exists():
            return folder / p
    return p


CSV_SUFFIXES = ("", ".csv", ".txt", ".tsv", ".gz", ".bz2", ".zip", ".xz")


def read_table(path: str, base: Path | None = None, key: str = "data.path") -> Table:
    """A CSV (compressed too) or Parquet file, or sklearn:NAME. `key` names the argument in messages."""
    if path.startswith("sklearn:"):
        return _read_sklearn(path.removeprefix("sklearn:"), key)
    p = resolve_path(path, base)
    if not p.is_file():
        raise UserError(f"{key}={path}: file not found" + (f" (also looked under {base} and {base.parent})" if base else ""))
    digest = sha256_soon(p)  # already under way when fit started it before importing torch
    frame, is_csv = _read_frame(p, p.suffix.lower(), f"{key}={path}")
    sha256 = digest.result()
    if frame.shape[0] == 0:
        raise UserError(f"{key}={path}: the table has a header but no data rows")
    frame.columns = [str(c) for c in frame.columns]  # Parquet allows integer names; configs name columns in text
    return Table(frame, str(p.resolve()), sha256, is_csv)


def _read_frame(p: Path, suffix: str, shown: str) -> tuple[pd.DataFrame, bool]:
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p), False
        except Exception as e:  # pyarrow raises several types for a bad file
            raise UserError(f"{shown}: cannot read it as Parquet: {e}") from None
    if suffix in CSV_SUFFIXES:
        return _read_csv(p, shown), True
    raise UserError(f"{shown}: '{suffix}' files are not read; save the table as CSV or Parquet")


def _read_csv(p: Path, shown: str) -> pd.DataFrame:
    if p.stat().st_size == 0:
        raise UserError(f"{shown}: the file is empty")
    compressed = p.suffix.lower() in (".gz", ".bz2", ".zip", ".xz")
    try:
        header = [] if compressed else _header(p)
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise UserError(f"{shown}: duplicate column name(s) {', '.join(map(repr, dupes))} in the header")
        # dtype={} infers every column as usual; any dict makes pandas 3.1 keep one array per column instead of
        # copying them into one consolidated block at the end, which lowers the peak by a third (888 against 1,226
        # MiB on a 1M x 50 table)
        frame = pd.read_csv(p, index_col=False, encoding="utf-8", dtype={})
    except pd.errors.EmptyDataError:
        raise UserError(f"{shown}: the file has no header or data") from None
    except pd.errors.ParserError as e:
        raise UserError(f"{shown}: rows of unequal length: {e}".rstrip()) from None
    except UnicodeDecodeError as e:
        raise UserError(f"{shown}: not a UTF-8 text file ({e.reason} at byte {e.start}); save it as UTF-8 CSV") from None
    if frame.shape[1] == 1 and any(d in str(frame.columns[0]) for d in ";\t|"):
        raise UserError(f"{shown}: only one column, '{str(frame.columns[0])[:60]}': the file seems to use another "
                        f"delimiter than ','; save it as comma-separated")
    _trim_heap()
    # A short row comes back with its last fields NaN; only then is it worth reading the file again to find it.
    if header and frame.iloc[:, -1].hasnans:
        ragged = _ragged_row(p, len(header))
        if ragged is not None:
            raise UserError(f"{shown}: line {ragged[0]} has {ragged[1]} fields, the header has {len(header)}")
    return frame


def _trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim; elsewhere nothing). pandas' parallel
    parse frees its per-chunk buffers into malloc's arenas, which kept them resident: 320 MiB beside a 1M x 50
    table, while the float32 matrix is made next to it."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _header(p: Path) -> list[str]:
    with open(p, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def _ragged_row(p: Path, width: int) -> tuple[int, int] | None:
    """pandas fills short rows with NaN silently; find the first line whose field count differs."""
    with open(p, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if row and len(row) != width:
                return lineno, len(row)
    return None


def _read_sklearn(name: str, key: str = "data.path") -> Table:
    if name not in SKLEARN_DATASETS:
        raise UserError(f"{key}=sklearn:{name}: unknown dataset{did_you_mean(name, SKLEARN_DATASETS)}; "
                        f"choose one of: {', '.join('sklearn:' + d for d in SKLEARN_DATASETS)}")
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    names = getattr(bunch, "target_names", None)
    if name in ("iris", "wine", "breast_cancer") and names is not None:
        frame["target"] = np.asarray(names)[frame["target"].to_numpy()]  # labels read as words in predictions
    return Table(frame, f"sklearn:{name}", hashlib.sha256(f"sklearn:{name}".encode()).hexdigest(), False)


_DIGESTS: dict[tuple, Future] = {}


def sha256_soon(p: Path) -> Future:
    """The file's sha256 (kept in a run to notice a changed file), computed on a daemon thread: hashlib
    releases the GIL, so it runs beside whatever the caller does next (pandas' parse, or the torch import
    when `fit` starts it early through hash_ahead). Kept per path, size and mtime, so sweep trials and eval
    hash a file once per process."""
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        future = _DIGESTS[key] = Future()

        def work() -> None:
            try:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                future.set_result(h.hexdigest())
            except BaseException as e:  # handed to whoever waits for the result
                future.set_exception(e)

        threading.Thread(target=work, daemon=True).start()
    return _DIGESTS[key]


def hash_ahead(config: Path, overrides: list[str]) -> None:
    """Start hashing the data file a config names before the config is even checked: `fit` calls this before
    importing torch, which takes one core for 1-2 s. Anything odd is left alone for the real check to report."""
    try:
        given = [o.split("=", 1)[1] for o in overrides if o.startswith("data.path=")]
        path = given[-1] if given else yaml.safe_load(config.read_text(encoding="utf-8"))["data"]["path"]
        p = resolve_path(str(path), config.parent)
        if not str(path).startswith("sklearn:") and p.is_file():
            sha256_soon(p)
    except Exception:
        pass


def _where(table_is_csv: bool, i: int) -> str:
    """Rows are counted from 1 after the header; a CSV's line number is one more."""
    return f"row {i + 1} (line {i + 2})" if table_is_csv else f"row {i + 1}"


# ---------------------------------------------------------------- task and target


def infer_task(y: pd.Series, asked: str) -> tuple[str, str]:
    """(task, why). Non-numbers are classes; integer-valued numbers with few values are classes too."""
    values = y.dropna().unique()
    if len(values) < 2:
        raise UserError(f"column '{y.name}' (the target): every row has the same value {_py(values[0])!r}; "
                        f"there is nothing to learn")
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    integral = numeric and np.all(np.mod(values.astype(float), 1) == 0)
    if asked != "auto":
        if asked == "regression" and not numeric:
            raise UserError(f"data.task=regression: target '{y.name}' holds non-numbers such as {values[0]!r}")
        if asked == "binary" and len(values) != 2:
            raise UserError(f"data.task=binary: target '{y.name}' has {len(values)} distinct values, binary needs 2")
        return asked, "set in the config"
    if not numeric or (integral and len(values) <= MAX_AUTO_CLASSES):
        task = "binary" if len(values) == 2 else "multiclass"
        kind = "integer" if numeric else "distinct"
        return task, f"{len(values)} {kind} values in '{y.name}'; set data.task to override"
    return "regression", f"{len(values)} distinct numbers in '{y.name}'; set data.task to override"


def _py(v: Any) -> Any:
    """numpy scalars -> Python scalars, so they survive weights_only loading and JSON."""
    return v.item() if hasattr(v, "item") else v


# ---------------------------------------------------------------- preprocessing


@dataclass
class Prepared:
    X: np.ndarray  # float32, every row of the table, encoded and scaled
    y: np.ndarray  # int64 class indices, or float32 standardized regression target
    train: np.ndarray  # row indices
    val: np.ndarray
    test: np.ndarray
    prep: dict  # the fitted preprocessing, plain data
    task_reason: str
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.prep["task"]

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.prep["classes"])


def prepare(table: Table, data_cfg: Any, seed: int) -> Prepared:
    """Choose target and task, split, fit imputation / encoding / scaling on the training rows."""
    df, is_csv = table.frame, table.is_csv
    if len(df) < 3:
        raise UserError(f"data.path={data_cfg.path}: only {len(df)} row(s); the train, val and test splits need at "
                        f"least one row each")
    columns = list(map(str, df.columns))
    target = data_cfg.target or columns[-1]
    if target not in df.columns:
        raise UserError(f"data.target={target}: no such column{did_you_mean(target, columns)}; "
                        f"columns are: {', '.join(columns)}")
    for key in ("drop", "categorical"):
        missing = [c for c in getattr(data_cfg, key) if c not in df.columns]
        if missing:
            raise UserError(f"data.{key}: no column(s) {', '.join(map(repr, missing))}; columns are: {', '.join(columns)}")
    notes = []
    features = [c for c in df.columns if c != target and c not in data_cfg.drop]
    for col in [c for c in features if _is_saved_index(df[c])]:
        features.remove(col)
        notes.append(f"column '{col}' holds 0, 1, 2, ... (an index saved by pandas) and is not used as a feature")
    if not features:
        raise UserError(f"data.path={data_cfg.path}: no feature columns besides the target '{target}'")
    y_raw = df[target]
    if y_raw.isna().any():
        i = int(np.flatnonzero(y_raw.isna().to_numpy())[0])
        raise UserError(f"column '{target}' (the target): missing value at {_where(is_csv, i)}; drop or fill those rows")
    if _column_kind(y_raw, is_csv) == "numeric" and not pd.api.types.is_numeric_dtype(y_raw):
        y_raw = pd.Series(_numeric_column(y_raw, is_csv), name=y_raw.name)  # numbers stored as text
    task, why = infer_task(y_raw, data_cfg.task)
    classes = None if task == "regression" else sorted(_py(v) for v in y_raw.unique())
    train, val, test = split(len(df), y_raw if classes else None, data_cfg, seed)
    if classes:
        present = set(pd.unique(y_raw.iloc[train]))
        missing = [c for c in classes if c not in present]
        if missing:
            count = int((y_raw == missing[0]).sum())
            raise UserError(f"column '{target}' (the target): class {missing[0]!r} has {count} "
                            f"row(s) and none of them landed in the training split; add rows, or lower "
                            f"data.test_size / data.val_size")

    kinds = {c: "categorical" if c in data_cfg.categorical else _column_kind(df[c], is_csv) for c in features}
    # named from the distinct values only: turning a million rows into text takes a second
    categories = {c: sorted(set(_categories(pd.Series(df[c].dropna().unique())))) for c in features
                  if kinds[c] == "categorical"}
    prep: dict[str, Any] = {"target": str(target), "task": task, "classes": classes, "columns": list(map(str, features)),
                            "kinds": kinds, "categories": categories, "impute": {}, "scale_kind": data_cfg.scale}
    # Imputation values and scaling are fitted on the training rows only.
    if data_cfg.impute != "none":
        train_df = df.iloc[train]
        for col in (c for c in features if df[c].isna().any()):
            prep["impute"][col] = _impute_value(train_df[col], data_cfg.impute if kinds[col] == "numeric" else "most_frequent")
    numeric = [c for c in features if kinds[c] == "numeric"]
    values = dict(zip(numeric, _map(lambda c: _numeric_values(df, c, prep, is_csv), numeric, len(df))))  # checked once
    stats = _map(lambda v: _scale_of(v[train], data_cfg.scale), values.values(), len(df))
    prep.update(shift=[a for a, _ in stats], scale=[b for _, b in stats])
    prep["encoded"] = [n for c in features for n in ([c] if kinds[c] == "numeric" else [f"{c}={v}" for v in categories[c]])]
    if task == "regression":
        yv = _numeric_column(y_raw, is_csv)
        _check_finite(yv, target, is_csv)
        prep["target_shift"], prep["target_scale"] = float(yv[train].mean()), float(yv[train].std() or 1.0)
        prep["baseline"] = prep["target_shift"]
        y = ((yv - prep["target_shift"]) / prep["target_scale"]).astype(np.float32)
    else:
        y = encode_labels(y_raw, classes, target, is_csv)
        prep["baseline"] = int(np.bincount(y[train], minlength=len(classes)).argmax())
    return Prepared(encode(df, prep, is_csv, values), y, train, val, test, prep, why, notes)


def load_data(cfg: Config, config_dir: Path | None) -> Prepared:
    """The config's table read, checked against the config and prepared: what `fit` trains on."""
    table = read_table(cfg.data.path, config_dir)
    data = prepare(table, cfg.data, cfg.seed)
    data.prep.update(source=table.source, sha256=table.sha256)
    problems = task_problems(cfg, data.task, None if data.task == "regression" else len(data.prep["classes"]))
    if problems:
        raise UserError([f"{p} [data: {data.task}, {data.task_reason}]" for p in problems])
    for part, idx in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(idx) == 0:
            raise UserError(f"data: the {part} split is empty ({len(data.X)} rows); use more rows or other split sizes")
    return data


def _is_saved_index(s: pd.Series) -> bool:
    """An 'Unnamed: 0' column of 0..n-1: what DataFrame.to_csv writes unless index=False."""
    return (str(s.name).startswith("Unnamed:") and pd.api.types.is_integer_dtype(s)
            and np.array_equal(s.to_numpy(), np.arange(len(s))))


def unscale(prep: dict, y: Any) -> Any:
    """A standardized regression value (array or tensor) back in the target's own units."""
    return y * prep["target_scale"] + prep["target_shift"]


def split(n: int, y: pd.Series | None, data_cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test first (test_size of all rows), then validation (val_size of the rest); stratified for classes.

    Written with numpy rather than scikit-learn's train_test_split: importing scikit-learn takes a second,
    a third of a small run's whole time."""
    rng = np.random.default_rng(data_cfg.split_seed if data_cfg.split_seed is not None else seed)
    labels = None if y is None else pd.factorize(y.astype(str) if y.dtype == object else y)[0]
    rest, test = _holdout(np.arange(n), labels, data_cfg.test_size, rng)
    train, val = _holdout(rest, None if labels is None else labels[rest], data_cfg.val_size, rng)
    return np.sort(train), np.sort(val), np.sort(test)


def _holdout(idx: np.ndarray, labels: np.ndarray | None, size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): ceil(size * n) rows held out, each class in proportion (largest remainders)."""
    n_out = int(np.ceil(size * len(idx)))
    if labels is None:
        perm = rng.permutation(idx)
        return perm[n_out:], perm[:n_out]
    counts = np.bincount(labels)  # labels are codes 0..K-1
    classes = np.flatnonzero(counts)
    share = n_out * counts[classes] / len(idx)
    take = np.floor(share).astype(int)
    short = n_out - take.sum()
    order = np.lexsort((rng.random(len(classes)), -(share - take)))  # largest remainder first, ties at random
    take[order[:short]] += 1
    out = np.zeros(len(idx), dtype=bool)
    for c, k in zip(classes, take):
        out[rng.permutation(np.flatnonzero(labels == c))[:k]] = True
    return idx[~out], idx[out]


def _column_kind(s: pd.Series, is_csv: bool) -> str:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return "numeric"
    present = s.dropna()
    as_num = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    if len(present) and as_num.notna().all():
        return "numeric"  # numbers stored as text (a Parquet string column, say)
    if len(present) and as_num.notna().mean() >= 0.5:
        # Mostly numbers with a few words in between is a data error, never a category.
        bad = int(np.flatnonzero(as_num.isna().to_numpy())[0])
        i = s.index.get_loc(present.index[bad])
        raise UserError(f"column '{s.name}': {present.iloc[bad]!r} at {_where(is_csv, i)} is not a number, "
                        f"while {as_num.notna().mean():.0%} of the column is numeric; fix or remove that value")
    return "categorical"


def _numeric_column(s: pd.Series, is_csv: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    as_num = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    bad = as_num.isna() & s.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"column '{s.name}': {s.iloc[i]!r} at {_where(is_csv, i)} is not a number")
    return as_num.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_finite(v: np.ndarray, col: str, is_csv: bool) -> None:
    bad = np.isinf(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"column '{col}': infinite value {v[i]} at {_where(is_csv, i)}; fix or remove that row")


def _impute_value(s: pd.Series, how: str) -> Any:
    present = s.dropna()
    if present.empty:
        raise UserError(f"column '{s.name}': no values in the training split to impute from; drop it (data.drop)")
    if how == "mean":
        return float(present.astype(float).mean())
    if how == "median":
        return float(present.astype(float).median())
    return _py(present.mode().iloc[0])


def _numeric_values(df: pd.DataFrame, col: str, prep: dict, is_csv: bool) -> np.ndarray:
    """One numeric column as float64, imputed if the run imputes it, with no missing or infinite value."""
    s = df[col]
    if col in prep["impute"]:
        s = s.fillna(prep["impute"][col])
    v = _numeric_column(s, is_csv)
    if not np.isfinite(v).all():  # one pass over the column; where the bad value is, only when there is one
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        if np.isnan(v[i]):
            raise UserError(f"column '{col}': missing value at {_where(is_csv, i)}; fill it, drop the column "
                            f"(data.drop), or set data.impute: mean | median | most_frequent")
        _check_finite(v, col, is_csv)
    return v


def _scale_of(v: np.ndarray, kind: str) -> tuple[float, float]:
    """(shift, scale) of one column's training values; a constant column keeps scale 1."""
    if kind == "standard":
        shift, scale = v.mean(), v.std()
    elif kind == "minmax":
        shift, scale = v.min(), v.max() - v.min()
    else:
        shift, scale = 0.0, 1.0
    return float(shift), float(scale) if scale > 0 else 1.0


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
            columns.append(values[col] if values else _numeric_values(df, col, prep, is_csv))
            j += 1
        else:
            block = _one_hot(df[col], prep, is_csv)
            X[:, j:j + block.shape[1]] = block
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
            b = block[:, :stop - start]
            for i, v in enumerate(columns):
                b[i] = v[start:stop]
            b -= shift
            b /= scale
            X[start:stop, where] = b.T

    n, parts = len(df), THREADS if len(df) >= PARALLEL_ROWS else 1
    if columns:
        _map(fill, [range(n * i // parts, n * (i + 1) // parts, ROWS_PER_BLOCK) for i in range(parts)], n)
    return X


ROWS_PER_BLOCK = 8192
# numpy releases the GIL over a whole column, so on big tables the per-column work runs on every core.
THREADS = os.cpu_count() or 1
PARALLEL_ROWS = 100_000


def _map(fn: Callable, items: Iterable, n_rows: int) -> list:
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
    known = _categories(pd.Series(uniques)).map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    codes = np.where(idx >= 0, known[np.maximum(idx, 0)] if len(known) else -1, -1)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        if pd.isna(s.iloc[i]):
            raise UserError(f"column '{col}': missing value at {_where(is_csv, i)}; fill it, drop the column "
                            f"(data.drop), or set data.impute: most_frequent")
        raise UserError(f"column '{col}': value {s.iloc[i]!r} at {_where(is_csv, i)} was never seen in training; "
                        f"known values: {', '.join(cats[:20])}")
    out = np.zeros((len(s), len(cats)), dtype=np.float32)
    out[np.arange(len(s)), codes] = 1.0
    return out


def _categories(s: pd.Series) -> pd.Series:
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
        raise UserError(f"column '{target}' (the target): label {_py(y.iloc[i])!r} at {_where(is_csv, i)} was never "
                        f"seen in training; known labels: {', '.join(map(str, classes))}")
    return codes.astype(np.int64)


def encode_table(table: Table, prep: dict, shown: str) -> tuple[np.ndarray, np.ndarray]:
    """A table with the training columns and target, as (features, targets) through the stored preprocessing."""
    if prep["target"] not in table.frame.columns:
        raise UserError(f"{shown}: no target column '{prep['target']}' to evaluate against")
    return encode(table.frame, prep, table.is_csv), encode_target(table.frame[prep["target"]], prep, table.is_csv)


def load_encoded(prep: dict, rows: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training table again (or only `rows` of it), encoded with the stored preprocessing; refused if the
    file changed."""
    table = read_table(prep["source"])
    if table.sha256 != prep["sha256"]:
        raise UserError(f"{prep['source']} changed since the run was trained (sha256 differs), so its rows are not "
                        f"the same; evaluate on it with --data, or start a new run")
    if rows is not None:
        table = dataclasses.replace(table, frame=table.frame.iloc[rows].reset_index(drop=True))
    return encode_table(table, prep, prep["source"])


def encode_target(y: pd.Series, prep: dict, is_csv: bool) -> np.ndarray:
    target = prep["target"]
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise UserError(f"column '{target}' (the target): missing value at {_where(is_csv, i)}")
    if prep["task"] == "regression":
        v = _numeric_column(y, is_csv)
        _check_finite(v, target, is_csv)
        return ((v - prep["target_shift"]) / prep["target_scale"]).astype(np.float32)
    return encode_labels(y, prep["classes"], target, is_csv)
