"""The MLP a config describes, and its parameters counted layer by layer (from a built model, or from the
config alone without torch: `nntrain params CONFIG`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nntrain.config.components import LOSSES, build, init_tensor, record
from nntrain.config.schema import Config, ModelConfig, loss_name
from nntrain.errors import UserError, in_one_line
from nntrain.model.embeddings import add_inputs, embeds_of, first_inputs, numerics_of
from nntrain.model.shared import combine_of, members_mean, shared_class

if TYPE_CHECKING:
    import torch
    from torch import nn


def n_outputs(cfg: Config, task: str, n_classes: int) -> int:
    """One output for regression and for a loss that takes one logit (bce); else one per class."""
    if task == "regression" or LOSSES[loss_name(cfg, task)].one_output:
        return 1
    return n_classes


@dataclass(frozen=True)
class Hidden:
    """One hidden layer: Linear -> [BatchNorm1d] -> activation -> [Dropout], and its settings."""

    name: str  # fcK: how the layer is named in `nntrain params`, metrics.csv columns and warnings
    linear: nn.Linear
    norm: nn.BatchNorm1d | None
    act: nn.Module
    drop: nn.Dropout | None
    activation: dict  # the activation's spec: {"name": ..., **arguments}
    dropout: float


def mlp_class() -> type:
    """The MLP class, defined on first use so that importing this module needs no torch."""
    global _MLP
    if _MLP is None:
        _MLP = _define_mlp()
    return _MLP


_MLP: type | None = None


def _define_mlp() -> type:
    from torch import nn

    class MLP(nn.Sequential):
        """fcK -> [bnK] -> actK -> [dropK] per hidden layer, then `out` (and `out_act`, the output activation).

        The children keep these names, the state_dict keys of every checkpoint nntrain has written, so old
        checkpoints load as they are. Code outside this module finds the layers through `hidden` (one Hidden
        record per layer, in order) and `out`, never by reading a name."""

        def __init__(
            self, cfg: ModelConfig, n_inputs: int, n_out: int, embeds: list[list[int]] = (), numeric: list = ()
        ):
            super().__init__()
            hidden, width = [], add_inputs(self, cfg, n_inputs, embeds, numeric)
            for k, layer in enumerate(cfg.resolved_layers(), start=1):
                hidden.append(self._hidden(k, width, layer))
                width = layer.size
            self.hidden = tuple(hidden)
            self.add_module("out", _linear(width, n_out, cfg.init))
            spec = cfg.output_activation
            out_act = record("output_activation", spec["name"])
            if out_act.family != "linear":  # identity adds no module
                extra = {"dim": 1} if out_act.across_outputs else {}
                self.add_module("out_act", build("output_activation", spec, **extra))

        def _hidden(self, k: int, width: int, layer: Any) -> Hidden:
            # each layer builds its own activation module: a shared PReLU would share its weight
            parts = {
                f"fc{k}": _linear(width, layer.size, layer.init),
                f"bn{k}": nn.BatchNorm1d(layer.size) if layer.batch_norm else None,
                f"act{k}": build("activation", layer.activation),
                f"drop{k}": nn.Dropout(layer.dropout) if layer.dropout else None,
            }
            for name, module in parts.items():
                if module is not None:
                    self.add_module(name, module)
            linear, norm, act, drop = parts.values()
            return Hidden(f"fc{k}", linear, norm, act, drop, layer.activation, float(layer.dropout or 0.0))

        def hidden_outputs(self, x: torch.Tensor) -> Iterator[tuple[Hidden, torch.Tensor, torch.Tensor]]:
            """(layer, pre-activation, activation) of each hidden layer in turn, as the forward computes them."""
            return self.layer_outputs(first_inputs(self, x))

        def layer_outputs(self, x: torch.Tensor) -> Iterator[tuple[Hidden, torch.Tensor, torch.Tensor]]:
            """hidden_outputs from the first layer's inputs."""
            for layer in self.hidden:
                pre = layer.linear(x)
                if layer.norm is not None:
                    pre = layer.norm(pre)
                a = layer.act(pre)
                yield layer, pre, a
                x = a if layer.drop is None else layer.drop(a)

    return MLP


def build_mlp(
    cfg: ModelConfig,
    n_inputs: int,
    n_out: int,
    embeds: list[list[int]] = (),
    task: str | None = None,
    numeric: list = (),
) -> nn.Module:
    """The MLP of a model config (with model.ensemble, its members: `task` says how their outputs combine).
    planned_table() counts the same layers without building them: a change here is a change there (a test
    compares the two)."""
    if cfg.ensemble > 1:
        return _define_ensemble()(cfg, n_inputs, n_out, embeds, task, numeric)
    if cfg.shared_members > 1:
        return shared_class(mlp_class())(cfg, n_inputs, n_out, embeds, task, numeric)
    return mlp_class()(cfg, n_inputs, n_out, embeds, numeric)


