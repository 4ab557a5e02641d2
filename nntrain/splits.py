"""Split the rows into train, validation and test: test first, then validation from the rest; stratified
for classes, seeded, with numpy alone (importing scikit-learn takes a second, a third of a small run)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def split(n: int, y: pd.Series | None, data_cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test first (test_size of all rows), then validation (val_size of the rest); stratified for classes."""
    rng = np.random.default_rng(data_cfg.split_seed if data_cfg.split_seed is not None else seed)
    labels = None if y is None else pd.factorize(y.astype(str) if y.dtype == object else y)[0]
    rest, test = _holdout(np.arange(n), labels, data_cfg.test_size, rng)
    train, val = _holdout(rest, None if labels is None else labels[rest], data_cfg.val_size, rng)
    return np.sort(train), np.sort(val), np.sort(test)


def _holdout(
    idx: np.ndarray, labels: np.ndarray | None, size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): ceil(size * n) rows held out, each class in proportion (largest remainders)."""
    n_out = int(np.ceil(size * len(idx)))
    if labels is None:
        perm = rng.permutation(idx)
        return perm[n_out:], perm[:n_out]
    counts = np.bincount(labels)  # labels are codes 0..K-1
    classes = np.flatnonzero(counts)
    share = n_out * counts[classes] / len(idx)
    take = np.floor(share).astype(int)
    short = n_out - take.sum()
    order = np.lexsort((rng.random(len(classes)), -(share - take)))  # largest remainder first, ties at random
    take[order[:short]] += 1
    out = np.zeros(len(idx), dtype=bool)
    for c, k in zip(classes, take):
        out[rng.permutation(np.flatnonzero(labels == c))[:k]] = True
    return idx[~out], idx[out]
