"""Rows cut into k folds as scikit-learn's KFold and StratifiedKFold (shuffle=True) cut them: the same rows for
the same seed, without importing scikit-learn, whose import is 1.7 s of a small table's bagged fit. A bag's
folds and cv's come from here; tests/test_linear_fit.py checks them equal to scikit-learn's."""

from __future__ import annotations

import numpy as np


def shuffled_folds(n: int, k: int, seed: int | None) -> list[np.ndarray]:
    """Row positions 0..n-1 shuffled by the seed and cut into k runs, the first n % k of them one row longer;
    each fold's positions in order."""
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    return [np.sort(fold) for fold in np.split(order, np.cumsum(sizes)[:-1])]


def stratified_folds(y: np.ndarray, k: int, seed: int | None) -> list[np.ndarray]:
    """Each fold's row positions, every class spread over the folds as evenly as its count allows: the
    classes numbered in order of first appearance, each fold's share of a class dealt round robin over the
    rows sorted by class, then each class's fold labels shuffled by the seed."""
    rng = np.random.RandomState(seed)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    code = np.argsort(np.argsort(first))[inverse.reshape(-1)]
    n_classes = len(first)
    ordered = np.sort(code)
    allocation = np.stack([np.bincount(ordered[i::k], minlength=n_classes) for i in range(k)])
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in range(n_classes):
        labels = np.repeat(np.arange(k), allocation[:, c])
        rng.shuffle(labels)
        fold_of[code == c] = labels
    return [np.flatnonzero(fold_of == i) for i in range(k)]
