"""Prediction intervals (regression) and prediction sets (classification) from held-out predictions, with no
refit: conformal prediction.

A bag's out-of-fold rows give CV+ intervals (Barber et al. 2021, "jackknife+ after cross-validation"): for a new
row x and the rows i of fold k, the values mu_k(x) - R_i and mu_k(x) + R_i, where mu_k is the model that did not
train on fold k (member k, mixed with the linear model's fold model k where the bag has one) and R_i = |y_i -
mu_k(x_i)|; the interval runs from the floor(alpha (n + 1))-th smallest of the first to the ceil((1 - alpha)
(n + 1))-th smallest of the second. A lone run gives split-conformal intervals from its validation rows:
prediction -/+ the ceil((n + 1)(1 - alpha))-th smallest residual. Sets are LAC's (Sadinle et al. 2019): the
classes whose probability is at least 1 - q, q that rank of the held-out rows' 1 - p(true class).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from nntrain.errors import UserError

CHUNK = 2_000_000  # values (rows x calibration rows) ranked at a time: memory stays bounded on big files


# Levels from here up: an interval for fewer than half the rows is narrower than most errors, CV+ bounds can
# cross (lower above upper), and 0.05 is most often a 95% interval written as MAPIE's alpha.
LOWEST_LEVEL = 0.5


def checked_level(level: float, key: str) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real):  # "0.9" from Python: no comparison
        raise UserError(
            f"{key}: give the coverage as a number between 0 and 1 (0.9: nine in ten), not {type(level).__name__}"
        )
    if not 0 < level < 1:
        raise UserError(f"{key} {level}: give the coverage as a fraction between 0 and 1 (0.9: nine in ten)")
    if level < LOWEST_LEVEL:
        raise UserError(
            f"{key} {level}: the share of rows to hold the truth, from {LOWEST_LEVEL} up "
            f"(for {1 - level:.0%}, write {key} {1 - level:g})"
        )
    return float(level)


def rank(n: int, level: float, key: str) -> int:
    """The 1-based rank of the conformal quantile among n held-out scores; refused where n is too few."""
    k = math.ceil((n + 1) * level - 1e-9)  # (n + 1) level may be a whole number a float overshoots
    if k > n:
        raise UserError(
            f"{key} {level}: {n} held-out rows give no finite bound at that level (at most {n / (n + 1):.3f}); "
            f"ask for a lower one, or train on more rows"
        )
    return k


def cv_plus(
    member_preds: list[np.ndarray], residuals: list[np.ndarray], level: float, key: str = "interval"
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) for each row of the members' predictions (member k's: member_preds[k], N rows), from
    fold k's absolute out-of-fold residuals (residuals[k]). Both bounds are the m-th value from an end
    (m = n + 1 - the conformal rank), which only a fold's m largest residuals can reach: the rest are left out.
    Ranked in float32 (3x faster) around each row's mean prediction, so the error is 1e-7 of the residuals'
    size, not of the target's."""
    n = sum(len(r) for r in residuals)
    m = n + 1 - rank(n, level, key)
    tops = [np.sort(np.asarray(r, dtype=np.float64))[-m:].astype(np.float32) for r in residuals]
    preds = np.stack([np.asarray(p, dtype=np.float64) for p in member_preds], axis=1)  # N x members
    centre = preds.mean(axis=1)
    offsets = (preds - centre[:, None]).astype(np.float32)
    lower, upper = np.empty(len(preds)), np.empty(len(preds))
    step = max(1, CHUNK // max(sum(map(len, tops)), 1))
    for start in range(0, len(preds), step):
        part = slice(start, start + step)
        highs = np.concatenate([offsets[part, k, None] + r[None, :] for k, r in enumerate(tops)], axis=1)
        lows = np.concatenate([offsets[part, k, None] - r[None, :] for k, r in enumerate(tops)], axis=1)
        upper[part] = -np.partition(-highs, m - 1, axis=1)[:, m - 1]  # the m-th largest: the rank-th smallest
        lower[part] = np.partition(lows, m - 1, axis=1)[:, m - 1]  # the m-th smallest: floor(alpha (n + 1))-th
    return centre + lower, centre + upper


def split_interval(
    prediction: np.ndarray, residuals: np.ndarray, level: float, key: str = "interval"
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): prediction -/+ the conformal quantile of held-out absolute residuals."""
    k = rank(len(residuals), level, key)
    q = np.partition(residuals, k - 1)[k - 1]
    return prediction - q, prediction + q


def lac_sets(proba: np.ndarray, true_proba: np.ndarray, level: float, key: str = "sets") -> np.ndarray:
    """Which classes are in each row's set (N x classes, bool), from the held-out rows' probability of their
    true class: LAC, as MAPIE gives it. A set may be empty: no class of that row is as probable as the true
    class was on `level` of the held-out rows (the row is unlike them); keeping its top class there would make
    every set cover more than the level on a table the model mostly gets right."""
    scores = 1.0 - true_proba
    k = rank(len(scores), level, key)
    q = np.partition(scores, k - 1)[k - 1]
    return proba >= 1.0 - q - 1e-12


def set_columns(members: np.ndarray, classes: list) -> dict[str, list | np.ndarray]:
    """`set`: each row's classes in the classes' order, joined by ` | `; `set_size`: how many."""
    names = [str(c) for c in classes]
    joined = [" | ".join(n for n, m in zip(names, row) if m) for row in members]
    return {"set": joined, "set_size": members.sum(axis=1)}


def coverage(task: str, truth: np.ndarray, lower_or_sets, upper: np.ndarray | None = None) -> dict[str, float]:
    """What eval reports: the share of rows inside (coverage) and the mean width, or the mean set size."""
    if task == "regression":
        inside = (truth >= lower_or_sets) & (truth <= upper)
        return {"coverage": float(inside.mean()), "mean_width": float(np.mean(upper - lower_or_sets))}
    inside = lower_or_sets[np.arange(len(truth)), truth]
    return {"coverage": float(inside.mean()), "mean_set_size": float(lower_or_sets.sum(axis=1).mean())}


def bag_held_out(oof, prep: dict) -> dict:
    """What a bag's intervals and sets are calibrated on, from its oof.csv: per fold (1, 2, ...) the absolute
    residuals, or every out-of-fold row's probability of its true class."""
    if prep["task"] == "regression":
        resid = (oof["target"].astype(float) - oof["prediction"]).abs()
        return {"residuals": {int(k): resid[oof["fold"] == k].to_numpy() for k in sorted(oof["fold"].unique())}}
    classes = [str(c) for c in prep["classes"]]
    proba = oof[[f"proba_{c}" for c in prep["classes"]]].to_numpy()
    index = {c: i for i, c in enumerate(classes)}
    true = np.array([index[str(t)] for t in oof["target"]])
    return {"true_proba": proba[np.arange(len(true)), true]}


def run_held_out(run) -> dict:
    """A lone run's validation rows through its model: their absolute residuals, or true-class probabilities."""
    from nntrain.data.reread import split_encoded
    from nntrain.model.heads import truth
    from nntrain.tools.inference import scores_of

    e = split_encoded(run.prep, run.split, run.run_dir, "val")
    if e is None:
        raise UserError(f"{run.run_dir} has no validation rows to calibrate intervals or sets on")
    scores = scores_of(run, e.X)
    if run.prep["task"] == "regression":
        return {"residuals": np.abs(truth(run.prep, e.y) - scores)}
    return {"true_proba": scores[np.arange(len(e.y)), e.y]}


def bounds(prediction: np.ndarray, held: dict, level: float, members=None, key: str = "interval") -> tuple:
    """(lower, upper): CV+ where a bag's members are given ((fold k, member k's predictions) each), else split
    conformal around `prediction`."""
    if members is None:
        return split_interval(prediction, held["residuals"], level, key)
    return cv_plus([p for _, p in members], [held["residuals"][k] for k, _ in members], level, key)


def asked(task: str, interval: float | None, sets: float | None, cli: bool = False) -> None:
    """Refuses an interval for a classifier, sets for a regression, or a level outside (0.5, 1), in the
    words the caller was given them in: predict's flags, or the Python API's arguments."""
    i, s, level = ("--interval", "--sets", " LEVEL") if cli else ("interval", "sets", "=LEVEL")
    if interval is not None and task not in ("regression", None):  # None: a cv folder whose folds all diverged
        raise UserError(f"{i} is for a regression; a classifier's runs give prediction sets: {s}{level}")
    if sets is not None and task == "regression":
        raise UserError(f"{s} is for a classifier; a regression's runs give intervals: {i}{level}")
    for key, asked_level in ((i, interval), (s, sets)):
        if asked_level is not None:
            checked_level(asked_level, key)


def with_bounds(frame, prep: dict, held: dict, interval: float | None, sets: float | None, members=None):
    """`frame` (predict's) with `lower`, `upper` (a regression's interval) or `set`, `set_size` (a classifier's
    sets). members: a bag's per-member predictions (CV+, member k's matching fold k); None: split conformal."""
    asked(prep["task"], interval, sets)
    if interval is not None:
        lower, upper = bounds(frame["prediction"].to_numpy(), held, float(interval), members)
        frame = frame.assign(lower=lower, upper=upper)
    if sets is not None:
        proba = frame[[f"proba_{c}" for c in prep["classes"]]].to_numpy()
        frame = frame.assign(**set_columns(lac_sets(proba, held["true_proba"], float(sets)), prep["classes"]))
    return frame


def coverage_report(prep: dict, y: np.ndarray, mean: np.ndarray, held: dict, level: float, members=None) -> dict:
    """eval's line: on rows with a known target (encoded y), the coverage of the intervals (or sets) predict
    would give at `level`, and their mean width (or mean size)."""
    from nntrain.model.heads import truth

    if prep["task"] == "regression":
        lower, upper = bounds(mean, held, level, members, "--level")
        return {"level": level, **coverage("regression", truth(prep, y), lower, upper)}
    return {"level": level, **coverage(prep["task"], y, lac_sets(mean, held["true_proba"], level, "--level"))}


def eval_coverage(prep: dict, test: Any, rows: Any, level: float, held, scorer) -> dict:
    """eval's "conformal": the coverage of predict's intervals or sets at `level` on the test rows (test()) or on
    `rows`, calibrated on held() (a run's validation rows, a bag's out-of-fold rows); a note where it cannot be."""
    from nntrain.data.columns import Report
    from nntrain.data.encoding import encode_table
    from nntrain.tools.inference import read_input

    checked_level(level, "--level")
    e = test() if rows is None else encode_table(read_input(rows, "--data", prep), prep, "--data", Report())
    if e is None:
        return {"level": level, "note": "no test split (data.test_size=0)"}
    mean, members = scorer(e.X)
    try:
        return coverage_report(prep, e.y, mean, held(), level, members)
    except UserError as err:  # too few held-out rows for the level, or none
        return {"level": level, "note": str(err)}
