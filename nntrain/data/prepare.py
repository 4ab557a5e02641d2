"""What `fit` trains on (load_data): the target and the task chosen, the rows split, the preprocessing fitted
on the training rows (fitting.py) and applied to every row (encoding.py), checked against the config. Every
choice is said in a note.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntrain.config.checks import task_problems
from nntrain.config.schema import Config
from nntrain.data import durations
from nntrain.data.columns import Report, labels_by_case, numeric_column, py, without_outer_spaces
from nntrain.data.dates import is_date_column
from nntrain.data.durations import EXAMPLE
from nntrain.data.encoding import encode
from nntrain.data.fitting import column_kind, fit_features, fit_target, fit_weights
from nntrain.data.frames import mixed_as_text
from nntrain.data.splits import split
from nntrain.data.tables import READ_KEYS, Table, check_columns, read_tables, where
from nntrain.data.text_numbers import marks_among_labels, zeros_kept
from nntrain.data.workbooks import sheet_hint
from nntrain.errors import UserError, did_you_mean, listed, quoted
from nntrain.resources import available_bytes, gib

# Integer-valued numeric targets with at most this many distinct values are read as classes.
MAX_AUTO_CLASSES = 20


def infer_task(y: pd.Series, asked: str) -> tuple[str, str]:
    """(task, why). Non-numbers are classes; integer-valued numbers with few values are classes too."""
    values = y.dropna().unique()
    if len(values) == 0:  # a bag's check of the target comes before prepare's own
        raise UserError(f"column {quoted(y.name)} (the target): every value is missing")
    if len(values) < 2:
        raise UserError(
            f"column {quoted(y.name)} (the target): every row has the same value {quoted(py(values[0]))}; there is "
            f"nothing to learn"
        )
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    integral = numeric and np.all(np.mod(values.astype(float), 1) == 0)
    if asked != "auto":
        if asked == "regression" and not numeric:
            raise UserError(
                f"data.task=regression: target {quoted(y.name)} holds non-numbers such as {quoted(values[0])}"
            )
        if asked == "binary" and len(values) != 2:
            raise UserError(f"data.task=binary: target '{y.name}' has {len(values)} distinct values, binary needs 2")
        if asked == "multiclass" and numeric and len(values) > MAX_AUTO_CLASSES and len(values) > len(y) / 2:
            raise UserError(
                f"data.task=multiclass: target {quoted(y.name)} holds {len(values):,} distinct numbers in "
                f"{len(y):,} rows, a class for every other row or more: a quantity to predict (data.task=regression)"
                f", or make it classes first (bins)"
            )
        return asked, "set in the config"
    if not numeric and len(values) > MAX_AUTO_CLASSES and len(values) > len(y) / 2:
        what = f"{len(values):,} distinct {'dates' if is_date_column(y) else 'values'}"
        raise UserError(
            f"column {quoted(y.name)} (the target) holds {what} in {len(y):,} rows, a class for every other row or "
            f"more: no class has the rows to learn it from. An ID, a name or a date is no target; name the column to "
            f"predict with --target (data.target)"
        )
    if not numeric or (integral and len(values) <= MAX_AUTO_CLASSES):
        task = "binary" if len(values) == 2 else "multiclass"
        kind = "integer" if numeric else "distinct"
        return task, f"{len(values)} {kind} values in '{y.name}'; set data.task to override"
    return "regression", f"{len(values)} distinct numbers in '{y.name}'; set data.task to override"


@dataclass
class Prepared:
    X: np.ndarray  # float32, every row of the table, encoded and scaled
    y: np.ndarray  # int64 class indices, or float32 standardized regression target (0 where it is missing)
    train: np.ndarray  # row indices (rows without a target are in none of the three)
    val: np.ndarray
    test: np.ndarray
    prep: dict  # the fitted preprocessing, plain data
    task_reason: str
    notes: list[str] = field(default_factory=list)
    loss_weights: np.ndarray | None = None  # per row: class weight x the weight column; None: all equal
    weights: np.ndarray | None = None  # per row: the weight column (data.weight), which the metrics use too

    @property
    def task(self) -> str:
        return self.prep["task"]

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.prep["classes"])


def prepare(table: Table, data_cfg: Any, seed: int, given: dict | None = None) -> Prepared:
    """Choose target and task, split, fit the features' handling and the weights on the training rows.
    `given`: {"val": rows, "test": rows} of the table that came from data.val_path / data.test_path."""
    df, header_line = table.frame, table.header_line
    target, features, notes = _columns(table, data_cfg)
    y_col, timed = df[target], durations.is_duration_column(df[target]) and not is_date_column(df[target])
    if timed:
        y_col = pd.Series(durations.seconds(y_col, header_line), name=target)
        notes.append(f"column {quoted(target)} (the target) read as durations: predictions in seconds ({EXAMPLE})")
    y_raw, rows = _target_values(y_col, header_line, data_cfg, notes)
    task, why = infer_task(y_raw.iloc[rows], data_cfg.task)
    classes = None if task == "regression" else sorted(_label(v) for v in y_raw.iloc[rows].unique())
    labels = pd.factorize(y_raw)[0] if classes else None
    train, val, test, how = split(df, rows, labels, data_cfg, seed, given or {})
    if not how.startswith("at random"):  # the default says nothing new
        notes.append(f"split {how}: train {len(train):,}, val {len(val):,}, test {len(test):,} rows")
    if classes:
        _check_every_class_trains(y_raw, classes, train)
    prep = {"target": str(target), "task": task, "classes": classes, "missing_target": data_cfg.missing_target}
    prep["target_transform"] = data_cfg.target_transform
    if timed:
        prep["target_durations"] = True  # eval reads its values as seconds too
    prep["split"] = how
    sources = fit_features(df, features, data_cfg, train, header_line, prep, notes, y_raw.iloc[train])
    y = fit_target(y_raw, rows, prep, train, header_line, notes)
    per_row, weights = fit_weights(df, y, data_cfg, (train, val, test), header_line, prep, notes)
    _check_matrix_fits(prep, len(df))
    report = Report()
    X = encode(df, prep, header_line, sources, report)
    notes += [f"{note} (rows outside the training split)" for note in report.notes]
    notes += _none_varies(X, train, prep)
    return Prepared(X, y, train, val, test, prep, why, notes, per_row, weights)


def _none_varies(X: np.ndarray, train: np.ndarray, prep: dict) -> list[str]:
    """A warning where no input column varies over the training rows (each the same in every row, the others left
    out): the model then learns nothing but the target's mean, or its classes' shares, and says it only by its
    metrics. The first varying column ends the look: one column's pass on a usual table."""
    if not len(train) or any(np.any(X[train, j] != X[train[0], j]) for j in range(X.shape[1])):
        return []
    learns = "mean" if prep["task"] == "regression" else "classes' shares (its prior)"
    how = f"{listed(prep['columns'], quote=True)} the same in every one" if prep["columns"] else "each one left out"
    return [
        f"warning: no input column varies over the {len(train):,} training rows ({how}): the model can learn only "
        f"the target's {learns}, whatever the row"
    ]


