"""Fit the preprocessing on the training rows: choose the target and the task, split, and fit imputation,
one-hot levels and scaling, as plain data (encoding.py applies it). load_data is what `fit` trains on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .checks import task_problems
from .config import Config
from .encoding import categories, check_finite, encode, encode_labels, map_rows, numeric_column, numeric_values, py
from .errors import UserError, did_you_mean, listed, quoted
from .splits import split
from .tables import Table, read_table, where

# Integer-valued numeric targets with at most this many distinct values are read as classes.
MAX_AUTO_CLASSES = 20


def infer_task(y: pd.Series, asked: str) -> tuple[str, str]:
    """(task, why). Non-numbers are classes; integer-valued numbers with few values are classes too."""
    values = y.dropna().unique()
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
        return asked, "set in the config"
    if not numeric or (integral and len(values) <= MAX_AUTO_CLASSES):
        task = "binary" if len(values) == 2 else "multiclass"
        kind = "integer" if numeric else "distinct"
        return task, f"{len(values)} {kind} values in '{y.name}'; set data.task to override"
    return "regression", f"{len(values)} distinct numbers in '{y.name}'; set data.task to override"


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
    target, features, notes = _columns(df, data_cfg)
    y_raw = _target_values(df[target], is_csv)
    task, why = infer_task(y_raw, data_cfg.task)
    classes = None if task == "regression" else sorted(py(v) for v in y_raw.unique())
    train, val, test = split(len(df), y_raw if classes else None, data_cfg, seed)
    if classes:
        _check_every_class_trains(y_raw, classes, train)
    prep = {"target": str(target), "task": task, "classes": classes}
    values = _fit_features(df, features, data_cfg, train, is_csv, prep)
    y = _fit_target(y_raw, prep, train, is_csv)
    return Prepared(encode(df, prep, is_csv, values), y, train, val, test, prep, why, notes)


def _columns(df: pd.DataFrame, data_cfg: Any) -> tuple[str, list[str], list[str]]:
    """(target, feature columns, notes): the columns the config names, checked against the table."""
    if len(df) < 3:
        raise UserError(
            f"data.path={data_cfg.path}: only {len(df)} row(s); the train, val and test splits need at "
            f"least one row each"
        )
    columns = list(map(str, df.columns))
    target = data_cfg.target or columns[-1]
    if target not in df.columns:
        raise UserError(
            f"data.target={target}: no such column{did_you_mean(target, columns)}; columns are: {listed(columns)}"
        )
    for key in ("drop", "categorical"):
        missing = [c for c in getattr(data_cfg, key) if c not in df.columns]
        if missing:
            raise UserError(f"data.{key}: no column(s) {', '.join(map(repr, missing))}; columns are: {listed(columns)}")
    notes = []
    features = [c for c in df.columns if c != target and c not in data_cfg.drop]
    for col in [c for c in features if _is_saved_index(df[c])]:
        features.remove(col)
        notes.append(f"column '{col}' holds 0, 1, 2, ... (an index saved by pandas) and is not used as a feature")
    if not features:
        raise UserError(f"data.path={data_cfg.path}: no feature columns besides the target {quoted(target)}")
    return target, features, notes


def _target_values(y_raw: pd.Series, is_csv: bool) -> pd.Series:
    if y_raw.isna().any():
        i = int(np.flatnonzero(y_raw.isna().to_numpy())[0])
        raise UserError(
            f"column '{y_raw.name}' (the target): missing value at {where(is_csv, i)}; drop or fill those rows"
        )
    if _column_kind(y_raw, is_csv) == "numeric" and not pd.api.types.is_numeric_dtype(y_raw):
        return pd.Series(numeric_column(y_raw, is_csv), name=y_raw.name)  # numbers stored as text
    return y_raw


def _check_every_class_trains(y_raw: pd.Series, classes: list, train: np.ndarray) -> None:
    present = set(pd.unique(y_raw.iloc[train]))
    missing = [c for c in classes if c not in present]
    if missing:
        count = int((y_raw == missing[0]).sum())
        raise UserError(
            f"column {quoted(y_raw.name)} (the target): class {quoted(missing[0])} has {count} row(s) and none of them "
            f"landed in the training split; add rows, or lower data.test_size / data.val_size"
        )


def _fit_features(
    df: pd.DataFrame, features: list[str], data_cfg: Any, train: np.ndarray, is_csv: bool, prep: dict
) -> dict[str, np.ndarray]:
    """Fill prep with each column's kind, levels, imputation and scaling (fitted on the training rows only);
    return the numeric columns as read and checked, so encode does not read them again."""
    kinds = {c: "categorical" if c in data_cfg.categorical else _column_kind(df[c], is_csv) for c in features}
    # named from the distinct values only: turning a million rows into text takes a second
    levels = {
        c: sorted(set(categories(pd.Series(df[c].dropna().unique())))) for c in features if kinds[c] == "categorical"
    }
    prep.update(columns=list(map(str, features)), kinds=kinds, categories=levels, impute={}, scale_kind=data_cfg.scale)
    if data_cfg.impute != "none":
        train_df = df.iloc[train]
        for col in (c for c in features if df[c].isna().any()):
            how = data_cfg.impute if kinds[col] == "numeric" else "most_frequent"
            prep["impute"][col] = _impute_value(train_df[col], how)
    numeric = [c for c in features if kinds[c] == "numeric"]
    values = dict(zip(numeric, map_rows(lambda c: numeric_values(df, c, prep, is_csv), numeric, len(df))))
    stats = map_rows(lambda v: _scale_of(v[train], data_cfg.scale), values.values(), len(df))
    prep.update(shift=[a for a, _ in stats], scale=[b for _, b in stats])
    prep["encoded"] = [n for c in features for n in ([c] if kinds[c] == "numeric" else [f"{c}={v}" for v in levels[c]])]
    return values


def _fit_target(y_raw: pd.Series, prep: dict, train: np.ndarray, is_csv: bool) -> np.ndarray:
    """Class indices, or the regression target standardized on the training rows; prep gets the baseline."""
    target = prep["target"]
    if prep["task"] != "regression":
        y = encode_labels(y_raw, prep["classes"], target, is_csv)
        prep["baseline"] = int(np.bincount(y[train], minlength=len(prep["classes"])).argmax())
        return y
    yv = numeric_column(y_raw, is_csv)
    check_finite(yv, target, is_csv)
    prep["target_shift"], prep["target_scale"] = float(yv[train].mean()), float(yv[train].std() or 1.0)
    prep["baseline"] = prep["target_shift"]
    return ((yv - prep["target_shift"]) / prep["target_scale"]).astype(np.float32)


def load_data(cfg: Config, config_dir: Path | None) -> Prepared:
    """The config's table read, checked against the config and prepared: what `fit` trains on."""
    table = read_table(cfg.data.path, config_dir)
    data = prepare(table, cfg.data, cfg.seed)
    data.prep.update(source=table.source, sha256=table.sha256)
    problems = task_problems(cfg, data.task, None if data.task == "regression" else len(data.prep["classes"]))
    if problems:
        facts = f" [data: {data.task}, {data.task_reason}]"
        raise UserError([dataclasses.replace(p, message=p.message + facts) for p in problems])
    for part, idx in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(idx) == 0:
            raise UserError(f"data: the {part} split is empty ({len(data.X)} rows); use more rows or other split sizes")
    return data


