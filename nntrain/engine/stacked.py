"""K same-shaped MLPs trained as one (the idea of BatchEnsemble and TabM; torch.func.stack_module_state's
layout): member k's parameters are row k of one [K, P] tensor and its gradients row k of another, so a step
does the work of K members in about one member's number of ops (DESIGN.md: a small step is per-op overhead).

Each member stays a whole nn.Module whose parameters and buffers are views of its rows, so evaluation,
checkpoints and a member's own optimizer and scheduler see an ordinary model. Two steps, as for one model:
fused.py's written-out forward and backward with baddbmm over the members, for what the fused path covers;
autograd through the members' batched forward (stacked_batched.py) for the other MLPs it covers (numeric and
level-code embeddings); otherwise autograd through torch.func.vmap over the members. tests/test_stack.py checks
each member against a lone model in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nntrain.engine.fused import Layer, act, act_backward, activation, loss_and_grad
from nntrain.model.shared import is_shared, members_loss

ROW_ALIGN = 16  # floats: 64 bytes (float64 rows: 128)


class Stack:
    """The members' parameters as rows of `flat`, their gradients as rows of `grad`, their buffers stacked."""

    def __init__(self, models: list[nn.Module]):
        self.models, self.k = models, len(models)
        named = [dict(m.named_parameters()) for m in models]
        linear = {f"{n}.weight" for n, m in models[0].named_modules() if isinstance(m, nn.Linear)}
        # Linear weights first: train.l1 then reads and writes one block of columns, flat[:, :self.n_weights]
        self.names = sorted(named[0], key=lambda n: n not in linear)
        self.n_weights = sum(named[0][n].numel() for n in self.names if n in linear)
        self.shapes = [named[0][n].shape for n in self.names]
        self.sizes = [named[0][n].numel() for n in self.names]
        # each member's row padded to whole 64-byte lines: every member's parameters then sit alike in memory,
        # and kernels whose path depends on an address (torch.bmm into a view) give each the same numbers
        self.pad = -sum(self.sizes) % ROW_ALIGN
        self.flat = torch.stack([self.row([p[n].detach() for n in self.names]) for p in named])
        self.grad = torch.zeros_like(self.flat)
        self.params, self.grads = self.split(self.flat), self.split(self.grad)
        for k, p in enumerate(named):
            for n in self.names:
                p[n].data, p[n].grad = self.params[n][k], self.grads[n][k]
        kept = [dict(m.named_buffers()) for m in models]  # batch norm's running statistics
        self.buffers = {n: torch.stack([b[n] for b in kept]) for n in kept[0]}
        for k, b in enumerate(kept):
            for n, t in b.items():
                t.data = self.buffers[n][k]

    def row(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """One member's tensors (one per parameter, in `names` order) as its padded row."""
        return torch.cat([*(t.reshape(-1) for t in tensors), tensors[0].new_zeros(self.pad)])

    def split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """[K, P] -> {parameter name: [K, *its shape]}, each a view of `rows`."""
        cut = rows.split([*self.sizes, self.pad], dim=1)
        return {n: c.view(self.k, *s) for n, c, s in zip(self.names, cut, self.shapes)}

    def l1(self, rates: torch.Tensor | float) -> None:
        """train.l1's penalty's gradient added to the members' gradients. rates: one float for all, or [K, 1]."""
        w = self.flat[:, : self.n_weights]
        self.grad[:, : self.n_weights].add_(w.sign().mul_(rates))

    def clip(self, max_norms: torch.Tensor) -> None:
        """clip_grad_norm_ per member ([K, 1] limits, inf for none), as the lone fused step clips."""
        norms = torch.linalg.vector_norm(self.grad, dim=1, keepdim=True)
        self.grad.mul_((max_norms / (norms + 1e-6)).clamp_(max=1.0))


def clip_limits(limits: list[float | None], like: torch.Tensor) -> torch.Tensor | None:
    """Each member's train.grad_clip as [K, 1] (inf: none), or None when no member clips."""
    if not any(limits):
        return None
    return torch.tensor([c or math.inf for c in limits], dtype=like.dtype, device=like.device)[:, None]


def per_member(values: list[float], like: torch.Tensor) -> torch.Tensor | float | None:
    """A setting the members may differ in: None if all 0, one float if all agree, else a [K, 1, 1] tensor."""
    if not any(values):
        return None
    if len(set(values)) == 1:
        return float(values[0])
    return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None, None]