def _label(v: Any) -> Any:
    """A class label as plain data: 1.0 is 1 (a column of integers with a missing value reads as floats)."""
    v = py(v)
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _columns(table: Table, data_cfg: Any) -> tuple[str, list[str], list[str]]:
    """(target, feature columns, notes): the columns the config names, checked against the table (a target that
    another sheet of its workbook holds is named so)."""
    df = table.frame
    columns = list(map(str, df.columns))
    target = spelled(data_cfg.target, columns) if data_cfg.target else columns[-1]
    if target not in df.columns:
        where, elsewhere = sheet_hint(target, table.sheet, table.sheets)
        raise UserError(
            f"data.target={target}: no such column{where}{did_you_mean(target, columns)}; columns are: "
            f"{listed(columns)}{elsewhere}"
        )
    if len(df) < 3:
        raise UserError(
            f"data.path={data_cfg.path}: only {len(df)} row(s); the train, val and test splits need at "
            f"least one row each"
        )
    for key in NAMING_KEYS:
        named = getattr(data_cfg, key)
        missing = [c for c in ([named] if isinstance(named, str) else named or []) if c not in df.columns]
        if missing:
            raise UserError(f"data.{key}: no column(s) {', '.join(map(repr, missing))}; columns are: {listed(columns)}")
    _check_roles(data_cfg, target)
    notes = [] if data_cfg.target else [f"target: {quoted(target)}, the last column (data.target was not given)"]
    apart = {data_cfg.weight: "the row weights", data_cfg.split_column: "the split", data_cfg.group: "the groups"}
    features = [c for c in df.columns if c != target and c not in data_cfg.drop and c not in apart]
    notes += [f"column {quoted(c)} holds {what} and is not used as a feature" for c, what in apart.items() if c]
    for col in [c for c in features if _is_saved_index(df[c])]:
        features.remove(col)
        notes.append(
            f"column '{col}' holds the row numbers (an index saved with the table) and is not used as a feature"
        )
    notes += [
        f"warning: column {quoted(c)} is named as an ID and holds a different whole number in every row: it can "
        f"carry nothing to new rows (unless its numbers follow time): leave it out with data.drop: [{c}]"
        for c in features
        if _is_named_id(df[c])
    ]
    if not features:
        raise UserError(f"data.path={data_cfg.path}: no feature columns besides the target {quoted(target)}")
    roles = [c for c in (data_cfg.weight, data_cfg.split_column, data_cfg.group) if c]
    check_columns(df[[*features, target, *roles]], f"data.path={data_cfg.path}")  # a Parquet list column
    return target, features, notes


