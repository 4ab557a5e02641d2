"""Apply a fitted preprocessing to raw rows: the float32 matrix the model takes, class indices, and
regression values back in the target's units. Fitting it is fitting.py's job; reading the raw values, columns.py's.

The matrix's columns, in order: per feature column its scaled number, its scaled date parts, or its one-hot
block; then a 0/1 "was missing" column per imputed column that had missing values in training; then one
integer code per embedded column (0: a rare or unseen level), which the model's embedding layer reads.

The fitted preprocessing is plain data (lists, numbers, strings) so it travels inside a checkpoint that
loads with weights_only=True: nothing is unpickled at eval or predict time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from nntrain.data import durations
from nntrain.data.columns import (
    Report,
    categories,
    check_finite,
    map_rows,
    numeric_column,
    py,
    raw_sources,
    row_parts,
    source_names,
    without_outer_spaces,
)
from nntrain.data.quantiles import mapped
from nntrain.data.tables import Table, check_columns, where
from nntrain.data.text_numbers import marks_among_labels
from nntrain.errors import UserError, did_you_mean, listed, quoted

LOG_MAX = 700.0  # the log of a value a float64 holds: exp beyond it is infinite


def unscale(prep: dict, y: Any) -> Any:
    """A standardized regression value (array or tensor) back in the target's own units (exp of it, where the
    target was trained as its log)."""
    v = y * prep["target_scale"] + prep["target_shift"]
    if prep.get("target_transform") != "log":
        return v
    return v.clamp(max=LOG_MAX).exp() if hasattr(v, "clamp") else np.exp(np.minimum(v, LOG_MAX))


def scale_target(prep: dict, v: np.ndarray) -> np.ndarray:
    """Target values in the target's units -> the standardized values the model trains on (unscale's inverse)."""
    t = np.log(v) if prep.get("target_transform") == "log" else v
    return (t - prep["target_shift"]) / prep["target_scale"]


def filled(v: np.ndarray, name: str, prep: dict, header_line: int) -> np.ndarray:
    """A numeric source (a column or a date part) with its fill value in missing places; without one, a missing
    value is an error, as is an infinite one."""
    if np.isfinite(v).all():  # one pass over the column, and no copy, for a column without a gap
        return v
    fill = prep["impute"].get(name)
    if fill is not None:
        v = np.where(np.isnan(v), fill, v)
    if not np.isfinite(v).all():  # where the bad value is, only when there is one
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        if np.isnan(v[i]):
            raise UserError(
                f"column '{name}': missing value at {where(header_line, i)}; fill it, drop the column "
                f"(data.drop), or set data.impute: auto | mean | median | most_frequent"
            )
        check_finite(v, name, header_line)
    return v


def level_lookup(prep: dict, col: str) -> tuple[dict[str, int], int]:
    """({level: code}, the code a missing value takes): codes from 1 in the kept levels' order; a missing value
    is its fill level's code, 0 (unknown) when that level is not kept or there is no fill."""
    return {c: i + 1 for i, c in enumerate(prep["categories"][col])}, missing_code(prep, col)


def missing_code(prep: dict, col: str) -> int:
    """The code a missing value takes: its fill level's, 0 (unknown) when that level is not kept or there is no
    fill."""
    fill, kept = prep["impute"].get(col), prep["categories"][col]
    name = None if fill is None else categories(pd.Series([fill])).iloc[0]
    return kept.index(name) + 1 if name is not None and name in kept else 0


def encode(
    df: pd.DataFrame,
    prep: dict,
    header_line: int,
    sources: dict[str, np.ndarray] | None = None,
    report: Report | None = None,
    shown: str | None = None,
) -> np.ndarray:
    """Raw rows -> the float32 matrix the model takes, with the stored preprocessing. `sources`: the numeric
    sources already read (by prepare). Written straight into float32, never as a float64 copy of the table.
    `shown`: the rows' file (or a DataFrame) as messages name it, first: a bad value's column and row are of it."""
    try:
        return _matrix(df, prep, header_line, sources, report or Report(), shown or "input")
    except UserError as e:  # fit's own rows (no `shown`) are named by fit; a message naming the file already kept
        raise e if not shown or str(e).startswith(f"{shown}: ") else UserError(f"{shown}: {e}") from None


