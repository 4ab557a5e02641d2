"""Name -> constructor tables for every component a config can name, and the checks on their arguments.

A spec is a dict {"name": ..., **kwargs}; config.py turns the YAML shorthand `relu` into {"name": "relu"}.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from .errors import did_you_mean

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "rrelu": nn.RReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "hardtanh": nn.Hardtanh,
    "relu6": nn.ReLU6,
}
# Allowed after the output layer only: they normalise across the outputs.
OUTPUT_ACTIVATIONS: dict[str, type[nn.Module]] = {
    **ACTIVATIONS,
    "softmax": nn.Softmax,
    "log_softmax": nn.LogSoftmax,
}

INITS: dict[str, Callable[..., Any] | None] = {
    "default": None,  # what nn.Linear does on its own
    "uniform": nn.init.uniform_,
    "normal": nn.init.normal_,
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
    "constant": nn.init.constant_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "kaiming_normal": nn.init.kaiming_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "orthogonal": nn.init.orthogonal_,
    "trunc_normal": nn.init.trunc_normal_,
}
# These need a fan-in and fan-out, so they cannot fill a 1-D bias.
MATRIX_ONLY_INITS = {"kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "orthogonal"}

LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "bce": nn.BCEWithLogitsLoss,  # takes logits: numerically stable, no sigmoid in the model
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "huber": nn.HuberLoss,
}
LOSS_ALIASES = {"mae": "l1", "ce": "cross_entropy", "binary_cross_entropy": "bce"}
CLASSIFICATION_LOSSES = {"cross_entropy", "nll", "bce"}

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}

SCHEDULERS: dict[str, type | None] = {
    "none": None,
    "step": torch.optim.lr_scheduler.StepLR,
    "multistep": torch.optim.lr_scheduler.MultiStepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
}

TABLES: dict[str, dict[str, Any]] = {
    "activation": ACTIVATIONS,
    "output_activation": OUTPUT_ACTIVATIONS,
    "init": INITS,
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
}
ALIASES: dict[str, dict[str, str]] = {"loss": LOSS_ALIASES}
# Arguments the tool fills in itself; a config may not set them.
RESERVED = {"params", "optimizer", "tensor", "generator", "num_parameters", "reduction", "inplace", "last_epoch", "verbose"}


def canonical(kind: str, name: str) -> str | None:
    """The table key for a (case-insensitive, possibly aliased) name, or None."""
    key = str(name).strip().lower()
    key = ALIASES.get(kind, {}).get(key, key)
    return key if key in TABLES[kind] else None


def spec_problems(kind: str, spec: dict[str, Any], path: str) -> list[str]:
    """Everything wrong with one component spec: unknown name, unknown or bad arguments."""
    table = TABLES[kind]
    name = canonical(kind, spec["name"])
    if name is None:
        return [f"{path}.name={spec['name']}: unknown {kind.replace('_', ' ')}{did_you_mean(str(spec['name']), table)};"
                f" choose one of: {', '.join(table)}"]
    factory = table[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if factory is None:
        return [f"{path}: '{name}' takes no arguments, got {', '.join(kwargs)}"] if kwargs else []
    allowed = arguments(kind, name)
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        return [f"{path}.{k}: '{name}' has no argument '{k}'{did_you_mean(k, allowed)};"
                f" its arguments are: {', '.join(allowed) or 'none'}" for k in bad]
    try:
        _try_build(kind, factory, kwargs)
    except (ValueError, TypeError, RuntimeError) as e:
        return [f"{path}: {name}({_fmt_kwargs(kwargs)}) is invalid: {e}"]
    return []


def arguments(kind: str, name: str) -> list[str]:
    """The keyword arguments a config may give to a component."""
    factory = TABLES[kind][name]
    if factory is None:
        return []
    return [p for p in inspect.signature(factory).parameters if p not in RESERVED]


EMPTY = "optimizer got an empty parameter list"


def _try_build(kind: str, factory: Any, kwargs: dict[str, Any]) -> None:
    """Build the component once on a dummy, so torch's own argument checks run before training.

    Optimizers and schedulers are checked without a real optimizer: building one imports torch._dynamo
    (1.2 s), which `nntrain params` would pay for nothing. An optimizer checks its arguments before it
    looks at its parameters, so an empty list reaches the checks and then fails in a known way; a
    scheduler only needs param_groups."""
    if kind == "init":
        factory(torch.empty(4, 4), **kwargs)
    elif kind == "optimizer":
        try:
            factory([], **kwargs)
        except ValueError as e:
            if str(e) != EMPTY:
                raise
    elif kind == "scheduler":
        stand_in = object.__new__(torch.optim.SGD)
        stand_in.param_groups, stand_in.defaults, stand_in.state = [{"lr": 0.1, "params": []}], {}, {}
        factory(stand_in, **kwargs)
    else:
        factory(**kwargs)


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def build(kind: str, spec: dict[str, Any], *args: Any, **extra: Any) -> Any:
    """Construct a validated spec: build('optimizer', spec, model.parameters())."""
    factory = TABLES[kind][canonical(kind, spec["name"])]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return factory(*args, **kwargs, **extra)


def init_tensor(spec: dict[str, Any], tensor: torch.Tensor) -> None:
    fn = INITS[canonical("init", spec["name"])]
    if fn is not None:
        fn(tensor, **{k: v for k, v in spec.items() if k != "name"})
