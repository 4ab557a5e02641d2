"""Split the rows into train, validation and test. By default test first, then validation from the rest;
stratified for classes, seeded, with numpy alone (importing scikit-learn takes a second, a third of a small
run). A table can also bring its own split: rows of separate files (data.val_path, data.test_path), a column
naming each row's split (data.split_column), groups kept whole (data.group), or time order (data.time_column:
the latest rows are validation and test)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nntrain.errors import UserError, listed, quoted

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def split(
    frame: pd.DataFrame, rows: np.ndarray, labels: np.ndarray | None, data_cfg: Any, seed: int, given: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(train, val, test, how) over `rows` (those with a target). `labels`: class codes of every row, for
    stratifying; `given`: {"val": rows, "test": rows} that came from their own files."""
    if data_cfg.split_column:
        return (*_by_column(frame[data_cfg.split_column], rows), f"by column {quoted(data_cfg.split_column)}")
    rng = np.random.default_rng(data_cfg.split_seed if data_cfg.split_seed is not None else seed)
    fixed = {part: np.intersect1d(given[part], rows) for part in given}
    taken = [np.asarray(v, dtype=np.int64) for v in given.values()]
    rest = np.setdiff1d(rows, np.concatenate(taken)) if taken else rows
    holdout, how = _holdout_rule(frame, labels, data_cfg, rng)
    test = fixed.get("test")
    if test is None:
        rest, test = holdout(rest, data_cfg.test_size) if data_cfg.test_size else (rest, np.array([], np.int64))
    val = fixed.get("val")
    if val is None:
        rest, val = holdout(rest, data_cfg.val_size)
    if given:
        how = f"{' and '.join(f'{p} rows from data.{p}_path' for p in given)}; the other rows {how}"
    return np.sort(rest), np.sort(val), np.sort(test), how


def _holdout_rule(frame: pd.DataFrame, labels: np.ndarray | None, data_cfg: Any, rng: np.random.Generator) -> tuple:
    """holdout(rows, size) -> (kept, held out), and how it chooses, in words."""
    if data_cfg.group:
        codes = pd.factorize(frame[data_cfg.group])[0]
        return lambda idx, size: _by_group(idx, codes, size, rng), f"by group ({quoted(data_cfg.group)} kept whole)"
    if data_cfg.time_column:
        order = _time_order(frame[data_cfg.time_column], data_cfg.date_order.get(data_cfg.time_column))
        return lambda idx, size: _latest(idx, order, size), f"by time (the latest {quoted(data_cfg.time_column)})"
    if labels is None:
        return lambda idx, size: _stratified(idx, None, size, rng), "at random"
    return lambda idx, size: _stratified(idx, labels[idx], size, rng), "at random, stratified by class"


def _stratified(
    idx: np.ndarray, labels: np.ndarray | None, size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): ceil(size * n) rows held out, each class in proportion (largest remainders), but never
    a class's last row: every class keeps one (a class of one row trains, and is in no other split)."""
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
    take = np.minimum(take, counts[classes] - 1)
    for j in order:  # what a class's last row could not give, from the classes with rows to spare
        take[j] += min(counts[classes][j] - 1 - take[j], n_out - take.sum())
    out = np.zeros(len(idx), dtype=bool)
    for c, k in zip(classes, take):
        out[rng.permutation(np.flatnonzero(labels == c))[:k]] = True
    return idx[~out], idx[out]


def _by_group(
    idx: np.ndarray, codes: np.ndarray, size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups held out, in a random order, until at least ceil(size * n) rows are."""
    groups = np.unique(codes[idx])
    if len(groups) < 3:
        raise UserError(f"data.group: only {len(groups)} group(s); the three splits need a group each")
    order = rng.permutation(groups)
    rows_per = pd.Series(codes[idx]).value_counts()
    taken = np.cumsum(rows_per.reindex(order).to_numpy())
    k = min(int(np.searchsorted(taken, np.ceil(size * len(idx)))) + 1, len(order) - 1)
    out = np.isin(codes[idx], order[:k])
    return idx[~out], idx[out]


def _time_order(s: pd.Series, said: str | None) -> np.ndarray:
    """Each row's rank in time (a date column, in data.date_order's order or the one its values show, or
    numbers); a missing time is refused."""
    from nntrain.data.dates import column_order, seconds

    order = column_order(s, said)[0]
    values = seconds(s, order) if order else pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        i = int(np.flatnonzero(np.isnan(values))[0])
        raise UserError(
            f"data.time_column={s.name}: row {i + 1} holds {quoted(s.iloc[i])}, not a time; every row needs one"
        )
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank


def _latest(idx: np.ndarray, rank: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """The latest ceil(size * n) rows held out."""
    n_out = int(np.ceil(size * len(idx)))
    by_time = idx[np.argsort(rank[idx], kind="stable")]
    return by_time[: len(idx) - n_out], by_time[len(idx) - n_out :]


def _by_column(s: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's split read from its value: train, val (valid, validation) or test, in any case."""
    named = s.astype("string").str.strip().str.lower().map(SPLIT_NAMES)
    bad = named.isna().to_numpy()[rows]
    if bad.any():
        values = sorted({str(v) for v in s.iloc[rows[bad]]})
        raise UserError(
            f"data.split_column={s.name}: {int(bad.sum())} row(s) hold {listed(values, most=5, quote=True)}; "
            f"each row must say train, val or test"
        )
    parts = named.to_numpy()[rows]
    return tuple(rows[parts == p] for p in ("train", "val", "test"))