def spelled(name: str, columns: list[str]) -> str:
    """The column `name` means: itself, else the one column whose name reads the same with its line breaks and runs
    of spaces as one space (a sheet's header cell typed with Alt+Enter, 'Price\n(EUR)', given as 'Price (EUR)')."""
    same = [c for c in columns if " ".join(c.split()) == " ".join(name.split())]
    return same[0] if name not in columns and len(same) == 1 else name


# the data keys that name columns: each named column must be in the table, and none of them the target
NAMING_KEYS = (
    "drop",
    "categorical",
    "numeric",
    "dates",
    "date_order",
    "weight",
    "split_column",
    "group",
    "time_column",
)


def _check_roles(data_cfg: Any, target: str) -> None:
    """The target has no other role (a weight column equal to it leaks the label into the loss); weight,
    split_column, group and time_column name different columns."""
    said = "data.target" if data_cfg.target else "data.target's default, the last column"
    for key in NAMING_KEYS:
        named = getattr(data_cfg, key)
        if target in ([named] if isinstance(named, str) else named or []):
            raise UserError(f"data.{key}={target}: {quoted(target)} is the target ({said}); a column has one role")
    both = [c for c in data_cfg.categorical if c in data_cfg.numeric]
    if both:
        raise UserError(f"data.categorical and data.numeric both name {quoted(both[0])}; a column has one reading")
    roles = [(k, getattr(data_cfg, k)) for k in ("weight", "split_column", "group", "time_column")]
    for i, (key, col) in enumerate(roles):
        for other, col2 in roles[i + 1 :]:
            if col is not None and col == col2:
                raise UserError(f"data.{key} and data.{other} both name column {quoted(col)}; a column has one role")


