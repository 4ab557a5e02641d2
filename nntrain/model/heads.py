"""What the model's outputs mean: the training criterion, class probabilities or predictions in the target's
units, and the metrics of a split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nntrain import metrics as M
from nntrain.config.components import LOSSES, build
from nntrain.config.schema import Config, loss_args, loss_name, output_activation
from nntrain.data.encoding import unscale
from nntrain.model.memory import EVAL_ROWS


def make_criterion(cfg: Config, task: str, weighted: bool = False) -> Callable[..., torch.Tensor]:
    """loss(outputs, targets, row_weights=None) with the targets as stored: class indices or the standardized
    value. With row weights (built `weighted`), the weighted mean sum(w * loss) / sum(w)."""
    name = loss_name(cfg, task)
    args = loss_args(cfg, task)
    fn = build("loss", {"name": name, **args})
    per_row = build("loss", {"name": name, **args, "reduction": "none"}) if weighted else None
    one = LOSSES[name].one_output
    unplaced = [m for m in (fn, per_row) if m is not None and any(True for _ in m.buffers())]

    def criterion(out: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        while unplaced:  # a weight: [..] tensor goes to the outputs' device once, not at every step
            unplaced.pop().to(out.device)
        if one:
            out, y = out[:, 0], y.to(out.dtype)
        if w is None:
            return fn(out, y)
        return (per_row(out, y) * w).sum() / w.sum()

    return criterion


def to_proba(out: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Model outputs of a classifier -> class probabilities, whatever the output activation."""
    act = output_activation(cfg)
    if out.shape[1] == 1:  # one logit for the positive class (bce)
        p = out[:, 0] if act.gives == "probs" and not act.across_outputs else torch.sigmoid(out[:, 0])
        return torch.stack([1 - p, p], dim=1)
    if act.across_outputs and act.gives == "probs":
        return out
    if act.across_outputs and act.gives == "log_probs":
        return out.exp()
    return torch.softmax(out, dim=1)


@torch.no_grad()
def forward_all(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    model.eval()
    X = X.to(next(model.parameters()).dtype)  # a model made float64 (Run.in_float64) takes float64 rows
    return torch.cat([model(X[i : i + EVAL_ROWS]) for i in range(0, len(X), EVAL_ROWS)]) if len(X) else X[:, :0]


@dataclass
class Rows:
    """Rows to evaluate: features, stored targets, and their weights in the loss and in the metrics (None:
    all rows weigh the same)."""

    X: torch.Tensor
    y: torch.Tensor
    loss_weights: torch.Tensor | None = None
    weights: np.ndarray | None = None

    @staticmethod
    def take(X: torch.Tensor, y: torch.Tensor, loss_weights: Any, weights: Any, idx: Any) -> Rows:
        """Rows `idx` of the whole table's tensors (and of the weight arrays, when there are weights)."""
        return Rows(
            X[idx],
            y[idx],
            None if loss_weights is None else loss_weights[idx],
            None if weights is None else weights[idx],
        )


def evaluate(
    model: nn.Module, rows: Rows, cfg: Config, prep: dict, criterion: Callable, out: torch.Tensor | None = None
) -> dict[str, float]:
    return evaluate_with_scores(model, rows, cfg, prep, criterion, out)[0]


def evaluate_with_scores(
    model: nn.Module, rows: Rows, cfg: Config, prep: dict, criterion: Callable, out: torch.Tensor | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, scores): class probabilities, or predictions in the target's units. `out`: the model's outputs
    on the rows when already worked out (stacked_runs.py's members, all in one forward)."""
    out = forward_all(model, rows.X) if out is None else out
    loss = float(criterion(out, rows.y, rows.loss_weights)) if len(rows.X) else float("nan")
    if prep["task"] == "regression":
        pred = unscale(prep, out[:, 0].cpu().double().numpy())
        return M.regression(truth(prep, rows.y), pred, loss, rows.weights), pred
    proba = to_proba(out, cfg).cpu().double().numpy()
    return M.classification(rows.y.cpu().numpy(), proba, loss, rows.weights), proba


def truth(prep: dict, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Stored targets in the units the metrics use: class indices, or the original regression values."""
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
    return unscale(prep, y.astype(np.float64)) if prep["task"] == "regression" else y
