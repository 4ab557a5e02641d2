"""data.scale: quantile. Each number goes through its training values' quantiles onto a standard normal, as
scikit-learn's QuantileTransformer(output_distribution="normal") maps it (the preprocessing TabM and pytabkit
give their MLPs): a heavy tail or a spike of equal values is spread by rank, where a scale and a clip squeeze it.

A column's map is plain data, its knots: training quantiles (strictly increasing; a value shared by several
quantiles is one knot at the middle of their levels) and each knot's normal value. Between knots the map is
linear, beyond them flat. encode applies it with numpy's interp; the exported graph with a branchless binary
search (export_graph.py), the same piecewise-linear function.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

MAX_KNOTS = 1_000  # QuantileTransformer's default n_quantiles
ROWS_PER_KNOT = 30  # TabM's rule: n_quantiles = max(min(rows // 30, 1000), 10)
MIN_KNOTS = 10


def knots(v: np.ndarray) -> list[list[float]]:
    """[knots, normal values] of one column's training values (NaN-free). The levels are kept within half a
    row of 0 and 1 (QuantileTransformer's within 1e-7: its training minimum maps to -5.2 on any number of rows,
    -2.7 here on 160 rows, -4.3 on 40,000)."""
    n = min(len(v), max(min(len(v) // ROWS_PER_KNOT, MAX_KNOTS), MIN_KNOTS))
    levels = np.linspace(0.0, 1.0, max(n, 1))
    at = np.quantile(v, levels) if len(v) else np.zeros(1)
    values, first, counts = np.unique(at, return_index=True, return_counts=True)
    middle = (levels[first] + levels[first + counts - 1]) / 2  # tied quantiles: one knot, their middle level
    normal = NormalDist()
    tail = 0.5 / max(len(v), 1)
    z = [normal.inv_cdf(float(p)) for p in np.clip(middle, tail, 1 - tail)]
    return [values.tolist(), z]


def mapped(v: np.ndarray, knot: list[list[float]]) -> np.ndarray:
    """A column's values through its knots (NaN stays NaN)."""
    return np.interp(v, knot[0], knot[1])
