"""Build the MLP from the config, and count its parameters layer by layer."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from .components import build, canonical, init_tensor
from .config import ModelConfig


def build_mlp(cfg: ModelConfig, n_inputs: int, n_outputs: int) -> nn.Sequential:
    """fcK -> [bnK] -> actK -> [dropK] per hidden layer, then `out` (and the output activation if any).

    Each layer gets its own activation module: a shared PReLU would share its weight.
    """
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
