"""Whole numbers that name things (a person's nr in a panel, a professor's id, a site code): read as levels,
not as a quantity. Trees find them anyway (a split between two ids isolates them); a network reads a number as
a smooth curve, and an id's curve is noise: on Males (545 people, 8 years each) wage R² 0.28 as a number, 0.47
as levels, where gradient boosting has 0.33 (seed 0).

A column of whole numbers with more than data.one_hot_max distinct values, on two or more training rows each on
average, is tested on its training rows, out of fold: the mean target of each value (shrunk toward the overall
mean by SHRINK rows) against the mean of each run of NEIGHBOURS neighbouring values (a smooth curve of the
number). The numbers name things where each value's own mean does better by 10% or more, and gains more over the
curve than the curve gains over the overall mean: what the column says is in its single values, not in their
order. Of the 66 such columns of the suite's 20 tables and 22 R tables outside it, two are read as levels:
Males' nr and TeachingRatings' prof (a quantity with a strong fine-grained curve, Computers' hd, is not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FOLDS, SHRINK, NEIGHBOURS, MARGIN = 5, 5.0, 4, 0.9
MAX_ROWS = 100_000  # a seeded sample of the training rows above this: the test's shares settle long before


def candidate(v: np.ndarray, one_hot_max: int) -> bool:
    """Whole numbers (NaN-free training values), more distinct ones than one-hot takes, each on 2+ rows."""
    if len(v) == 0 or not np.all(np.mod(v, 1) == 0):
        return False
    k = len(np.unique(v))
    return one_hot_max < k <= len(v) / 2


def explained(v: np.ndarray, t: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(the share of t's out-of-fold squared error that each value's own mean removes, and that the curve of
    neighbouring values removes), each against the overall mean. `t`: rows x outputs (a standardized target, or
    one-hot classes)."""
    folds = np.random.default_rng(seed).permutation(len(v)) % FOLDS
    runs = (pd.Series(v).rank(method="dense").to_numpy(np.int64) - 1) // NEIGHBOURS
    base, own, curve = (_loss(g, t, folds) for g in (np.zeros(len(v), np.int64), v, runs))
    return 1 - own / base, 1 - curve / base


def names_things(own: float, curve: float) -> bool:
    """explained's shares: the values' own means beat the curve by a tenth, and by more than it beats the mean."""
    return (1 - own) < MARGIN * (1 - curve) and own - curve > curve


def _loss(groups: np.ndarray, t: np.ndarray, folds: np.ndarray) -> float:
    """The squared error of each row's group mean from the other folds (shrunk; the overall mean for a group
    they lack)."""
    err = 0.0
    for k in range(FOLDS):
        fit, held = folds != k, folds == k
        overall = t[fit].mean(axis=0)
        sums = pd.DataFrame(t[fit]).groupby(groups[fit]).agg(["sum", "count"])
        s = sums.xs("sum", axis=1, level=1).to_numpy()
        n = sums.xs("count", axis=1, level=1).to_numpy()
        means = pd.DataFrame((s + SHRINK * overall) / (n + SHRINK), index=sums.index)
        pred = means.reindex(groups[held]).to_numpy()
        pred = np.where(np.isnan(pred), overall, pred)
        err += float(((pred - t[held]) ** 2).sum())
    return err / len(t) + 1e-12


def reads_as_levels(s: pd.Series, train: np.ndarray, target: pd.Series, task: str, one_hot_max: int) -> str | None:
    """The note that says column `s` is read as levels, or None where it is a quantity (or no candidate).
    `target`: the training rows' target values, in `train`'s order."""
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None
    v = s.to_numpy(np.float64, na_value=np.nan)[train]
    present = ~np.isnan(v)
    if not candidate(v[present], one_hot_max):
        return None
    rows = np.flatnonzero(present)
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_ROWS, replace=False))
    own, curve = explained(v[rows], target_matrix(target.iloc[rows], task))
    if not names_things(own, curve):
        return None
    return (
        f"column '{s.name}' read as levels: its numbers name things (out of fold, each value's own mean target "
        f"explains {own:.0%} of the target, a smooth curve of the values {curve:.0%}); data.numeric: [{s.name}] "
        f"reads it as a number"
    )


def target_matrix(y: pd.Series, task: str) -> np.ndarray:
    """The target as the test takes it, rows x outputs: standardized values, or one-hot classes."""
    if task == "regression":
        v = y.to_numpy(np.float64)
        return ((v - v.mean()) / (v.std() or 1.0))[:, None]
    return pd.get_dummies(y.astype(str)).to_numpy(np.float64)
