"""Fit each column's handling on the training rows, as plain data: its kind (number, date, one-hot or
embedded string), levels, date parts, imputation and scaling; the target's scaling and the row and class
weights. prepare.py decides the target, the task and the split first; encoding.py applies what is fitted here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nntrain.data import dates, durations, nominal, quantiles
from nntrain.data.columns import (
    MISSING,
    Report,
    categories,
    check_finite,
    distinct,
    flag_note,
    is_flag_column,
    levels_by_case,
    map_rows,
    numeric_column,
    numeric_names,
    py,
    raw_sources,
    source_names,
)
from nntrain.data.encoding import encode_labels, loss_weights, row_weights
from nntrain.data.tables import where
from nntrain.data.text_numbers import zero_led, zeros_kept
from nntrain.errors import UserError, listed, quoted

# A string column with at least this share of distinct values among its training rows reads as an ID.
ID_LIKE = 0.9

EMBEDDING_MAX = 32  # the widest embedding: fastai's rule min(600, 1.6 * levels ** 0.56), capped for a small MLP


def fit_features(
    df: pd.DataFrame,
    features: list[str],
    data_cfg: Any,
    train: np.ndarray,
    header_line: int,
    prep: dict,
    notes: list,
    target: pd.Series | None = None,
) -> dict[str, np.ndarray]:
    """Fill prep with each column's kind, levels, date parts, imputation and scaling (fitted on the training
    rows only); return the numeric sources as read, so encode does not read them again. `target`: the training
    rows' target, for the test of whole numbers that name things (nominal.py)."""
    if data_cfg.impute == "auto":
        empty = [c for c in features if df[c].hasnans and df[c].isna().to_numpy()[train].all()]
        features = [c for c in features if c not in empty]
        if empty:
            notes.append(f"column(s) {listed(empty, quote=True)} have no value in the training rows and are left out")
    kinds = {c: _kind(df[c], data_cfg, header_line, notes) for c in features}
    for col in [c for c in features if kinds[c] == "numeric" and c not in data_cfg.numeric and target is not None]:
        said = nominal.reads_as_levels(df[col], train, target, prep["task"], data_cfg.one_hot_max)
        if said:
            kinds[col] = "categorical"
            notes.append(said)
    prep.update(columns=list(map(str, features)), kinds=kinds, categories={}, rare={}, embedding={}, impute={})
    prep.update(indicators=[], dates={}, scale_kind=data_cfg.scale)
    for kind, key in (("duration", "durations"), ("flag", "flags")):  # numbers: seconds, 1/0 (columns.raw_sources)
        read = [c for c in features if kinds[c] == kind]
        kinds.update(dict.fromkeys(read, "numeric"))  # read so in fit and predict alike
        prep.update({key: list(map(str, read))} if read else {})
    for col in (c for c in features if kinds[c] == "categorical"):
        if data_cfg.impute == "auto":
            prep["impute"][col] = MISSING
        elif data_cfg.impute != "none" and df[col].isna().any():
            prep["impute"][col] = _impute_value(df[col].iloc[train], "most_frequent")
        _fit_levels(df[col], data_cfg, train, prep, notes)
    levels = [c for c in features if prep["impute"].get(c) == MISSING and df[c].iloc[train].isna().any()]
    if levels:
        level = quoted(MISSING)
        notes.append(f"data.impute: auto: missing strings are the level {level} in {listed(levels, quote=True)}")
    for col in (c for c in features if kinds[c] == "date"):
        _fit_dates(df[col], data_cfg.date_order.get(col), train, prep, notes)
    sources = raw_sources(df, prep, header_line, Report())
    _fit_imputation(sources, data_cfg.impute, train, prep, notes)
    names = numeric_names(prep)
    fitted = map_rows(lambda n: _scaling(_training_part(sources[n], n, prep, train), data_cfg.scale), names, len(df))
    stats = [s for s, _ in fitted]
    prep.update(shift=[a for a, _, _ in stats], scale=[b for _, b, _ in stats], encoded=distinct(_encoded_names(prep)))
    if data_cfg.scale == "quantile":
        prep["quantiles"] = {n: k for n, (_, k) in zip(names, fitted)}
    if data_cfg.impute == "auto":  # a column complete in training: the training mean, should a value be missing later
        prep["impute"].update({n: mean for n, (_, _, mean) in zip(names, stats) if n not in prep["impute"]})
    return sources