def _is_saved_index(s: pd.Series) -> bool:
    """An 'Unnamed: 0' column of 0..n-1: what DataFrame.to_csv writes unless index=False."""
    return (
        str(s.name).startswith("Unnamed:")
        and pd.api.types.is_integer_dtype(s)
        and np.array_equal(s.to_numpy(), np.arange(len(s)))
    )


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
        raise UserError(
            f"column {quoted(s.name)}: {quoted(present.iloc[bad])} at {where(is_csv, i)} is not a number, "
            f"while {as_num.notna().mean():.0%} of the column is numeric; fix or remove that value"
        )
    return "categorical"


def _impute_value(s: pd.Series, how: str) -> Any:
    present = s.dropna()
    if present.empty:
        raise UserError(f"column '{s.name}': no values in the training split to impute from; drop it (data.drop)")
    if how == "mean":
        return float(present.astype(float).mean())
    if how == "median":
        return float(present.astype(float).median())
    return py(present.mode().iloc[0])


def _scale_of(v: np.ndarray, kind: str) -> tuple[float, float]:
    """(shift, scale) of one column's training values; a constant column keeps scale 1."""
    if kind == "standard":
        shift, scale = v.mean(), v.std()
    elif kind == "minmax":
        shift, scale = v.min(), v.max() - v.min()
    else:
        shift, scale = 0.0, 1.0
    return float(shift), float(scale) if scale > 0 else 1.0
