"""A linear model beside a bag (train.linear): cross-fitted on the bag's folds like its members, on the bag's
encoded matrix less its level-code columns (numbers scaled, date parts, one-hot, missing indicators), and
mixed with the members' mean by the one weight that does best on the out-of-fold predictions. Where a linear
model wins (a few real tables do), the weight goes to it; where it does not, to the network.

Stored as plain numbers in bag.json: per fold model, the logits' coefficients and intercepts over every class
(a class a fold never saw: an intercept of -1e9), or a regression's coefficients; and the weight.
"""

from __future__ import annotations

import numpy as np

from nntrain.data.columns import numeric_names
from nntrain.data.encoding import CLIP, unscale
from nntrain.model.calibration import calibrated, fit_temperature, log_loss
from nntrain.tools.linear_fit import Logistic, logistic, ridge

WEIGHTS = np.linspace(0.0, 1.0, 21)  # the linear model's share, tried on the out-of-fold predictions
UNSEEN = -1e9  # the intercept of a class a fold's model never saw: probability 0


def linear_columns(prep: dict) -> list[int]:
    """The matrix's columns a linear model reads: all but the level codes of embedded columns (at the end)."""
    embedded = sum(prep["kinds"][c] == "embedded" for c in prep["columns"])
    return list(range(len(prep["encoded"]) - embedded))


def unranked(prep: dict, cols: list[int]) -> list[tuple[int, list, float, float]]:
    """Under data.scale: quantile, the linear model's number columns to take back from their ranks: (position in
    `cols`, knots, the column's robust shift and scale). A linear model gains nothing from ranks: on the real
    phone table its share fell from 0.7-0.95 on robust-scaled numbers to 0-0.1 on their ranks."""
    knots = prep.get("quantiles")
    if not knots:
        return []
    numeric = {name: i for i, name in enumerate(numeric_names(prep))}
    named = [(j, prep["encoded"][c]) for j, c in enumerate(cols)]
    return [(j, knots[n], prep["shift"][numeric[n]], prep["scale"][numeric[n]]) for j, n in named if n in knots]


def linear_inputs(prep: dict, X: np.ndarray, cols: list[int], clip: float | None = CLIP) -> np.ndarray:
    """The linear model's inputs, float64: the matrix's columns `cols`, each number under data.scale: quantile
    back at its value (within the training range), scaled as data.scale: robust scales it, and smoothly clipped
    at `clip` (None: not clipped)."""
    x = X[:, cols].astype(np.float64)
    for j, knot, shift, scale in unranked(prep, cols):
        v = (np.interp(x[:, j], knot[1], knot[0]) - shift) / scale
        x[:, j] = v / np.sqrt(1 + (v / clip) ** 2) if clip else v
    return x


STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)  # ridge's alpha, logistic regression's 1 / C: tried out of fold
# The numbers' smooth clip, or none: tried out of fold for ridge, whose fits take milliseconds. The clip bends a
# straight line (at 2 scales a value is 17% short): Carseats' linear model 0.847 -> 0.865 R2 unclipped, mpg's
# bags +0.005 on seeds 0-2; on the classification tables a logistic path costs seconds (6 s on digits) and the
# choice moved none by more than 0.002.
RIDGE_CLIPS = (CLIP, None)


def fit_linear(prep: dict, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, folds: list[np.ndarray]) -> dict:
    """One model per fold, trained on the other folds, at the regularization strength (of STRENGTHS) and clip
    (for ridge, of RIDGE_CLIPS) whose out-of-fold loss is least: {"columns", "clip", "strength", "models"} (see
    the module's docstring)."""
    cols, rest = linear_columns(prep), np.concatenate(folds)
    clips = RIDGE_CLIPS if prep["task"] == "regression" and unranked(prep, cols) else (CLIP,)
    w_rest, best = None if w is None else w[rest], None
    for clip in clips:
        x = linear_inputs(prep, X, cols, clip)
        paths = [_fold_path(prep, x[np.setdiff1d(rest, f)], np.setdiff1d(rest, f), y, w) for f in folds]
        for strength in STRENGTHS:
            linear = {"columns": cols, "clip": clip, "strength": strength, "models": [p[strength] for p in paths]}
            loss = _loss(prep, y[rest], out_of_fold(linear, prep, x, folds), w_rest)
            if best is None or loss < best[0]:
                best = (loss, linear)
    return best[1]