def _kind(s: pd.Series, data_cfg: Any, header_line: int, notes: list) -> str:
    if s.name in data_cfg.categorical:
        return "categorical"
    if s.name in data_cfg.dates or s.name in data_cfg.date_order or dates.is_date_column(s):
        return "date"
    if durations.is_duration_column(s):
        notes.append(f"column {quoted(s.name)} read as durations, in seconds ({durations.EXAMPLE})")
        return "duration"
    kind = column_kind(s, header_line)
    if (kind != "numeric" or pd.api.types.is_bool_dtype(s)) and is_flag_column(s):
        notes.extend(flag_note(s))
        return "flag"
    if kind == "codes" and s.name not in data_cfg.numeric:
        notes.append(zeros_kept(s, f"read as categories (data.numeric: [{s.name}] reads numbers)"))
        return "categorical"
    if kind == "mixed":
        notes.append(f"column {quoted(s.name)} holds numbers and text: read as categories")
        return "categorical"
    return "numeric" if kind == "codes" else kind


# The rare levels are kept only to tell "rare in training" from "never seen" in eval's and predict's notes: up to
# RARE_KEPT of them per column; above, their count and a few examples (the notes then say "rare or never seen").
RARE_KEPT = 1_000
RARE_EXAMPLES = 5


def _fit_levels(s: pd.Series, data_cfg: Any, train: np.ndarray, prep: dict, notes: list) -> None:
    """A string column's levels from its training rows: one-hot up to data.one_hot_max of them, else an
    embedding whose levels rarer than data.min_level_count share one row with unseen levels."""
    col, part = str(s.name), s.iloc[train]
    counts = part.value_counts()
    counts.index = categories(pd.Series(counts.index)).to_numpy()
    counts = levels_by_case(counts.groupby(level=0).sum(), col, notes)  # 3 and 3.0 are one level; Red and red too
    fill = prep["impute"].get(col)
    if fill is not None and part.isna().any():
        name = categories(pd.Series([fill])).iloc[0]
        counts[name] = counts.get(name, 0) + int(part.isna().sum())
    present = int(part.notna().sum())  # one-hot (a small table's names) or embedded alike
    if present >= 20 and part.nunique() >= ID_LIKE * present:
        notes.append(
            f"warning: column {quoted(col)} looks like an ID ({part.nunique():,} distinct values in {present:,} "
            f"training rows); it can carry nothing to new rows: leave it out with data.drop: [{col}]"
        )
    if len(counts) <= data_cfg.one_hot_max:
        prep["categories"][col] = sorted(counts.index)
        return
    kept = counts[counts >= data_cfg.min_level_count]
    prep["kinds"][col] = "embedded"
    prep["categories"][col] = sorted(kept.index)
    levels = sorted(counts.index[counts < data_cfg.min_level_count])
    rare = len(levels)
    prep["rare"][col] = levels if rare <= RARE_KEPT else levels[:RARE_EXAMPLES]
    if rare > RARE_KEPT:  # an ID-like column: every checkpoint would carry every ID for the sake of a message
        prep.setdefault("rare_count", {})[col] = rare
    dim = prep["embedding"][col] = int(min(EMBEDDING_MAX, round(1.6 * (len(kept) + 1) ** 0.56)))
    pooled = (
        f"; {rare:,} level(s) with fewer than {data_cfg.min_level_count} rows (data.min_level_count) share its "
        f"unknown row"
        if rare
        else ""
    )
    notes.append(
        f"column {quoted(col)}: {len(counts):,} levels in training, more than data.one_hot_max "
        f"({data_cfg.one_hot_max}): learned through an embedding of size {dim}{pooled}"
    )


