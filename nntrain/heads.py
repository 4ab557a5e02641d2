"""What the model's outputs mean: the training criterion, class probabilities or predictions in the target's
units, and the metrics of a split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .components import LOSSES, build
from .config import Config, loss_name, output_activation
from .encoding import unscale
from .memory import EVAL_ROWS


def make_criterion(cfg: Config, task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(outputs, targets) with the targets as stored: class indices or the standardized value."""
    name = loss_name(cfg, task)
    spec = {"name": name, **{k: v for k, v in cfg.loss.items() if k != "name"}}
    fn = build("loss", spec)
    if not LOSSES[name].one_output:
        return fn
    return lambda out, y: fn(out[:, 0], y.to(out.dtype))


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
    return torch.cat([model(X[i : i + EVAL_ROWS]) for i in range(0, len(X), EVAL_ROWS)]) if len(X) else X[:, :0]


def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg: Config, prep: dict, criterion: Callable
) -> dict[str, float]:
    return evaluate_with_scores(model, X, y, cfg, prep, criterion)[0]


def evaluate_with_scores(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg: Config, prep: dict, criterion: Callable
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, scores): class probabilities, or predictions in the target's units."""
    out = forward_all(model, X)
    loss = float(criterion(out, y)) if len(X) else float("nan")
    if prep["task"] == "regression":
        pred = unscale(prep, out[:, 0].cpu().double().numpy())
        return M.regression(truth(prep, y), pred, loss), pred
    proba = to_proba(out, cfg).cpu().double().numpy()
    return M.classification(y.cpu().numpy(), proba, loss), proba


def truth(prep: dict, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Stored targets in the units the metrics use: class indices, or the original regression values."""
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
    return unscale(prep, y.astype(np.float64)) if prep["task"] == "regression" else y