def dropout_mask(
    shape: torch.Size, p: torch.Tensor | float, like: torch.Tensor, gens: list[torch.Generator] | None = None
) -> torch.Tensor:
    """0 or 1/keep per element, kept with probability 1 - p (p rounded to 1/32768). Four 15-bit draws from
    each random int64: the member dimension makes masks K times as many as one model's, and torch's uniform_
    draws about 4x slower per element. gens: one generator per member ([K, ...] shapes), each member's masks
    from its own (then they do not depend on its group), else all from torch's global stream."""
    if gens is None:
        n = math.prod(shape)
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_()
        draws = words.view(torch.int16)[:n].view(shape)
    else:
        n = math.prod(shape[1:])
        words = torch.empty(len(gens), (n + 3) // 4, dtype=torch.int64, device=like.device)
        for row, gen in zip(words, gens):
            row.random_(generator=gen)
        draws = words.view(torch.int16)[:, :n].reshape(shape)
    draws = draws.bitwise_and_(0x7FFF)  # uniform on 0 .. 32767
    if isinstance(p, float):
        cut = min(round(p * 32768), 32767)
        return draws.ge_(cut).to(like.dtype).mul_(32768 / (32768 - cut))
    cut = (p * 32768).round_().clamp_(max=32767)
    return draws.ge_(cut.to(torch.int16)).to(like.dtype).mul_(32768 / (32768 - cut))


def baddbmm(bias: torch.Tensor, h: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """torch.baddbmm over the members, each member's numbers the same however many its engine holds: for one
    member torch takes other kernels (a matrix-vector product where a layer has one output: 3e-8 apart), so one
    member is computed as two (forward and backward) and the first kept. A member's numbers then do not depend
    on its group, which a resume or the stopped members leaving may change."""
    if h.shape[0] != 1:
        return torch.baddbmm(bias, h, W)
    return torch.baddbmm(*(_two(t) for t in (bias, h, W)))[:1]


def bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """torch.bmm as baddbmm above (one member computed as two), into `out` where given."""
    if a.shape[0] != 1:
        return torch.bmm(a, b, out=out)
    one = torch.bmm(_two(a), _two(b))[:1]
    return one if out is None else out.copy_(one)


def _two(t: torch.Tensor) -> torch.Tensor:
    return t.expand(2, *t.shape[1:])


def _batched(h: torch.Tensor, k: int) -> torch.Tensor:
    """[B, n] (one batch for all members) -> a [K, B, n] view; [K, B, n] as it is."""
    return h if h.dim() == 3 else h.expand(k, *h.shape)


class FusedStack:
    """fused.FusedStep for K members: x [B, in] (the same rows for all) or [K, B, in]; y, w [K, B]. Members
    share the activations and the loss; dropout rates and train.l1 may differ."""

    path = "fused step (written out)"

    def __init__(self, stack: Stack, l1: list[float], loss: str):
        first = stack.models[0]
        self.stack, self.loss = stack, loss
        self.layers = [Layer(None, *activation(h.activation), 0.0) for h in first.hidden]
        names = [h.name for h in first.hidden] + ["out"]
        self.W = [stack.params[f"{n}.weight"] for n in names]
        self.b = [stack.params[f"{n}.bias"] for n in names]
        self.dW = [stack.grads[f"{n}.weight"] for n in names]
        self.db = [stack.grads[f"{n}.bias"] for n in names]
        self.drop = [per_member([m.hidden[i].dropout for m in stack.models], stack.flat) for i in range(len(names) - 1)]
        rates = per_member(l1, stack.flat)
        self.l1 = rates if rates is None or isinstance(rates, float) else rates[:, 0]
        self.gens: list[torch.Generator] | None = None  # each member's mask generator (dropout_mask)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs [K, rows, outputs] as in eval mode (no dropout)."""
        h = x
        for layer, W, b in zip(self.layers, self.W, self.b):
            h = act(baddbmm(b[:, None], _batched(h, self.stack.k), W.transpose(1, 2)), layer)
        return baddbmm(self.b[-1][:, None], _batched(h, self.stack.k), self.W[-1].transpose(1, 2))

    @torch.no_grad()  # no graph: the backward below is the one that runs
    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        k, saved, h = self.stack.k, [], x
        for layer, W, b, p in zip(self.layers, self.W, self.b, self.drop):
            h = _batched(h, k)
            a = act(baddbmm(b[:, None], h, W.transpose(1, 2)), layer)
            mask = None if p is None else dropout_mask(a.shape, p, a, self.gens)
            saved.append((h, a, mask))
            h = a if mask is None else a * mask
        h = _batched(h, k)
        z = baddbmm(self.b[-1][:, None], h, self.W[-1].transpose(1, 2))
        loss, dz = loss_and_grad(self.loss, z, y, w)
        bmm(dz.transpose(1, 2), h, out=self.dW[-1])
        torch.sum(dz, 1, out=self.db[-1])
        dh = bmm(dz, self.W[-1])
        for i in range(len(self.layers) - 1, -1, -1):
            h_in, a, mask = saved[i]
            if mask is not None:
                dh.mul_(mask)
            dpre = act_backward(dh, a, self.layers[i])
            bmm(dpre.transpose(1, 2), h_in, out=self.dW[i])
            torch.sum(dpre, 1, out=self.db[i])
            if i:
                dh = bmm(dpre, self.W[i])
        if self.l1 is not None:
            self.stack.l1(self.l1)
        return loss


class AutogradStack:
    """Autograd for K members of one module structure: the first member's module called with each member's
    parameters and buffers under torch.func.vmap (batch norm keeps each member's own running statistics;
    dropout draws each member's own masks), one backward for all."""

    path = "autograd step (vmap over the members)"

    def __init__(self, stack: Stack, l1: list[float], criterion: object):
        self.stack, self.criterion = stack, criterion
        self.template = stack.models[0]
        self.leaf = stack.flat.detach().requires_grad_()  # flat's storage: updates to flat are the leaf's
        self.leaf.grad = stack.grad  # backward accumulates into the stack's gradient rows
        self.l1 = torch.tensor(l1, dtype=stack.flat.dtype, device=stack.flat.device) if any(l1) else None

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs [K, rows, outputs] in eval mode (batch norm's running statistics, no dropout)."""
        from torch.func import functional_call, vmap

        template, was = self.template, self.template.training
        template.eval()
        try:
            one = lambda p, b, x: functional_call(template, (p, b), (x,))  # noqa: E731
            dims = (0, 0, 0 if x.dim() == 3 else None)
            return vmap(one, in_dims=dims)(self.stack.split(self.stack.flat), self.stack.buffers, x)
        finally:
            template.train(was)

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        from torch.func import functional_call, vmap

        template, criterion = self.template, self.criterion
        shared = is_shared(template)  # model.shared_members: the mean of their losses

        def one(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
            if shared:
                return members_loss(
                    criterion, functional_call(template, (params, buffers), (x,), {"members": True}), y, w
                )
            return criterion(functional_call(template, (params, buffers), (x,)), y, w)

        dims = (0, 0, 0 if x.dim() == 3 else None, 0, None if w is None else 0)
        losses = vmap(one, in_dims=dims, randomness="different")(
            self.stack.split(self.leaf), self.stack.buffers, x, y, w
        )
        self.stack.grad.zero_()
        penalized(losses, self.leaf[:, : self.stack.n_weights], self.l1).sum().backward()
        return losses.detach()


def penalized(losses: torch.Tensor, weights: torch.Tensor, l1: torch.Tensor | None) -> torch.Tensor:
    """Each member's loss plus its train.l1 penalty, for the backward; the losses alone are what a step reports."""
    return losses if l1 is None else losses + l1 * torch.linalg.vector_norm(weights, 1, dim=1)
