"""Ridge regression and L2-regularized logistic regression, fitted as scikit-learn's Ridge and
LogisticRegression (lbfgs) fit them: the same objectives, and the logistic one minimized by the same scipy
L-BFGS-B call with the same settings. Written here because importing scikit-learn takes 1.7 s of a small
table's bagged fit (scipy.optimize: 0.6 s). tests/test_linear_fit.py checks both against scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ridge(x: np.ndarray, y: np.ndarray, alpha: float, w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Coefficients and intercept minimizing sum(w * (y - x @ coef - intercept)^2) + alpha * |coef|^2."""
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    x_mean, y_mean = np.average(x, axis=0, weights=w), np.average(y, weights=w)
    root = np.sqrt(w)[:, None]
    xc, yc = (x - x_mean) * root, (y - y_mean) * root[:, 0]
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return coef, float(y_mean - x_mean @ coef)


@dataclass
class Logistic:
    classes: np.ndarray  # the labels seen, sorted
    coef: np.ndarray  # [1, d] for two classes (the second's logit), else [classes, d]
    intercept: np.ndarray
    params: np.ndarray  # what the optimizer moved, for a warm start


def logistic(
    x: np.ndarray, y: np.ndarray, C: float, w: np.ndarray | None = None, start: Logistic | None = None
) -> Logistic:
    """Minimizes mean(w * log loss) + |coef|^2 / (2 C sum(w)), the intercept unpenalized; a binomial model for
    two classes, a multinomial one for more; from `start`'s parameters when given (a warm start)."""
    from scipy.optimize import minimize

    classes, codes = np.unique(y, return_inverse=True)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    xb = np.hstack([x, np.ones((len(x), 1))])
    rows = 1 if len(classes) == 2 else len(classes)
    objective = _binomial if rows == 1 else _multinomial
    strength = 1.0 / (C * w.sum())
    p0 = start.params if start is not None else np.zeros(rows * xb.shape[1])
    result = minimize(
        objective,
        p0,
        args=(xb, codes, w / w.sum(), strength, rows),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": 500, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    weights = result.x.reshape(rows, -1)
    return Logistic(classes, weights[:, :-1], weights[:, -1], result.x)


def _binomial(p: np.ndarray, xb: np.ndarray, codes: np.ndarray, share: np.ndarray, strength: float, rows: int):
    z = xb @ p
    loss = share @ (np.logaddexp(0.0, z) - codes * z)
    grad = xb.T @ (share * (np.exp(-np.logaddexp(0.0, -z)) - codes))
    coef = p[:-1]
    grad[:-1] += strength * coef
    return loss + 0.5 * strength * coef @ coef, grad


def _multinomial(p: np.ndarray, xb: np.ndarray, codes: np.ndarray, share: np.ndarray, strength: float, rows: int):
    weights = p.reshape(rows, -1)
    z = xb @ weights.T
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    loss = share @ (lse - z[np.arange(len(z)), codes])
    prob = np.exp(z - lse[:, None])
    prob[np.arange(len(z)), codes] -= 1.0
    grad = (prob * share[:, None]).T @ xb
    coef = weights[:, :-1]
    grad[:, :-1] += strength * coef
    return loss + 0.5 * strength * np.sum(coef * coef), grad.reshape(-1)