def _target_values(y_raw: pd.Series, header_line: int, data_cfg: Any, notes: list[str]) -> tuple[pd.Series, np.ndarray]:
    """(the target's values, the rows that have one); rows without one are dropped with a note, or refused. Labels
    written with leading zeros (01 beside 1) stay text, each a class, unless data.task is regression."""
    y_raw = without_outer_spaces(y_raw)
    marked = marks_among_labels(y_raw)  # a UCI table's "?" beside yes and no: no class to learn
    if marked.any():
        marks = listed(sorted(y_raw[marked].unique()), quote=True)
        notes.append(f"column {quoted(y_raw.name)} (the target): {marks} read as missing (a mark, not a class)")
        y_raw = y_raw.mask(marked)
    y_raw = labels_by_case(y_raw, notes)
    absent = y_raw.isna().to_numpy()
    if absent.any() and data_cfg.missing_target == "error":
        i = int(np.flatnonzero(absent)[0])
        raise UserError(
            f"column '{y_raw.name}' (the target): missing value at {where(header_line, i)}; drop or fill those rows, "
            f"or set data.missing_target: drop"
        )
    if absent.all():
        raise UserError(f"column {quoted(y_raw.name)} (the target): every value is missing")
    if absent.any():
        notes.append(
            f"{int(absent.sum()):,} row(s) without a target {quoted(y_raw.name)} left out of every split "
            f"(data.missing_target: drop); split.json counts rows as in the file"
        )
    kind = column_kind(y_raw.dropna(), header_line)
    if kind == "codes" and data_cfg.task != "regression":
        notes.append(zeros_kept(y_raw, "each a class", " (the target)"))
    elif kind in ("numeric", "codes") and not pd.api.types.is_numeric_dtype(y_raw):
        y_raw = pd.Series(numeric_column(y_raw, header_line), name=y_raw.name)  # numbers stored as text
    return _labels_as_text(y_raw, notes), np.flatnonzero(~absent)


def _labels_as_text(y_raw: pd.Series, notes: list[str]) -> pd.Series:
    """A target of values of several kinds (false beside "yes" in JSON Lines, a Parquet folder's bool file beside
    its text ones) as text, as a CSV file holds it and as a feature column of them is read (mixed_as_text):
    False is the label 'False', which new rows' False, or 'False', then is too (encoding.encode_labels)."""
    frame = y_raw.to_frame()
    text = mixed_as_text(frame)
    if text is frame:  # one kind of value (or numbers, int beside float): as it is
        return y_raw
    values = y_raw.dropna().unique()
    kinds = sorted({type(v).__name__ for v in values})
    example = next((v for v in values if not isinstance(v, str)), values[0])
    notes.append(
        f"column {quoted(y_raw.name)} (the target) holds values of {len(kinds)} kinds ({', '.join(kinds)}): its "
        f"labels read as text ({quoted(py(example))} is the label {quoted(str(example))})"
    )
    return text.iloc[:, 0]


def _check_every_class_trains(y_raw: pd.Series, classes: list, train: np.ndarray) -> None:
    present = set(pd.unique(y_raw.iloc[train]))
    missing = [c for c in classes if c not in present]
    if missing:
        count = int((y_raw == missing[0]).sum())
        raise UserError(
            f"column {quoted(y_raw.name)} (the target): class {quoted(missing[0])} has {count} row(s) and none of them "
            f"landed in the training split; add rows, or lower data.test_size / data.val_size"
        )


# fit's peak, in float32 matrices of the encoded table: the matrix, its splits and tensors (4.1x anonymous
# memory measured, docs/speed.md "Loading and memory")
PEAK_MATRICES = 4


def _check_matrix_fits(prep: dict, rows: int) -> None:
    """Refuse, before it is allocated, a float32 matrix whose fit would not fit in the memory available."""
    need, have = rows * len(prep["encoded"]) * 4, available_bytes()
    if have is None or PEAK_MATRICES * need <= have:
        return
    widths = {c: len(prep["categories"][c]) for c in prep["columns"] if prep["kinds"][c] == "categorical"}
    widest = sorted(widths, key=widths.get, reverse=True)[:5]
    raise UserError(
        f"data: the encoded table would take {gib(need)} ({rows:,} rows x {len(prep['encoded']):,} columns of "
        f"float32) and fit about {PEAK_MATRICES}x that, more than the {gib(have)} available; widest one-hot column(s): "
        f"{', '.join(f'{quoted(c)} ({widths[c]:,})' for c in widest) or 'none'}; lower data.one_hot_max, or drop "
        f"columns (data.drop)"
    )