def _matrix(
    df: pd.DataFrame, prep: dict, header_line: int, sources: dict | None, report: Report, shown: str
) -> np.ndarray:
    missing = [c for c in prep["columns"] if c not in df.columns]
    if missing:
        others = [str(c) for c in df.columns if c not in prep["columns"]]  # 'Color' for 'color', 'price ' for 'price'
        raise UserError(
            f"{shown}: lacks column(s) {listed(missing, most=8, quote=True)} that the model was trained on"
            f"{did_you_mean(missing[0], others)}"
        )
    if sources is None:
        check_columns(df[prep["columns"]], "input")  # what prepare checked in training
        report.absent(df, prep["columns"])
    raw = sources if sources is not None else raw_sources(df, prep, header_line, report)
    X = np.empty((len(df), len(prep["encoded"])), dtype=np.float32)
    at, columns, j = [], [], 0
    knots = prep.get("quantiles")  # data.scale: quantile
    for col in prep["columns"]:
        kind = prep["kinds"][col]
        if kind in ("numeric", "date"):
            for name in source_names(prep, col):
                at.append(j)
                v = filled(raw[name], name, prep, header_line)
                columns.append(v if knots is None else mapped(v, knots[name]))
                j += 1
        elif kind == "categorical":
            width = len(prep["categories"][col])
            codes = level_codes(df[col], prep, header_line, report)
            block = X[:, j : j + width]
            block[:] = 0.0
            known = codes > 0
            block[np.flatnonzero(known), codes[known] - 1] = 1.0
            j += width
    _fill_scaled(X, at, columns, prep)
    for col in prep.get("indicators", []):
        X[:, j] = np.isnan(raw[col])
        j += 1
    for col in prep["columns"]:
        if prep["kinds"][col] == "embedded":
            X[:, j] = level_codes(df[col], prep, header_line, report)
            j += 1
    return X