def _fit_dates(s: pd.Series, said: str | None, train: np.ndarray, prep: dict, notes: list) -> None:
    """A date column's order (data.date_order's, else the one its values show), origin (its earliest training
    value) and the parts that vary in training."""
    col = str(s.name)
    order, open_because = dates.column_order(s, said)
    order = order or "iso"  # named in data.dates, written some other way: each value as it reads best
    secs = dates.seconds(s, order, local=True)  # parts of the wall clock: a day's hours as the table writes them
    if np.isnan(secs[train]).all():
        example = s.dropna().iloc[0] if s.notna().any() else None
        raise UserError(
            f"column {quoted(col)}: no date in the training rows (such as {quoted(example)}); "
            f"name only date columns in data.dates"
        )
    origin = float(np.nanmin(secs[train]))
    parts = dates.parts(secs[train], origin)
    # constant parts left out (max > min: the std of a constant sine need not come out 0)
    kept = [p for p in dates.PARTS if np.nanmax(parts[p]) > np.nanmin(parts[p])]
    if order == "time":  # days since the earliest time of day: the hour again
        kept = [p for p in kept if p != "days"]
    prep["dates"][col] = {"origin": origin, "parts": kept or ["days"], "order": order, "clock": "local"}
    shown = ", ".join(prep["dates"][col]["parts"])
    start = dates.shown(origin)
    said = f"times of day: {shown}" if order == "time" else f"dates: {shown} (days since {start})"
    notes.append(f"column {quoted(col)} read as {said}")
    notes.extend(dates.fit_notes(s, order, open_because))
    bad = dates.unreadable(s, secs)
    if bad.any():
        notes.append(f"column {quoted(col)}: {int(bad.sum()):,} value(s) that are not dates read as missing")


def _fit_imputation(sources: dict[str, np.ndarray], how: str, train: np.ndarray, prep: dict, notes: list) -> None:
    """auto: a numeric source with missing training values gets its training median (and, per column, a "was
    missing" column; the others get their training mean once it is computed with the scaling); mean | median |
    most_frequent: columns with a missing value get that fill."""
    if how == "none":
        return
    missing = {n for n, v in sources.items() if _has_nan(v)}  # whole columns first: no copy
    gaps = [n for n in numeric_names(prep) if n in missing]
    if how == "auto":
        gaps = [n for n in gaps if np.isnan(sources[n][train]).any()]
        fills = map_rows(lambda n: _training_median(sources[n], train, n), gaps, len(train))
    else:
        fills = [_impute_value(pd.Series(sources[n][train], name=n), how) for n in gaps]
    prep["impute"].update(zip(gaps, fills))
    if how == "auto":
        prep["indicators"] = [c for c in prep["columns"] if c in missing and np.isnan(sources[c][train]).any()]
        if prep["indicators"]:
            notes.append(
                f"data.impute: auto: missing numbers get the training median and a 0/1 'was missing' column in "
                f"{listed(prep['indicators'], quote=True)}"
            )


def _has_nan(v: np.ndarray) -> bool:
    """A NaN makes the sum NaN: one pass with no temporary array for the usual column without one."""
    return bool(np.isnan(v.sum()) and np.isnan(v).any())


def _training_part(v: np.ndarray, name: str, prep: dict, train: np.ndarray) -> np.ndarray:
    """A numeric source's training values, filled where the run fills them. A value still missing or infinite
    makes the stats NaN, and encode, which runs next, names its row."""
    part = v[train]
    fill = prep["impute"].get(name)
    return part if fill is None or not np.isnan(part).any() else np.where(np.isnan(part), fill, part)


def _training_median(v: np.ndarray, train: np.ndarray, name: str) -> float:
    part = v[train]
    if np.isnan(part).any():
        part = part[~np.isnan(part)]
    if not len(part):
        raise UserError(f"column {quoted(name)}: no values in the training split to impute from; drop it (data.drop)")
    return float(np.median(part))


def _encoded_names(prep: dict) -> list[str]:
    out = []
    for col in prep["columns"]:
        out += source_names(prep, col)
        if prep["kinds"][col] == "categorical":
            out += [f"{col}={v}" for v in prep["categories"][col]]
    out += [f"{col}.missing" for col in prep["indicators"]]
    return out + [col for col in prep["columns"] if prep["kinds"][col] == "embedded"]


