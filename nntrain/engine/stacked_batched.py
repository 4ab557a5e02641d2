"""Autograd through the members' forward written with batched ops: each layer one baddbmm over the members, each
numeric embedding one einsum, each level-code table one lookup, the members' own dropout masks in one draw.
It has about one member's number of ops where vmap's functional_call pays its overhead on every op of every
step (5 members of the recipe's model at batches of 64: about half the time of vmap's step, DESIGN.md: a small
step is per-op overhead). It covers the MLPs of mlp.py without batch norm, a PReLU or an output activation;
stacked.AutogradStack (vmap) trains the rest; stacked_step chooses among the three.
tests/test_stack.py checks each member against a lone model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nntrain.engine.stacked import (
    AutogradStack,
    FusedStack,
    Stack,
    _batched,
    baddbmm,
    dropout_mask,
    penalized,
    per_member,
)
from nntrain.model.shared import heads, is_shared, members_loss, members_mean, scaled


def stacked_step(stack: Stack, fused: bool, l1: list[float], loss: str, criterion: object) -> object:
    """The members' step: written out where the fused path covers their model, else autograd through their
    batched forward (stacked_batched.py) where that covers it, else autograd under vmap."""
    if fused:
        return FusedStack(stack, l1, loss)
    return BatchedStack(stack, l1, criterion) if covers(stack.models[0]) else AutogradStack(stack, l1, criterion)


def covers(model: nn.Module) -> bool:
    """Whether BatchedStack can train members shaped as `model`."""
    hidden = getattr(model, "hidden", None)
    if hidden is None or not hasattr(model, "out") or hasattr(model, "out_act"):
        return False  # model.ensemble's members, or an output activation
    return all(h.norm is None and not any(True for _ in h.act.parameters()) for h in hidden)


class BatchedStack(AutogradStack):
    """The step of stacked.py for K members of a model covers() accepts: x [B, F] (the same rows for all) or
    [K, B, F]; y, w [K, B]. The members' losses are the criterion's, member by member (under vmap, torch's
    cross entropy imports sympy through its decomposition: 0.3 s of a small bagged fit). AutogradStack's
    leaf and penalty, its forward and step written with batched ops instead of vmap over the module."""

    path = "autograd step (batched forward)"

    def __init__(self, stack: Stack, l1: list[float], criterion: object):
        super().__init__(stack, l1, criterion)
        hidden = self.template.hidden
        self.shared = is_shared(self.template)
        self.drop = [per_member([m.hidden[i].dropout for m in stack.models], stack.flat) for i in range(len(hidden))]
        self.gens: list[torch.Generator] | None = None  # each member's mask generator (dropout_mask)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs [K, rows, outputs] as in eval mode (no dropout)."""
        out = self._forward(self.stack.split(self.stack.flat), x, train=False)
        return members_mean(out.transpose(0, 1), self.template.combine) if self.shared else out

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        out = self._forward(self.stack.split(self.leaf), x, train=True)
        losses = torch.stack([self._loss(o, y[k], None if w is None else w[k]) for k, o in enumerate(out)])
        self.stack.grad.zero_()
        penalized(losses, self.leaf[:, : self.stack.n_weights], self.l1).sum().backward()
        return losses.detach()

    def _loss(self, out: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        return members_loss(self.criterion, out, y, w) if self.shared else self.criterion(out, y, w)

    def _forward(self, p: dict[str, torch.Tensor], x: torch.Tensor, train: bool) -> torch.Tensor:
        k, model = self.stack.k, self.template
        if hasattr(model, "num_embed"):
            x = _num_embed(model.num_embed, p, self.stack.buffers, _batched(x, k))
        if hasattr(model, "embed"):
            x = _embed(model.embed, p, _batched(x, k))
        h = _batched(x, k)
        if self.shared:  # each shared member's scaling of the rows, [K, members * rows, inputs]
            h = scaled(h, p["adapter.weight"])
        for layer, rate in zip(model.hidden, self.drop):
            h = layer.act(baddbmm(p[f"{layer.name}.bias"][:, None], h, p[f"{layer.name}.weight"].transpose(1, 2)))
            if train and rate is not None:
                h = h * dropout_mask(h.shape, rate, h, self.gens)
        if not self.shared:
            return baddbmm(p["out.bias"][:, None], h, p["out.weight"].transpose(1, 2))
        return heads(h, p["out.weight"], p["out.bias"], model.n_shared)  # [K, members, rows, outputs]


def _num_embed(module: nn.Module, p: dict[str, torch.Tensor], buffers: dict, x: torch.Tensor) -> torch.Tensor:
    """embeddings.NumEmbed's forward for every member: x [K, B, F]."""
    dense = x[..., : module.n_dense]
    if module.at.device != x.device:
        module.at, module.rest = module.at.to(x.device), module.rest.to(x.device)
    v = dense[..., module.at, None]  # [K, B, m, 1]
    if module.periodic:
        v = 2 * math.pi * v * p["num_embed.frequencies"][:, None]
        features = torch.cat([torch.cos(v), torch.sin(v)], -1)
    else:  # the bins of each member's own training rows: [K, 1, m, bins]
        features = ((v - buffers["num_embed.lower"][:, None]) / buffers["num_embed.width"][:, None]).clamp(0, 1)
    z = torch.einsum("kbmj,kmjd->kbmd", features, p["num_embed.weight"]) + p["num_embed.bias"][:, None]
    return torch.cat([dense[..., module.rest], torch.relu(z).flatten(2), x[..., module.n_dense :]], dim=2)


def _embed(module: nn.Module, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """embeddings.Embed's forward for every member: each member looks its codes up in its own rows."""
    codes = x[..., module.n_dense :].long()
    looked_up = []
    for i in range(len(module.tables)):
        rows = p[f"embed.tables.{i}.weight"]  # [K, levels, dim]
        at = codes[..., i] + torch.arange(rows.shape[0], device=x.device)[:, None] * rows.shape[1]
        looked_up.append(rows.reshape(-1, rows.shape[2])[at])
    return torch.cat([x[..., : module.n_dense], *looked_up], dim=2)