def _fill_scaled(X: np.ndarray, at: list[int], columns: list[np.ndarray], prep: dict) -> None:
    """(x - shift) / scale of every numeric source into its column of X (data.scale robust: then smooth_clip;
    quantile: the columns come mapped, and go in as they are)."""
    shift, scale = np.asarray(prep["shift"])[:, None], np.asarray(prep["scale"])[:, None]
    scaled = prep.get("quantiles") is None
    clip = prep.get("scale_kind") == "robust"
    if at and at[-1] - at[0] == len(at) - 1:
        at = slice(at[0], at[-1] + 1)  # a run of columns, written without fancy indexing

    def fill(part: range) -> None:
        # A block of rows at a time and every numeric column at once, with the block in cache: float64 columns
        # in, float32 rows out (column by column over the whole row-major matrix took four times as long).
        block = np.empty((len(columns), ROWS_PER_BLOCK))
        for start in part:
            stop = min(start + ROWS_PER_BLOCK, part.stop)
            b = block[:, : stop - start]
            for i, v in enumerate(columns):
                b[i] = v[start:stop]
            if scaled:
                b -= shift
                b /= scale
            if clip:
                b /= np.sqrt(1 + (b / CLIP) ** 2)
            X[start:stop, at] = b.T

    n = len(X)
    parts = row_parts(n)
    if columns:
        map_rows(fill, [range(n * i // parts, n * (i + 1) // parts, ROWS_PER_BLOCK) for i in range(parts)], n)


CLIP = 3.0  # data.scale robust: x / sqrt(1 + (x / CLIP)^2), RealMLP's smooth clipping (Holzmueller et al., 2024)
ROWS_PER_BLOCK = 8192


def level_codes(s: pd.Series, prep: dict, header_line: int, report: Report) -> np.ndarray:
    """1 + each row's level among the column's kept ones; 0 for a level not kept (rarer than
    data.min_level_count in training, or never seen: said in `report`). A missing value takes its fill level;
    without one it is an error."""
    col = str(s.name)
    idx, uniques = pd.factorize(s)  # each distinct value named once; -1 for a missing one
    names = categories(pd.Series(uniques, dtype=object if len(uniques) == 0 else None))
    found = names.map(stripped_lookup(prep["categories"][col], start=1))
    by_unique = _or_by_case(found, names, prep["categories"][col], 1).fillna(0).to_numpy(np.int64)  # 0: none
    new = by_unique == 0
    if col in prep.get("rare", {}):
        new &= ~names.isin(prep["rare"][col]).to_numpy()
    present = idx >= 0
    safe = np.maximum(idx, 0)
    codes = np.where(present, by_unique[safe], 0) if len(uniques) else np.zeros(len(s), dtype=np.int64)
    unseen = present & new[safe] if len(uniques) else np.zeros(len(s), dtype=bool)
    if not present.all():
        if col not in prep["impute"]:
            i = int(np.flatnonzero(~present)[0])
            raise UserError(
                f"column '{col}': missing value at {where(header_line, i)}; fill it, drop the column "
                f"(data.drop), or set data.impute: auto | most_frequent"
            )
        codes[~present] = missing_code(prep, col)
        unseen |= ~present & (codes == 0)
    if unseen.any():
        one_hot = prep["kinds"][col] == "categorical"
        then = f"encoded as {'an all-zero one-hot' if one_hot else 'the unknown level'}"
        capped = col in prep.get("rare_count", {})  # only a few of its rare levels were kept: cannot tell
        what = "rare in training or never seen" if capped else "never seen in training"
        report.unseen(s, unseen, header_line, then, what)
    return codes


def stripped_lookup(levels: list, start: int = 0) -> dict[str, int]:
    """Each stored level's place (from `start`) by its text without outer spaces, as new values are read: a run
    trained before levels were stripped ('red ' kept) still finds 'red'; the first of two that strip alike wins."""
    lookup: dict[str, int] = {}
    for i, level in enumerate(levels):
        lookup.setdefault(str(level).strip(), i + start)
    return lookup


def by_case(levels: list, start: int = 0) -> dict[str, int]:
    """Each level's (or class's) place (from `start`) by its text in lower case, for values spelled otherwise ('YES'
    for fit's 'yes', which read the spellings of one level as one: columns.case_spellings); none for a text two
    levels share (K and k, kept apart)."""
    folded = pd.Series([str(c).strip().casefold() for c in levels], dtype=object)
    shared = folded.duplicated(keep=False).to_numpy()
    return {t: i + start for i, t in enumerate(folded) if not shared[i]}


def _or_by_case(found: pd.Series, text: pd.Series, levels: list, start: int = 0) -> pd.Series:
    """`found`, its misses looked up by their text in lower case (by_case): only the misses, a rare few."""
    miss = found.isna().to_numpy()
    if not miss.any():
        return found
    values = found.to_numpy(np.float64, na_value=np.nan, copy=True)  # by position: an index may repeat a label
    values[miss] = text[miss].str.casefold().map(by_case(levels, start)).to_numpy(np.float64, na_value=np.nan)
    return pd.Series(values, index=found.index)


def encode_labels(y: pd.Series, classes: list, target: str, header_line: int) -> np.ndarray:
    """Class indices, vectorized (a million labels through a Python loop take seconds). Numeric labels match
    by value, so 1, 1.0 and '1' are one class."""
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        # int64 labels compare as integers: through float64, 19-digit labels would merge into one class
        exact = y.dtype.kind == "i" and not y.hasnans and all(type(c) is int for c in classes)
        values = (
            y.to_numpy(dtype=np.int64)
            if exact
            else pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        )
        ref = np.asarray(classes, dtype=np.int64 if exact else np.float64)
        pos = np.clip(np.searchsorted(ref, values), 0, len(ref) - 1)
        codes = np.where(ref[pos] == values, pos, -1)
    else:
        text = y.astype(str).str.strip()  # as fit read them
        codes = _or_by_case(text.map(stripped_lookup(classes)), text, classes).fillna(-1).to_numpy(dtype=np.int64)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise UserError(
            f"column {quoted(target)} (the target): label {quoted(py(y.iloc[i]))} at {where(header_line, i)} was never "
            f"seen in training; known labels: {listed(classes, most=20, limit=20)}"
        )
    return codes.astype(np.int64)


@dataclasses.dataclass
class Encoded:
    """Rows through the stored preprocessing: features, targets, the weight column's values and the loss's
    per-row weights (None where all rows weigh the same)."""

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    loss_weights: np.ndarray | None


def target_values(frame: pd.DataFrame, prep: dict) -> pd.Series:
    """The target column as fit read it, missing where a row has none: "  " has no label, nor "?" beside yes and
    no (a mark no class is named), nor any mark among a regression's numbers."""
    y = without_outer_spaces(frame[prep["target"]])
    return y.mask(marks_among_labels(y, prep.get("classes") or []))


def labelled_rows(frame: pd.DataFrame, prep: dict) -> pd.DataFrame:
    """The rows encode_table scores: those with a target where the run left out rows without one (all rows where
    none has one, or the column is absent: encode_table says so)."""
    if prep.get("missing_target") != "drop" or prep["target"] not in frame.columns:
        return frame
    known = target_values(frame, prep).notna().to_numpy()
    return frame.loc[known].reset_index(drop=True) if known.any() else frame


def encode_table(
    table: Table, prep: dict, shown: str, report: Report | None = None, every_row: bool = False, part: bool = False
) -> Encoded:
    """A table with the training columns and target, through the stored preprocessing. Rows without a target
    are left out (said in `report`) when the run dropped such rows in training, and a table none of whose rows
    has one is refused unless it is a `part` of one (a streamed chunk); `every_row` keeps them, with target 0,
    so that row numbers stay the file's (a resume's split.json)."""
    report = report or Report()
    target = prep["target"]
    if target not in table.frame.columns:
        raise UserError(f"{shown}: no target column '{target}' to evaluate against")
    frame, y = table.frame, target_values(table.frame, prep)
    absent = y.isna().to_numpy() if prep.get("missing_target") == "drop" else np.zeros(len(frame), bool)
    if absent.any() and not every_row:
        if absent.all() and not part:
            raise UserError(f"{shown}: every row's target {quoted(target)} is missing: there is nothing to evaluate")
        report.notes.append(f"{int(absent.sum()):,} row(s) without a target {quoted(target)} left out")
        frame, y, absent = frame.loc[~absent].reset_index(drop=True), y[~absent].reset_index(drop=True), absent[~absent]
    X = encode(frame, prep, table.header_line, report=report, shown=None if part else shown)  # in_chunk names it
    y = encode_target(y, prep, table.header_line, absent)
    weights = None
    if prep.get("weight") in frame.columns:
        weights = row_weights(frame, prep, table.header_line)
    elif prep.get("weight"):
        report.notes.append(f"no weight column {quoted(prep['weight'])} (data.weight): every row weighs the same")
    return Encoded(X, y, weights, loss_weights(prep, y, weights))


def loss_weights(prep: dict, y: np.ndarray, weights: np.ndarray | None) -> np.ndarray | None:
    """Each row's weight in the loss: its class's weight (data.class_weight) times its data.weight."""
    per_class = prep.get("class_weight")
    if per_class is None:
        return weights
    by_class = np.asarray(per_class, dtype=np.float64)[y]
    return by_class if weights is None else by_class * weights


def row_weights(frame: pd.DataFrame, prep: dict, header_line: int) -> np.ndarray:
    """The weight column: finite numbers, none negative, scaled so that the largest is 1."""
    col = prep["weight"]
    if col not in frame.columns:
        raise UserError(f"input lacks the weight column {quoted(col)} (data.weight)")
    w = np.array(numeric_column(frame[col], header_line))  # a copy: pandas hands out read-only views
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"column {quoted(col)} (data.weight): {quoted(py(frame[col].iloc[i]))} at {where(header_line, i)}; "
            f"a weight is a number of at least 0"
        )
    return _scaled(w, col)


def _scaled(w: np.ndarray, col: str) -> np.ndarray:
    """Weights divided by the largest, in float64: only their ratios count (every loss and metric is a weighted
    mean), and float32 then holds them; 3e38 or 1e-45 everywhere is weight 1, not an overflow or a denormal.
    Refused when the smallest positive weight would still fall below what float32 holds."""
    top = w.max(initial=0.0)
    if top <= 0:
        return w
    w = w / top
    tiny = np.finfo(np.float32).tiny
    if ((w > 0) & (w < tiny)).any():
        low = float(np.min(w[w > 0])) * top
        raise UserError(
            f"column {quoted(col)} (data.weight): weights from {low:.3g} to {top:.3g} span more than float32 holds "
            f"(a ratio over {1 / tiny:.0e}); give the smallest ones 0 or raise them"
        )
    return w


def encode_target(y: pd.Series, prep: dict, header_line: int, absent: np.ndarray | None = None) -> np.ndarray:
    """Class indices, or the standardized value; 0 in `absent` rows (those without a target a run left out)."""
    target = prep["target"]
    if absent is not None and absent.any():
        out = np.zeros(len(y), dtype=np.float32 if prep["task"] == "regression" else np.int64)
        out[~absent] = encode_target(y[~absent], prep, header_line)
        return out
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise UserError(f"column '{target}' (the target): missing value at {where(header_line, i)}")
    if prep["task"] == "regression":
        return scale_target(prep, target_numbers(y, prep, header_line)).astype(np.float32)
    return encode_labels(y, prep["classes"], target, header_line)


def target_numbers(y: pd.Series, prep: dict, header_line: int) -> np.ndarray:
    """A regression's target values in its own units, float64 (encode_target scales them to float32)."""
    target = prep["target"]
    v = durations.seconds(y, header_line) if prep.get("target_durations") else numeric_column(y, header_line)
    check_finite(v, target, header_line)
    if prep.get("target_transform") == "log" and not np.all(v > 0):
        i = int(np.flatnonzero(~(v > 0))[0])
        raise UserError(
            f"column '{target}' (the target): {v[i]:g} at {where(header_line, i)}; the model was trained on the "
            f"log of the target (data.target_transform), which needs every value above 0"
        )
    return v