def fit_target(
    y_raw: pd.Series, rows: np.ndarray, prep: dict, train: np.ndarray, header_line: int, notes: list[str]
) -> np.ndarray:
    """Class indices, or the regression target (its log under target_transform) standardized on the training
    rows (0 in rows without a target); prep gets the baseline and the transform it chose."""
    target, present = prep["target"], y_raw.iloc[rows]
    if prep["task"] != "regression":
        prep.pop("target_transform", None)
        y = np.zeros(len(y_raw), dtype=np.int64)
        y[rows] = encode_labels(present, prep["classes"], target, header_line)
        prep["baseline"] = int(np.bincount(y[train], minlength=len(prep["classes"])).argmax())
        return y
    yv = numeric_column(y_raw, header_line)
    check_finite(yv, target, header_line)
    prep["target_transform"] = _transform(prep, yv, rows, train, notes)
    t = np.log(np.where(yv > 0, yv, 1.0)) if prep["target_transform"] == "log" else yv
    prep["target_shift"], prep["target_scale"] = float(t[train].mean()), float(t[train].std() or 1.0)
    prep["baseline"] = float(np.average(yv[train]))  # the trivial prediction: the training mean, in units
    return np.nan_to_num((t - prep["target_shift"]) / prep["target_scale"]).astype(np.float32)


def _transform(prep: dict, yv: np.ndarray, rows: np.ndarray, train: np.ndarray, notes: list[str]) -> str:
    """data.target_transform resolved: "log" or "none" (auto said in a note where it takes the log)."""
    asked, target = prep.get("target_transform", "none"), prep["target"]
    positive = bool(np.all(yv[rows] > 0))
    if asked == "log" and not positive:
        i = int(rows[np.flatnonzero(yv[rows] <= 0)[0]])
        raise UserError(
            f"data.target_transform=log: column {quoted(target)} (the target) has {yv[i]:g} in row {i + 1}; the log "
            f"needs every value above 0 (data.target_transform=none trains on the values as they are)"
        )
    if asked != "auto":
        return asked
    if not positive:
        return "none"
    skew, log_skew = _skew(yv[train]), _skew(np.log(yv[train]))
    if abs(log_skew) > abs(skew) / 2:
        return "none"
    notes.append(
        f"data.target_transform auto: log ({quoted(target)} skewed {skew:.2f}, its log {log_skew:.2f}); "
        f"predictions are exp of the output"
    )
    return "log"


def _skew(v: np.ndarray) -> float:
    sd = float(v.std())
    return 0.0 if sd == 0 else float(np.mean((v - v.mean()) ** 3) / sd**3)


