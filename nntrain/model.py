"""Build the MLP from the config, and count its parameters layer by layer (from a built model, or from the
config alone without torch: `nntrain params CONFIG`)."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .components import build, canonical, init_tensor
from .config import Config, ModelConfig, loss_name

if TYPE_CHECKING:
    from torch import nn


def n_outputs(cfg: Config, task: str, n_classes: int) -> int:
    if task == "regression" or loss_name(cfg, task) == "bce":
        return 1
    return n_classes


def build_mlp(cfg: ModelConfig, n_inputs: int, n_outputs: int) -> nn.Sequential:
    """fcK -> [bnK] -> actK -> [dropK] per hidden layer, then `out` (and the output activation if any).

    Each layer gets its own activation module: a shared PReLU would share its weight. planned_table() counts
    the same layers without building them: a change here is a change there (a test compares the two).
    """
    from torch import nn

    parts: OrderedDict[str, nn.Module] = OrderedDict()
    width = n_inputs
    for k, layer in enumerate(cfg.resolved_layers(), start=1):
        fc = nn.Linear(width, layer.size)
        _init_linear(fc, layer.init)
        parts[f"fc{k}"] = fc
        if layer.batch_norm:
            parts[f"bn{k}"] = nn.BatchNorm1d(layer.size)
        parts[f"act{k}"] = build("activation", layer.activation)
        if layer.dropout:
            parts[f"drop{k}"] = nn.Dropout(layer.dropout)
        width = layer.size
    out = nn.Linear(width, n_outputs)
    _init_linear(out, cfg.init)
    parts["out"] = out
    out_act = canonical("output_activation", cfg.output_activation["name"])
    if out_act != "identity":
        extra = {"dim": 1} if out_act in ("softmax", "log_softmax") else {}
        parts["out_act"] = build("output_activation", cfg.output_activation, **extra)
    return nn.Sequential(parts)


def _init_linear(fc: nn.Linear, init: Any) -> None:
    import torch

    with torch.no_grad():
        init_tensor(init.weight, fc.weight)
        init_tensor(init.bias, fc.bias)


def param_table(model: nn.Module) -> dict:
    """Per-module parameters (weights, biases, others), buffers apart, and memory in bytes."""
    rows = []
    for name, module in model.named_children():
        params = dict(module.named_parameters(recurse=False))
        buffers = [b for b in module.buffers(recurse=False) if b.is_floating_point()]
        if not params and not buffers:
            continue
        weight = params.get("weight")
        bias = params.get("bias")
        total = sum(p.numel() for p in params.values())
        rows.append({
            "layer": name,
            "type": type(module).__name__,
            "shape": list(weight.shape) if weight is not None else [],
            "weights": weight.numel() if weight is not None else 0,
            "biases": bias.numel() if bias is not None else 0,
            "total": total,
            "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
            "buffers": sum(b.numel() for b in buffers),
        })
    params = list(model.parameters())
    return {
        "layers": rows,
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "non_trainable": sum(p.numel() for p in params if not p.requires_grad),
        "buffers": sum(r["buffers"] for r in rows),
        "bytes": sum(p.numel() * p.element_size() for p in params)
        + sum(b.numel() * b.element_size() for b in model.buffers()),
    }


def planned_table(cfg: ModelConfig, n_inputs: int, n_outputs: int) -> dict:
    """param_table(build_mlp(cfg, n_inputs, n_outputs)), worked out from the config without torch."""
    rows, width = [], n_inputs

    def row(name: str, kind: str, weight: list[int], biases: int = 0, buffers: int = 0) -> None:
        weights = math.prod(weight)
        rows.append({"layer": name, "type": kind, "shape": weight, "weights": weights, "biases": biases,
                     "total": weights + biases, "trainable": weights + biases, "buffers": buffers})

    def prelu(name: str, spec: dict, kind: str) -> None:
        if canonical(kind, spec["name"]) == "prelu":  # one slope: num_parameters is nntrain's to set, and it keeps 1
            row(name, "PReLU", [1])

    for k, layer in enumerate(cfg.resolved_layers(), start=1):
        row(f"fc{k}", "Linear", [layer.size, width], layer.size)
        if layer.batch_norm:
            row(f"bn{k}", "BatchNorm1d", [layer.size], layer.size, buffers=2 * layer.size)  # running mean and var
        prelu(f"act{k}", layer.activation, "activation")
        width = layer.size
    row("out", "Linear", [n_outputs, width], n_outputs)
    prelu("out_act", cfg.output_activation, "output_activation")
    total = sum(r["total"] for r in rows)
    batch_norms = sum(r["type"] == "BatchNorm1d" for r in rows)
    buffers = sum(r["buffers"] for r in rows)
    # float32 parameters and running statistics, and each batch norm's int64 count of batches
    return {"layers": rows, "total": total, "trainable": total, "non_trainable": 0, "buffers": buffers,
            "bytes": 4 * (total + buffers) + 8 * batch_norms}
