"""model.shared_members: k members that share one MLP (TabM-mini; Gorishniy et al., "TabM", ICLR 2025).

The members share the embeddings and every hidden layer. Member j multiplies the first layer's inputs elementwise
by its own row of `adapter.weight` and has its own output layer (rows j * outputs to (j + 1) * outputs of `out`).
A step trains on the mean of the members' losses on one batch (members_loss); eval, predict and export read the
forward, the members' mean (members_mean, which model.ensemble's members combine with too). The members cost one
MLP's parameters and k times its rows through the hidden layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nntrain.config.schema import ModelConfig
from nntrain.model.embeddings import first_inputs

if TYPE_CHECKING:
    import torch


def sections(cfg: ModelConfig, n_inputs: int, embeds: list, numeric: list) -> list[int]:
    """The width of each source column in the first layer's inputs (embeddings.add_inputs' layout): 1 per plain
    column, then model.numeric_embedding's size per embedded number, then each level-code table's size."""
    n_dense, spec = n_inputs - len(embeds), cfg.numeric_embedding
    if spec is not None and numeric:
        plain = [1] * (n_dense - len(numeric)) + [spec.size] * len(numeric)
    else:
        plain = [1] * n_dense
    return plain + [d for _, d in embeds]


def members_loss(criterion: Any, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of the members' losses on one batch: z [k, rows, outputs]; y and w the batch's own. As one
    criterion call on the k copies of the batch: a mean (weighted or not) of k equal-sized parts is their mean."""
    k = z.shape[0]
    tiled = y.repeat(k, *[1] * (y.dim() - 1))
    return criterion(z.flatten(0, 1), tiled, None if w is None else w.repeat(k))


def scaled(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each member's scaling of the rows: h [..., rows, inputs] by weight [..., k, inputs] -> [..., k * rows,
    inputs] (the leading dimensions: a stack's members, stacked_batched.py)."""
    return (h.unsqueeze(-3) * weight.unsqueeze(-2)).flatten(-3, -2)


def heads(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> torch.Tensor:
    """Each member's own output layer on its rows: h [..., k * rows, hidden], `out`'s weight [..., k * outputs,
    hidden] and bias [..., k * outputs] -> [..., k, rows, outputs]."""
    lead, n = h.shape[:-2], bias.shape[-1] // k
    W = weight.view(*lead, k, n, -1).transpose(-1, -2)
    return h.view(*lead, k, h.shape[-2] // k, -1) @ W + bias.view(*lead, k, 1, n)


def is_shared(model: Any) -> bool:
    """Whether `model` is model.shared_members' (or a torch.compile wrapper of one)."""
    return hasattr(model, "member_outputs")


def step_loss(model: Any, criterion: Any, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> Any:
    """The loss a training step takes: the criterion of the model's output, or shared members' mean loss.
    `model` may be a torch.compile wrapper, which passes attribute lookups to the module it wraps."""
    if is_shared(model):
        return members_loss(criterion, model(x, members=True), y, w)
    return criterion(model(x), y, w)


def combine_of(task: str | None, n_out: int) -> str:
    """How members' outputs combine: mean (regression), softmax (class logits) or sigmoid (one bce logit)."""
    if task is None:
        raise ValueError("an ensemble needs its task to combine its members")
    return "mean" if task == "regression" else "softmax" if n_out > 1 else "sigmoid"


def members_mean(z: torch.Tensor, combine: str) -> torch.Tensor:
    """One output for the members' mean, from their outputs z [members, ...]: the log of the mean class
    probabilities (logits to a softmax), the logit of the mean probability (one bce logit), the mean prediction
    (regression)."""
    import torch
    from torch.nn.functional import logsigmoid

    if combine == "mean":
        return z.mean(0)
    log_k = math.log(z.shape[0])
    if combine == "softmax":
        return torch.logsumexp(torch.log_softmax(z, -1), 0) - log_k
    log_p = torch.logsumexp(logsigmoid(z), 0) - log_k
    log_q = torch.logsumexp(logsigmoid(-z), 0) - log_k
    return log_p - log_q  # the logit of the mean probability


def shared_class(mlp: type) -> type:
    """The SharedMembers class on mlp.py's MLP class, defined on first use so that importing this module needs no
    torch."""
    global _SHARED
    if _SHARED is None:
        _SHARED = _define(mlp)
    return _SHARED


_SHARED: type | None = None


def _define(mlp: type) -> type:
    import torch
    from torch import nn

    class Adapter(nn.Module):
        """Each member's elementwise scaling of the first layer's inputs: weight [k, inputs]."""

        def __init__(self, weight: torch.Tensor):
            super().__init__()
            self.weight = nn.Parameter(weight)

    class SharedMembers(mlp):
        """An MLP whose `out` holds k members' output layers, and its `adapter`. The first values of a member's
        scaling are +1 or -1 at random, one sign per source column (TabM-mini's), so the members start apart."""

        def __init__(self, cfg: ModelConfig, n_inputs: int, n_out: int, embeds: list, task: str | None, numeric: list):
            k = cfg.shared_members
            super().__init__(cfg, n_inputs, k * n_out, embeds, numeric)
            self.n_shared, self.n_out, self.combine = k, n_out, combine_of(task, n_out)
            widths = torch.tensor(sections(cfg, n_inputs, embeds, numeric))
            signs = torch.randint(0, 2, (k, len(widths))).float() * 2 - 1
            self.adapter = Adapter(signs.repeat_interleave(widths, dim=1))

        def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
            """Each member's outputs, [k, rows, outputs]."""
            h = scaled(first_inputs(self, x), self.adapter.weight)  # [k * rows, inputs]
            for layer in self.hidden:
                h = layer.linear(h)
                h = layer.act(h if layer.norm is None else layer.norm(h))
                h = h if layer.drop is None else layer.drop(h)
            return heads(h, self.out.weight, self.out.bias, self.n_shared)

        def forward(self, x: torch.Tensor, members: bool = False) -> torch.Tensor:
            """The members' mean (as one model's output), or with `members` each member's outputs."""
            z = self.member_outputs(x)
            return z if members else members_mean(z, self.combine)

        def hidden_outputs(self, x: torch.Tensor) -> Iterator:
            """The first member's hidden layers, for the diagnostics."""
            return self.layer_outputs(first_inputs(self, x) * self.adapter.weight[0])

    return SharedMembers
