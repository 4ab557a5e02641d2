"""The bag's linear model and folds, written without scikit-learn (its import is 1.7 s of a small fit), give
scikit-learn's own: the same folds, the same coefficients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold

from nntrain.tools.folds import shuffled_folds, stratified_folds
from nntrain.tools.linear_fit import logistic, ridge


def table(n: int, d: int, k: int, seed: int):
    r = np.random.RandomState(seed)
    x = r.randn(n, d)
    y = (x[:, :3] @ r.randn(3, k)).argmax(1)
    y = np.where(r.rand(n) < 0.1, r.randint(0, k, n), y)  # some noise: the optimum is finite
    return x, y, r.rand(n) * 2


@pytest.mark.parametrize("n, d, k, weighted", [(300, 5, 2, False), (500, 20, 4, True), (120, 30, 3, False)])
def test_logistic_regression_along_its_strengths_equals_scikit_learns(n, d, k, weighted):
    x, y, w = table(n, d, k, seed=n)
    w = w if weighted else None
    theirs, mine = LogisticRegression(max_iter=500, warm_start=True), None
    for strength in (100.0, 10.0, 1.0, 0.1, 0.01):  # warm-started from the last, as the linear path fits them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.set_params(C=1 / strength).fit(x, y, sample_weight=w)
        mine = logistic(x, y, 1 / strength, w, mine)
        assert np.array_equal(mine.classes, theirs.classes_)
        assert np.allclose(mine.coef, theirs.coef_, atol=1e-8) and np.allclose(
            mine.intercept, theirs.intercept_, atol=1e-8
        )


@pytest.mark.parametrize("alpha", [0.01, 100.0])
def test_ridge_equals_scikit_learns_with_and_without_weights(alpha):
    x, _, w = table(200, 15, 2, seed=1)
    y = x @ np.random.RandomState(2).randn(15) + np.random.RandomState(3).randn(200)
    for weights in (None, w):
        theirs = Ridge(alpha=alpha).fit(x, y, sample_weight=weights)
        coef, intercept = ridge(x, y, alpha, weights)
        assert np.allclose(coef, theirs.coef_, atol=1e-10) and abs(intercept - theirs.intercept_) < 1e-10


@pytest.mark.parametrize("n", [5, 101, 1319])
@pytest.mark.parametrize("k", [2, 5, 8])
def test_folds_are_scikit_learns_for_the_same_seed(n, k):
    if k > n:
        return
    r = np.random.RandomState(n + k)
    for seed in (0, 7):
        theirs = [val for _, val in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]
        assert all(np.array_equal(a, b) for a, b in zip(shuffled_folds(n, k, seed), theirs, strict=True))
        labels = (r.randint(0, 3, n), np.array(["b", "a", "c", "a"])[r.randint(0, 4, n)], (r.rand(n) < 0.05) * 1)
        for y in labels:
            if np.all(np.unique(y, return_counts=True)[1] < k):
                continue  # scikit-learn refuses it; fold_rows too, by name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a class rarer than the folds
                theirs = [val for _, val in StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y)]
            assert all(np.array_equal(a, b) for a, b in zip(stratified_folds(y, k, seed), theirs, strict=True))