def load_data(cfg: Config, config_dir: Path | None) -> Prepared:
    """The config's table (and its own val / test files) read, checked against the config and prepared: what
    `fit` trains on."""
    return prepared(cfg, read_tables(cfg.data, config_dir))


def prepared(cfg: Config, tables: tuple, rows: dict | None = None) -> Prepared:
    """read_tables' result prepared and checked against the config; `rows`: {"val": rows, "test": rows} fixed
    by the caller (a cross-validation fold, whose table is read once for all folds)."""
    table, given, files = tables
    data = stamped(prepare(table, cfg.data, cfg.seed, {**given, **(rows or {})}), cfg, tables)
    check_against(cfg, data)
    return data


def stamped(data: Prepared, cfg: Config, tables: tuple) -> Prepared:
    """`data` with what reading its files found first among its notes, and its preprocessing naming the files
    (source, sha256, a folder's or glob's Parquet files, the val / test files) and how they are read (data.sep,
    data.decimal, data.thousands, and what the file's commas were)."""
    table, _, files = tables
    data.notes[:0] = table.notes
    data.prep.update(source=table.source, sha256=table.sha256, files=files, notes=data.notes)
    if table.parts:  # a folder's or glob's Parquet files, each by its absolute path and stamp (data/reread.py)
        data.prep["parts"] = table.parts
    read = {k: getattr(cfg.data, k) for k in READ_KEYS if getattr(cfg.data, k) is not None}
    if table.commas:  # a new file whose commas could be either (1,299) reads them so
        read["commas"] = table.commas
    if read:  # how the files are read again (eval, resume) and how predict reads new ones
        data.prep["read"] = read
    if table.sheet is not None:  # the sheet read: predict and eval read the sheet of its name in a new workbook
        data.prep["sheet"] = table.sheet
    return data


def check_task(cfg: Config, data: Prepared) -> None:
    """The loss, output, class weights and monitor against the task and classes the data shows (a streamed run's
    sample's too)."""
    problems = task_problems(cfg, data.task, None if data.task == "regression" else len(data.prep["classes"]))
    if problems:
        facts = f" [data: {data.task}, {data.task_reason}]"
        raise UserError([dataclasses.replace(p, message=p.message + facts) for p in problems])


def check_against(cfg: Config, data: Prepared) -> None:
    """The config against what the data is (bce on four classes), and the three splits not empty: for data
    prepared now or read from the cache."""
    check_task(cfg, data)
    no_test = cfg.data.test_size == 0 and not (cfg.data.test_path or cfg.data.split_column)
    for part, idx in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(idx) == 0 and not (part == "test" and no_test):
            raise UserError(f"data: the {part} split is empty ({len(data.X)} rows); use more rows or other split sizes")


ID_NAME = re.compile(r"(?i:id)|.*(?i:[_\s.-]id)|.*[a-z0-9](ID|Id)")  # id, user_id, CustomerID; not paid, valid


def _is_named_id(s: pd.Series) -> bool:
    """A column named as an ID (id, user_id, CustomerID) holding a distinct whole number in each of 20 or more rows."""
    return bool(ID_NAME.fullmatch(str(s.name))) and pd.api.types.is_integer_dtype(s) and len(s) >= 20 and s.is_unique


def _is_saved_index(s: pd.Series) -> bool:
    """An 'Unnamed: 0' column, what DataFrame.to_csv writes unless index=False, or R's row names ('rownames' or
    an empty header): distinct whole numbers, in order or not (a sample or a shuffle of a table keeps its row
    numbers, which then follow whatever the table was sorted by: on diamonds, the price)."""
    named = str(s.name).startswith("Unnamed:") or str(s.name) == "rownames"
    return named and pd.api.types.is_integer_dtype(s) and s.is_unique
