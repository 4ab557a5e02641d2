"""The modules before an MLP's first layer, and where their columns are in the matrix: each level-code column
through its nn.Embedding, each number and date part through a periodic or piecewise-linear embedding
(model.numeric_embedding). mlp.py builds them; their layout comes from the fitted preprocessing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nntrain.config.schema import ModelConfig

if TYPE_CHECKING:
    import torch
    from torch import nn


def add_inputs(mlp: nn.Module, cfg: ModelConfig, n_inputs: int, embeds: list[list[int]], numeric: list) -> int:
    """The MLP's modules before its first layer (numeric embeddings, then level-code embeddings), and the width
    they give that layer."""
    if cfg.numeric_embedding is not None and numeric:  # before `embed`: it keeps the codes last
        spec = cfg.numeric_embedding
        mlp.add_module("num_embed", _define_num_embed()(n_inputs - len(embeds), numeric, spec))
        n_inputs += len(numeric) * (spec.size - 1)
    if embeds:  # the matrix's last len(embeds) columns are level codes, looked up first
        mlp.add_module("embed", _define_embed()(n_inputs - len(embeds), embeds))
        return n_inputs - len(embeds) + sum(d for _, d in embeds)
    return n_inputs


def first_inputs(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The first layer's inputs: x through the modules add_inputs gave `mlp`."""
    if hasattr(mlp, "num_embed"):
        x = mlp.num_embed(x)
    if hasattr(mlp, "embed"):
        x = mlp.embed(x)
    return x


def _define_embed() -> type:
    import torch
    from torch import nn

    class Embed(nn.Module):
        """The dense columns as they are, then each level-code column through its own nn.Embedding (row 0: the
        level of rare and unseen values)."""

        def __init__(self, n_dense: int, embeds: list[list[int]]):
            super().__init__()
            self.n_dense = n_dense
            self.tables = nn.ModuleList(nn.Embedding(levels, dim) for levels, dim in embeds)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            codes = x[:, self.n_dense :].long()
            looked_up = [table(codes[:, i]) for i, table in enumerate(self.tables)]
            return torch.cat([x[:, : self.n_dense], *looked_up], dim=1)

    return Embed


def _define_num_embed() -> type:
    import torch
    from torch import nn

    class NumEmbed(nn.Module):
        """Columns `at` of the dense part (the numbers and date parts) replaced by their embeddings, placed after
        the other dense columns; the level codes after the dense part stay last, for `embed`. Per column:
        periodic [cos(2 pi c x), sin(2 pi c x)] or piecewise-linear bin positions, then ReLU(Linear)."""

        def __init__(self, n_dense: int, numeric: list[tuple[int, list[float]]], spec: Any):
            super().__init__()
            at = [a for a, _ in numeric]
            self.n_dense, self.periodic = n_dense, spec.name == "periodic"
            # index tensors, not buffers (param tables count buffers as state); moved to the input's device once
            self.at, self.rest = torch.tensor(at), torch.tensor(sorted(set(range(n_dense)) - set(at)), dtype=torch.long)
            m, k = len(at), 2 * spec.frequencies if self.periodic else spec.bins
            if self.periodic:
                self.frequencies = nn.Parameter(torch.randn(m, spec.frequencies) * spec.sigma)
            else:
                lower, width = bin_table([e for _, e in numeric], spec.bins)
                self.register_buffer("lower", torch.tensor(lower), persistent=False)
                self.register_buffer("width", torch.tensor(width), persistent=False)
            bound = 1 / math.sqrt(k)  # nn.Linear's default init, per column
            self.weight = nn.Parameter(torch.empty(m, k, spec.size).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.empty(m, spec.size).uniform_(-bound, bound))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dense = x[:, : self.n_dense]
            if self.at.device != x.device:
                self.at, self.rest = self.at.to(x.device), self.rest.to(x.device)
            v = dense[:, self.at, None]
            if self.periodic:
                v = 2 * math.pi * v * self.frequencies
                features = torch.cat([torch.cos(v), torch.sin(v)], -1)
            else:
                features = ((v - self.lower) / self.width).clamp(0, 1)
            z = torch.einsum("bmk,mkd->bmd", features, self.weight) + self.bias
            return torch.cat([dense[:, self.rest], torch.relu(z).flatten(1), x[:, self.n_dense :]], dim=1)

    return NumEmbed


FAR = 1e30  # the lower edge of a column's unused bins: x never reaches them (position 0)


def bin_table(edges: list[list[float]], bins: int) -> tuple[list[list[float]], list[list[float]]]:
    """(lower edge, width) of each column's `bins` bins, from its quantile edges (at most `bins` of them kept,
    evenly among the quantiles); a column with fewer bins gets unused ones that always read 0."""
    lower, width = [], []
    for e in edges:
        if len(e) - 1 > bins:
            e = [e[round(i * (len(e) - 1) / bins)] for i in range(bins + 1)]
        lo, w = e[:-1], [b - a for a, b in zip(e[:-1], e[1:])]
        lower.append(lo + [FAR] * (bins - len(lo)))
        width.append(w + [1.0] * (bins - len(w)))
    return lower, width


MAX_BINS = 64  # model.numeric_embedding piecewise_linear: at most this many quantile bins per number


def fit_edges(X: Any, train: Any, prep: dict) -> None:
    """prep["edges"]: per number and date part, its training values' quantiles 0, 1/64, ..., 1 in the matrix's
    (scaled) units without repeats, the bins of a piecewise-linear embedding; kept in the checkpoint with the
    rest of the preprocessing. Only a run that needs them pays for them."""
    import numpy as np

    at = [a for a, _ in numerics_of(prep)]
    q = np.quantile(X[np.asarray(train)][:, at], np.linspace(0, 1, MAX_BINS + 1), axis=0)
    prep["edges"] = [[float(v) for v in np.unique(q[:, j])] for j in range(len(at))]


def numerics_of(prep: dict) -> list[tuple[int, list[float]]]:
    """(the matrix's column, its bin edges in scaled units) of each number and date part, in order; one-hot
    blocks, indicators and level codes are the other columns."""
    from nntrain.data.columns import source_names

    at, j = [], 0
    for col in prep.get("columns", []):
        n = len(source_names(prep, col))
        at += range(j, j + n)
        j += n + (len(prep["categories"][col]) if prep["kinds"][col] == "categorical" else 0)
    edges = prep.get("edges") or [[]] * len(at)
    return list(zip(at, edges))


def embeds_of(prep: dict) -> list[list[int]]:
    """[levels, size] of each embedded column, in the matrix's order: its kept levels and the unknown row."""
    cols = [c for c in prep.get("columns", []) if prep["kinds"][c] == "embedded"]
    return [[len(prep["categories"][c]) + 1, prep["embedding"][c]] for c in cols]
