"""The metrics: which exist for which task and which way is better (one table), their values on numpy
arrays, and the trivial baseline every report shows beside them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CLASSES = frozenset({"multiclass", "binary"})
REGRESSION = frozenset({"regression"})


@dataclass(frozen=True)
class Metric:
    tasks: frozenset[str]
    maximize: bool  # higher is better


# Every name classification() and regression() return (a test keeps the two in step); "val_" + name is a
# monitor, "test" holds them after training.
METRICS: dict[str, Metric] = {
    "loss": Metric(CLASSES | REGRESSION, maximize=False),
    "accuracy": Metric(CLASSES, maximize=True),
    "balanced_accuracy": Metric(CLASSES, maximize=True),
    "f1_macro": Metric(CLASSES, maximize=True),
    "roc_auc": Metric(frozenset({"binary"}), maximize=True),
    "mse": Metric(REGRESSION, maximize=False),
    "rmse": Metric(REGRESSION, maximize=False),
    "mae": Metric(REGRESSION, maximize=False),
    "r2": Metric(REGRESSION, maximize=True),
}
HEADLINE = {"multiclass": "accuracy", "binary": "accuracy", "regression": "r2"}  # the one a table shows
# train.monitor: val_f1 is val_f1_macro
ALIASES = {"f1": "f1_macro", "acc": "accuracy", "auc": "roc_auc", "bacc": "balanced_accuracy"}


def monitor_name(text: str) -> str:
    """train.monitor as written -> the metrics.csv column it names: val_f1 -> val_f1_macro."""
    m = str(text).strip().lower()
    short = m.removeprefix("val_")
    return f"val_{ALIASES[short]}" if m.startswith("val_") and short in ALIASES else m


def monitors(task: str) -> set[str]:
    """The metrics.csv columns a run of this task can monitor."""
    return {f"val_{name}" for name, m in METRICS.items() if task in m.tasks}


def maximize(name: str) -> bool:
    """Whether higher is better, for a metric name with or without its val_ / test prefix."""
    metric = METRICS.get(str(name).removeprefix("val_"))
    return bool(metric and metric.maximize)


def headline(task: str) -> str:
    """The one test metric a table shows for a run of this task."""
    return HEADLINE.get(task, "accuracy")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, w: np.ndarray | None = None) -> np.ndarray:
    """Rows are true classes, columns predicted ones; each row counts `w` (its weight) when given."""
    cells = np.bincount(y_true * n_classes + y_pred, weights=w, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes)


def balanced_accuracy(cm: np.ndarray) -> float:
    """The mean recall over the classes that have rows (as scikit-learn's balanced_accuracy_score)."""
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.0


def f1_macro(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    present = cm.sum(axis=1) + cm.sum(axis=0) > 0  # classes absent from both sides do not count (as sklearn)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    pos, neg = int(y_true.sum()), int(len(y_true) - y_true.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y_true == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def threshold_curves(y_true: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """ROC and precision-recall points at every distinct score, highest threshold first (as scikit-learn's
    roc_curve and precision_recall_curve, without importing scikit-learn: a second of start-up)."""
    order = np.argsort(-score, kind="mergesort")
    y, s = y_true[order] == 1, score[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each run of equal scores
    tp = np.cumsum(y)[last].astype(float)
    fp = (last + 1) - tp
    pos, neg = tp[-1], fp[-1]
    precision = tp / (tp + fp)
    recall = tp / pos if pos else np.zeros_like(tp)
    return {
        "fpr": np.r_[0, fp / neg if neg else fp],
        "tpr": np.r_[0, recall],
        "precision": np.r_[1, precision],
        "recall": np.r_[0, recall],
        "average_precision": float(np.sum(np.diff(np.r_[0, recall]) * precision)),
    }


def classification(
    y_true: np.ndarray, proba: np.ndarray, loss: float | None = None, w: np.ndarray | None = None
) -> dict[str, float]:
    """proba: (n, k) class probabilities; `w`: row weights (roc_auc stays unweighted)."""
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    cm = confusion(y_true, pred, k, w)
    accuracy = float(np.trace(cm) / cm.sum()) if cm.sum() > 0 else float("nan")
    out = {"accuracy": accuracy, "balanced_accuracy": balanced_accuracy(cm), "f1_macro": f1_macro(cm)}
    if loss is not None:
        out["loss"] = float(loss)
    if k == 2:
        out["roc_auc"] = roc_auc(y_true, proba[:, 1])
    return out


def regression(
    y_true: np.ndarray, y_pred: np.ndarray, loss: float | None = None, w: np.ndarray | None = None
) -> dict[str, float]:
    """`w`: row weights, for weighted means (all zero: every metric is NaN)."""
    if w is not None and not np.sum(w) > 0:
        return {
            "mse": math.nan,
            "rmse": math.nan,
            "mae": math.nan,
            "r2": math.nan,
            **({"loss": loss} if loss is not None else {}),
        }
    err = y_pred - y_true
    mse = float(np.average(err**2, weights=w))
    var = float(np.average((y_true - np.average(y_true, weights=w)) ** 2, weights=w))
    # A constant target's variance comes out as rounding error (1e-30), not 0: r2 would be -1e30
    defined = var > 0 and not constant(y_true, w)
    out = {
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(np.average(np.abs(err), weights=w)),
        "r2": 1 - mse / var if defined else float("nan"),
    }
    if loss is not None:
        out["loss"] = float(loss)
    return out


def shown(v: float | None) -> str:
    """A metric as a table prints it: 4 decimals, or 4 significant digits below 0.001 (an rmse of 3e-10 in a
    target of small units is not 0.0000); one undefined there (r2 of a constant target, NaN) as n/a."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return short_of_one(v, lambda d: f"{v:.{d}f}") if v == 0 or abs(v) >= 1e-3 else f"{v:.4g}"


def short_of_one(v: float, text: Callable[[int], str], digits: int = 4) -> str:
    """text(digits), with the digits more that keep a value short of 1 from reading as exactly 1: an accuracy of
    0.99997 (one error in 30,000 rows) is no perfect 1.0000."""
    while v != 1 and float(text(digits)) == 1 and digits < 12:
        digits += 1
    return text(digits)


def no_better(values: dict[str, float | None], base: dict[str, float | None]) -> str | None:
    """The warning where the headline metric (accuracy, r2) is no better than the trivial baseline's: a model that
    predicts the majority class of an imbalanced table scores a high accuracy that only its baseline shows up."""
    name = next((n for n in dict.fromkeys(HEADLINE.values()) if n in values and n in base), None)
    v, b = (values[name], base[name]) if name else (None, None)
    if v is None or b is None or not (math.isfinite(v) and math.isfinite(b)) or v > b:
        return None
    constant = "mean" if name == "r2" else "most common class"
    return (
        f"warning: {name} {shown(v)} is no better than the baseline's {shown(b)} (always the training split's "
        f"{constant}): the model has learned nothing a constant prediction lacks"
    )


def _counted(y_true: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """The target over the rows that count (weight above 0)."""
    return np.asarray(y_true) if w is None else np.asarray(y_true)[np.asarray(w) > 0]


def constant(y_true: np.ndarray, w: np.ndarray | None = None) -> bool:
    """Whether the target takes one value over the rows that count: r2 is undefined there."""
    y = _counted(y_true, w)
    return len(y) > 0 and bool(np.all(y == y[0]))


def r2_notes(task: str, y_true: np.ndarray, w: np.ndarray | None, where: str) -> list[str]:
    """The line saying why r2 is missing for these rows (`where`: "the test split", a file), or none."""
    if task != "regression" or not constant(y_true, w):
        return []
    value = _counted(y_true, w)[0]
    return [
        f"the target is constant over the {len(y_true):,} rows of {where} (every one {value:g}): r2 is undefined "
        "there, shown as n/a (null in JSON)"
    ]


def baseline(task: str, y_true: np.ndarray, prep: dict, w: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of the trivial model: the training split's majority class, or its mean."""
    if task == "regression":
        return regression(y_true, np.full(len(y_true), prep["baseline"]), w=w)
    k = len(prep["classes"])
    proba = np.zeros((len(y_true), k))
    proba[:, prep["baseline"]] = 1.0
    out = classification(y_true, proba, w=w)
    if "roc_auc" in out:
        out["roc_auc"] = 0.5
    return out