def _fold_path(prep: dict, x: np.ndarray, train: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> dict:
    """One fold's model at each of STRENGTHS, trained on its `train` rows (`x`). A logistic regression goes from
    the strongest regularization to the weakest, each fit starting from the last one's coefficients (the same
    optimum, about 6x fewer iterations)."""
    weights, models, last = None if w is None else w[train], {}, None
    for strength in sorted(STRENGTHS, reverse=True):
        if prep["task"] == "regression":
            coef, intercept = ridge(x, y[train].astype(np.float64), strength, weights)
            models[strength] = {"coef": coef.tolist(), "intercept": intercept}
        else:
            last = logistic(x, y[train], 1 / strength, weights, last)
            models[strength] = _full_classes(last, len(prep["classes"]))
    return models


def _full_classes(m: Logistic, k: int) -> dict:
    """A fitted logistic regression as logits over all k classes (binary: [0, z])."""
    coef, intercept = np.zeros((k, m.coef.shape[1])), np.full(k, UNSEEN)
    seen = m.classes.astype(int)
    if len(seen) == 2 and m.coef.shape[0] == 1:
        coef[seen[1]], intercept[seen[0]], intercept[seen[1]] = m.coef[0], 0.0, m.intercept[0]
    else:
        coef[seen], intercept[seen] = m.coef, m.intercept
    return {"coef": coef.tolist(), "intercept": intercept.tolist()}


def linear_scores(linear: dict, prep: dict, X: np.ndarray, model: int | None = None) -> np.ndarray:
    """Class probabilities (or predictions in the target's units) of the fold models' mean, or of one."""
    if model is None:
        scores = fold_scores(linear, prep, X)
        return sum(scores) / len(scores)
    return _scored(linear["models"][model], prep, _inputs(linear, prep, X))


def fold_scores(linear: dict, prep: dict, X: np.ndarray) -> list[np.ndarray]:
    """Each fold model's scores on the rows of X, their inputs read once."""
    x = _inputs(linear, prep, X)
    return [_scored(m, prep, x) for m in linear["models"]]


def _inputs(linear: dict, prep: dict, X: np.ndarray) -> np.ndarray:
    """linear_inputs as the fitted model reads them (a bag.json from before the clip was chosen: clipped)."""
    return linear_inputs(prep, X, linear["columns"], linear.get("clip", CLIP))


def _scored(m: dict, prep: dict, x: np.ndarray) -> np.ndarray:
    """One fold model's scores on its inputs `x` (linear_inputs)."""
    z = x @ np.asarray(m["coef"], dtype=np.float64).T + np.asarray(m["intercept"], dtype=np.float64)
    if prep["task"] == "regression":
        return unscale(prep, z)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def out_of_fold(linear: dict, prep: dict, x: np.ndarray, folds: list[np.ndarray]) -> np.ndarray:
    """Each fold's rows scored by the model that did not train on them, in the folds' order (`x`: every row's
    inputs, linear_inputs)."""
    return np.concatenate([_scored(linear["models"][k], prep, x[f]) for k, f in enumerate(folds)])


def blend_weight(prep: dict, y: np.ndarray, net: np.ndarray, lin: np.ndarray, w: np.ndarray | None) -> float:
    """The linear model's share with the least out-of-fold loss: squared error in the target's units, or the log
    loss of the mixture as predict gives it, calibrated by its own temperature (a mixture is judged by its
    calibrated probabilities: networks trained on smoothed labels are underconfident before their temperature,
    and would lose their share to the linear model for it)."""
    losses = [_loss(prep, y, (1 - share) * net + share * lin, w) for share in WEIGHTS]
    return float(WEIGHTS[int(np.argmin(losses))])


def _loss(prep: dict, y: np.ndarray, scores: np.ndarray, w: np.ndarray | None) -> float:
    if prep["task"] == "regression":
        return float(np.average((unscale(prep, y.astype(np.float64)) - scores) ** 2, weights=w))
    return log_loss(calibrated(scores, fit_temperature(scores, y, w)), y, w)