def fit_weights(
    df: pd.DataFrame, y: np.ndarray, data_cfg: Any, splits: tuple, header_line: int, prep: dict, notes: list
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(loss weights, row weights) per row: the class weights times data.weight's column, and that column."""
    train, val, test = splits
    prep["weight"], prep["class_weight"] = data_cfg.weight, None
    weights = row_weights(df, prep, header_line) if data_cfg.weight else None
    for part, idx in (("training", train), ("validation", val), ("test", test)):
        if weights is not None and len(idx) and not weights[idx].any():
            raise UserError(f"column {quoted(data_cfg.weight)} (data.weight): every {part} row has weight 0")
    if data_cfg.weight:
        notes.append(f"rows weighted by column {quoted(data_cfg.weight)} in the loss and the metrics")
    if data_cfg.class_weight is None:
        return weights, weights
    if prep["task"] == "regression":
        raise UserError("data.class_weight: the target is a number (regression); class weights need classes")
    prep["class_weight"] = _class_weights(data_cfg.class_weight, y[train], prep["classes"])
    if not np.asarray(prep["class_weight"])[y[train]].any():
        raise UserError("data.class_weight: every training row has weight 0; give some class a weight above 0")
    shown = ", ".join(f"{c}: {w:.3g}" for c, w in zip(prep["classes"], prep["class_weight"]))
    how = "balanced" if data_cfg.class_weight == "balanced" else "given"
    notes.append(f"class weights ({how}) in the loss: {shown}")
    return loss_weights(prep, y, weights), weights


def _class_weights(given: Any, y_train: np.ndarray, classes: list) -> list[float]:
    """balanced: n / (classes x rows of the class), as scikit-learn's; a mapping: label -> weight, 1 if unnamed."""
    if given == "balanced":
        counts = np.bincount(y_train, minlength=len(classes))
        return [float(len(y_train) / (len(classes) * c)) if c else 0.0 for c in counts]
    names = [str(c) for c in classes]
    unknown = [k for k in given if str(k) not in names]
    if unknown:
        raise UserError(
            f"data.class_weight: no class {listed(unknown, quote=True)} in the target; classes are: {listed(names)}"
        )
    return [float(given.get(n, 1.0)) for n in names]


# A column of numbers and text is categories (0, 1, 2, >3; codes such as 2, M10, 188SL) unless it has more than
# MIXED_LEVELS distinct values and its text is a stray word or two among measurements (at most STRAY_WORDS
# distinct ones, in at most STRAY_SHARE of the rows): that is a data error.
MIXED_LEVELS = 32
STRAY_WORDS = 5
STRAY_SHARE = 0.1


def column_kind(s: pd.Series, header_line: int) -> str:
    """numeric, categorical, codes: numbers as text, one written with a leading zero (02134, 01; read as
    categories), or mixed: numbers and text, with few distinct values (read as categories). Decided on the
    distinct values, each counted once with its rows."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return "numeric"
    counts = s.value_counts()
    numbers = pd.to_numeric(pd.Series(counts.index.astype(str)).str.strip(), errors="coerce").notna().to_numpy()
    if len(counts) and numbers.all():  # numbers stored as text (a Parquet string column, say)
        return "codes" if zero_led(pd.Series(counts.index)).any() else "numeric"
    share = counts.to_numpy()[numbers].sum() / max(counts.sum(), 1)
    stray = (~numbers).sum() <= STRAY_WORDS and share >= 1 - STRAY_SHARE
    if len(counts) and len(counts) > MIXED_LEVELS and stray:
        # Measurements with a few words in between is a data error, never a category.
        i = int(np.flatnonzero(s.isin(counts.index[~numbers]).to_numpy())[0])
        raise UserError(
            f"column {quoted(s.name)}: {quoted(s.iloc[i])} at {where(header_line, i)} is not a number, "
            f"while {np.floor(share * 100):.0f}% of the column is numeric; fix or remove that value"  # 99.8: not 100
        )
    return "mixed" if len(counts) and share >= 0.5 else "categorical"


def _impute_value(s: pd.Series, how: str) -> Any:
    present = s.dropna()
    if present.empty:
        raise UserError(f"column '{s.name}': no values in the training split to impute from; drop it (data.drop)")
    if how == "mean":
        return float(present.astype(float).mean())
    if how == "median":
        return float(present.astype(float).median())
    return py(present.mode().iloc[0])


def _scaling(v: np.ndarray, kind: str) -> tuple[tuple[float, float, float], list | None]:
    """(_scale_of's stats, the column's quantile knots under data.scale: quantile, else None)."""
    return _scale_of(v, kind), quantiles.knots(v) if kind == "quantile" else None


def _scale_of(v: np.ndarray, kind: str) -> tuple[float, float, float]:
    """(shift, scale, mean) of one column's training values; a constant column keeps scale 1. robust: the
    median, and the interquartile range over a normal's (1.349), so a normal column gets about its standard
    deviation; where the quartiles meet (a mostly-constant column), half the range (encoding clips it smoothly)."""
    mean = v.mean()
    if kind == "standard":
        shift, scale = mean, v.std()
    elif kind == "minmax":
        shift, scale = v.min(), v.max() - v.min()
    elif kind in ("robust", "quantile"):  # quantile: for the bag's linear model and the export's sample rows
        q1, shift, q3 = np.quantile(v, [0.25, 0.5, 0.75])
        scale = (q3 - q1) / NORMAL_IQR if q3 > q1 else (v.max() - v.min()) / 2
    else:
        shift, scale = 0.0, 1.0
    return float(shift), float(scale) if scale > 0 else 1.0, float(mean)


NORMAL_IQR = 1.3489795  # a standard normal's interquartile range