def _define_ensemble() -> type:
    import torch
    from torch import nn

    class Ensemble(nn.Module):
        """model.ensemble MLPs of one shape (children members.0, members.1, ...), trained together (stacked.py).
        The forward gives what one MLP's would for the members' mean (members_mean). `hidden` and `out` are the
        first member's, for the header and the diagnostics."""

        def __init__(self, cfg: ModelConfig, n_inputs: int, n_out: int, embeds: list, task: str | None, numeric: list):
            super().__init__()
            members = (mlp_class()(cfg, n_inputs, n_out, embeds, numeric) for _ in range(cfg.ensemble))
            self.members = nn.ModuleList(members)
            self.combine = combine_of(task, n_out)

        @property
        def hidden(self) -> tuple:
            return self.members[0].hidden

        @property
        def out(self) -> nn.Linear:
            return self.members[0].out

        def hidden_outputs(self, x: torch.Tensor) -> Iterator:
            return self.members[0].hidden_outputs(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return members_mean(torch.stack([m(x) for m in self.members]), self.combine)

    return Ensemble


def _linear(n_in: int, n_out: int, init: Any) -> nn.Linear:
    import torch
    from torch import nn

    fc = nn.Linear(n_in, n_out)
    with torch.no_grad():
        init_tensor(init.weight, fc.weight)
        init_tensor(init.bias, fc.bias)
    return fc


def check_weights(cfg: ModelConfig, ckpt: dict, path: Path) -> None:
    """Refuse stored weights that lack the shapes the config builds: checked from the config before anything is
    built, so a checkpoint that claims a huge layer allocates nothing."""
    prep = ckpt["prep"]
    for row in planned_table(cfg, ckpt["n_inputs"], ckpt["n_outputs"], embeds_of(prep), numerics_of(prep))["layers"]:
        key = f"{row['layer']}.weight"
        got = ckpt["model"].get(key)
        shape = list(got.shape) if hasattr(got, "shape") else None
        if shape != row["shape"]:
            raise UserError(
                f"{path}: its weights do not fit its own config: {key} is {shape or 'missing'} where "
                f"its config makes {row['shape']}"
            )


def load_weights(model: nn.Module, ckpt: dict, path: Path) -> None:
    """model.load_state_dict(ckpt["model"]); what check_weights cannot see (a bias or a buffer of another shape,
    a key too many) is a UserError too."""
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise UserError(f"{path}: its weights do not fit its own config ({in_one_line(e)})") from None


def param_table(model: nn.Module) -> dict:
    """Per-module parameters (weights, biases, others), buffers apart, and memory in bytes."""
    rows = []
    for name, module in model.named_modules():
        params = dict(module.named_parameters(recurse=False))
        buffers = [b for b in module.buffers(recurse=False) if b.is_floating_point()]
        if not params and not buffers:
            continue
        weight = params.get("weight")
        bias = params.get("bias")
        total = sum(p.numel() for p in params.values())
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "shape": list(weight.shape) if weight is not None else [],
                "weights": weight.numel() if weight is not None else 0,
                "biases": bias.numel() if bias is not None else 0,
                "total": total,
                "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
                "buffers": sum(b.numel() for b in buffers),
            }
        )
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


def planned_table(
    cfg: ModelConfig, n_inputs: int, n_out: int, embeds: list[list[int]] = (), numeric: list = ()
) -> dict:
    """param_table(build_mlp(cfg, n_inputs, n_out, embeds, numeric=numeric)), worked out from the config
    without torch."""
    rows, width = [], n_inputs - len(embeds) + sum(d for _, d in embeds)

    def row(*args: Any, **kwargs: Any) -> None:
        rows.append(_row(*args, **kwargs))

    def activation(name: str, spec: dict, kind: str) -> None:
        r = record(kind, spec["name"])
        if r.parameters:
            row(name, r.attr.rpartition(":")[2], [r.parameters])

    spec = cfg.numeric_embedding
    if spec is not None and numeric:
        m = len(numeric)
        if spec.name == "periodic":
            shape, other, buffers = [m, 2 * spec.frequencies, spec.size], m * spec.frequencies, 0
        else:
            shape, other, buffers = [m, spec.bins, spec.size], 0, 2 * m * spec.bins  # each bin's edge and width
        row("num_embed", "NumEmbed", shape, m * spec.size, buffers=buffers, other=other)
        width += m * (spec.size - 1)
    for i, (levels, dim) in enumerate(embeds):
        row(f"embed.tables.{i}", "Embedding", [levels, dim])
    first = width  # the first layer's inputs
    for k, layer in enumerate(cfg.resolved_layers(), start=1):
        row(f"fc{k}", "Linear", [layer.size, width], layer.size)
        if layer.batch_norm:
            row(f"bn{k}", "BatchNorm1d", [layer.size], layer.size, buffers=2 * layer.size)  # running mean and var
        activation(f"act{k}", layer.activation, "activation")
        width = layer.size
    shared = cfg.shared_members  # their output layers in one, then their scalings of the first layer's inputs
    row("out", "Linear", [shared * n_out, width], shared * n_out)
    activation("out_act", cfg.output_activation, "output_activation")
    if shared > 1:
        row("adapter", "Adapter", [shared, first])
    if cfg.ensemble > 1:
        rows = [{**r, "layer": f"members.{i}.{r['layer']}"} for i in range(cfg.ensemble) for r in rows]
    total = sum(r["total"] for r in rows)
    batch_norms = sum(r["type"] == "BatchNorm1d" for r in rows)  # each member's
    buffers = sum(r["buffers"] for r in rows)
    # float32 parameters and running statistics, and each batch norm's int64 count of batches
    return {
        "layers": rows,
        "total": total,
        "trainable": total,
        "non_trainable": 0,
        "buffers": buffers,
        "bytes": 4 * (total + buffers) + 8 * batch_norms,
    }


def _row(name: str, kind: str, weight: list[int], biases: int = 0, buffers: int = 0, other: int = 0) -> dict:
    """One layer's row of param_table, from its weight's shape and its other counts."""
    weights = math.prod(weight)
    total = weights + biases + other
    return {
        "layer": name,
        "type": kind,
        "shape": weight,
        "weights": weights,
        "biases": biases,
        "total": total,
        "trainable": total,
        "buffers": buffers,
    }
