"""A run's parts built from its config: the model, the criterion, the optimizer and the schedule (with its
warmup), on the run's device; what start and resume both build before restoring any state."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nntrain.config.components import WARMUP, build, canonical
from nntrain.config.schema import Config
from nntrain.engine.fused import FlatSGD, FusedStep, Held
from nntrain.engine.stacked_optim import HeldAdam
from nntrain.model.embeddings import embeds_of, numerics_of
from nntrain.model.heads import make_criterion
from nntrain.model.mlp import build_mlp


@dataclass
class Parts:
    model: nn.Module
    criterion: Callable
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    fused: FusedStep | None = None  # the written-out step, when the model takes that path


def build_parts(
    cfg: Config,
    n_in: int,
    n_out: int,
    prep: dict,
    device: torch.device,
    fused: bool = False,
    weighted: bool = False,
    stacked: bool = False,
) -> Parts:
    """`stacked`: another engine steps the model (stacked_runs.py); an SGD, Adam or AdamW optimizer is then a
    FlatSGD or HeldAdam that only holds the settings and state (torch.optim's constructors import
    torch._dynamo: 2 s)."""
    torch.manual_seed(cfg.seed)
    task = prep["task"]
    model = build_mlp(cfg.model, n_in, n_out, embeds_of(prep), task, numerics_of(prep)).to(device)
    step = FusedStep(model, cfg, task) if fused else None
    arguments = {k: v for k, v in cfg.optimizer.items() if k != "name"}
    if step is not None and FlatSGD.applies(cfg.optimizer):
        optimizer = FlatSGD(step, **arguments)
    elif stacked and FlatSGD.applies(cfg.optimizer):
        params = list(model.parameters())
        optimizer = FlatSGD(Held(params, params[0]), **arguments)
    elif stacked and cfg.model.ensemble == 1 and HeldAdam.applies(cfg.optimizer):
        optimizer = HeldAdam(cfg.optimizer, list(model.parameters()))
    elif cfg.model.ensemble > 1:  # a param group per member: stacked_optim.py reads each member's own
        optimizer = build("optimizer", cfg.optimizer, [{"params": list(m.parameters())} for m in model.members])
    else:
        optimizer = build("optimizer", cfg.optimizer, model.parameters())
    return Parts(model, make_criterion(cfg, task, weighted), optimizer, _scheduler(cfg, optimizer), step)


def _scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> Any:
    """The config's schedule, after scheduler.warmup_epochs of linear warmup when it names some; None: none."""
    main = (
        None
        if canonical("scheduler", cfg.scheduler["name"]) == "none"
        else build("scheduler", cfg.scheduler, optimizer)
    )
    warm = cfg.scheduler.get(WARMUP)
    if not warm:
        return main
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / (warm + 1), total_iters=warm)
    return warmup if main is None else torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, main], [warm])


def follow_schedule(scheduler: Any, cfg: Config) -> None:
    """A cosine schedule restored from a checkpoint whose T_max or eta_min a resume changed (a longer run): the
    new values, and the rate where the new curve stands at the schedule's epoch, so it goes on along one cosine
    (stepped on from the old rate, it would keep the old curve's shape: at its end, a rate of 0 for good)."""
    if scheduler is None or canonical("scheduler", cfg.scheduler["name"]) != "cosine":
        return
    sequential = isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR)
    cosine = scheduler._schedulers[-1] if sequential else scheduler
    t_max, eta_min = cfg.scheduler["T_max"], cfg.scheduler.get("eta_min", 0.0)
    if (cosine.T_max, cosine.eta_min) == (t_max, eta_min):
        return
    cosine.T_max, cosine.eta_min = t_max, eta_min
    if sequential and scheduler.last_epoch < scheduler._milestones[0]:
        return  # still warming up: the cosine starts from its own start later
    t = cosine.last_epoch
    lrs = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2 for base in cosine.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    cosine._last_lr = scheduler._last_lr = lrs
