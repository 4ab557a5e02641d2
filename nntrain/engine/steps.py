"""The training step, chosen once per run: a batch's row indices in, its loss out, with the gradients computed
(written out by fused.py, or by autograd), summed over a data-parallel group's ranks, clipped and applied.
Each path is a closure built here, so the loop calls one function per step and never branches on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nntrain.engine.state import Run
from nntrain.model.shared import step_loss


def make_step(
    run: Run, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None, share: Callable[[], float] | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch's row indices in, its loss out: the gradients computed (written out, or by autograd), summed
    over a data-parallel group's ranks, clipped, and applied by the optimizer. `w`: each row's loss weight.
    `share`: in a group, each rank steps on its own rows (a streamed run's), weighted by share(), its part of
    the step's rows; without it a rank takes its part of the global batch's indices."""
    if run.cfg.model.ensemble > 1:
        return _ensemble_step(run, X, y, w)
    parts = run.parts
    grads = _fused_grads(parts.fused, X, y, w) if parts.fused is not None else _autograd_grads(run, X, y, w)
    if run.group is not None:
        grads = _sharded(grads, run) if share is None else _weighted(grads, run, share)
    clip = _clipper(run)
    optimizer = parts.optimizer

    def step(idx: torch.Tensor) -> torch.Tensor:
        loss = grads(idx)
        clip()
        optimizer.step()  # looked up at each step: an LR scheduler wraps the instance's step
        return loss.detach()

    return step


def _ensemble_step(run: Run, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> Callable:
    """model.ensemble: the members stacked (stacked.py), each on the same batch; the step's loss is their mean,
    each member's gradients those of its own loss."""
    from nntrain.config.schema import loss_name
    from nntrain.engine.fused import written_out
    from nntrain.engine.stacked import Stack, clip_limits
    from nntrain.engine.stacked_batched import stacked_step
    from nntrain.engine.stacked_optim import stacked_optimizer

    cfg, parts, data = run.cfg, run.parts, run.data
    stack = Stack(list(parts.model.members))
    k = stack.k
    fused = written_out(cfg, data.task, data.prep)
    engine = stacked_step(stack, fused, [cfg.train.l1] * k, loss_name(cfg, data.task), parts.criterion)
    optimizer = stacked_optimizer(stack, [parts.optimizer], [cfg.optimizer])
    clip = clip_limits([cfg.train.grad_clip] * k, stack.flat)

    def step(idx: torch.Tensor) -> torch.Tensor:
        rows_w = None if w is None else w[idx].expand(k, -1)
        loss = engine.loss_and_grads(X[idx], y[idx].expand(k, -1), rows_w).mean()
        if clip is not None:
            stack.clip(clip)
        optimizer.step()
        return loss

    return step


def _fused_grads(fused: Any, X: torch.Tensor, y: torch.Tensor, w: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    if w is None:
        return lambda idx: fused.loss_and_grads(X[idx], y[idx])
    return lambda idx: fused.loss_and_grads(X[idx], y[idx], w[idx])


def _autograd_grads(run: Run, X: torch.Tensor, y: torch.Tensor, w: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    cfg, parts = run.cfg, run.parts
    # The compiled module shares the original's parameters: checkpoints and evaluation use the original.
    forward = torch.compile(parts.model) if cfg.train.compile else parts.model
    l1, optimizer, criterion = cfg.train.l1, parts.optimizer, parts.criterion
    l1_weights = [m.weight for m in parts.model.modules() if isinstance(m, nn.Linear)] if l1 else []

    def grads(idx: torch.Tensor) -> torch.Tensor:
        """The gradients of the loss and train.l1's penalty; the loss alone returned (the penalty is reported
        apart, loop.py)."""
        loss = step_loss(forward, criterion, X[idx], y[idx], None if w is None else w[idx])
        total = loss + l1 * sum(w.abs().sum() for w in l1_weights) if l1_weights else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        return loss.detach()

    return grads


def _sharded(grads: Callable, run: Run) -> Callable[[torch.Tensor], torch.Tensor]:
    """This rank's contiguous part of each batch, its gradients weighted by its share and summed over the ranks."""
    group, fused, optimizer = run.group, run.parts.fused, run.parts.optimizer
    params = list(run.parts.model.parameters())
    flat = fused.flat_grad if fused is not None else None

    def step(idx: torch.Tensor) -> torch.Tensor:
        part, share = group.shard(idx)
        if len(part):
            loss = grads(part)
        else:  # a last batch with fewer rows than ranks: this rank adds nothing
            loss = torch.zeros((), device=run.device)
            if flat is not None:
                flat.zero_()
            else:
                optimizer.zero_grad(set_to_none=True)
        group.reduce_grads(params, share, flat)
        return loss * share

    return step


def _weighted(grads: Callable, run: Run, share: Callable[[], float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """This rank's own rows' gradients, weighted by its share of the step's rows and summed over the ranks."""
    group, fused = run.group, run.parts.fused
    params = list(run.parts.model.parameters())

    def step(idx: torch.Tensor) -> torch.Tensor:
        loss, weight = grads(idx), share()
        group.reduce_grads(params, weight, fused.flat_grad if fused is not None else None)
        return loss * weight

    return step


def _clipper(run: Run) -> Callable[[], None]:
    """clip_grad_norm_'s rule; on the fused path as two ops on the flat gradient rather than ops per layer."""
    max_norm, fused = run.cfg.train.grad_clip, run.parts.fused
    if not max_norm:
        return lambda: None
    if fused is None:
        params = list(run.parts.model.parameters())
        return lambda: nn.utils.clip_grad_norm_(params, max_norm)

    def clip() -> None:
        norm = torch.linalg.vector_norm(fused.flat_grad)
        fused.flat_grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))

    return clip
