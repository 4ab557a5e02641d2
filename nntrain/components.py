"""Name -> constructor tables for every component a config can name, and the checks on their arguments.

A spec is a dict {"name": ..., **kwargs}; config.py turns the YAML shorthand `relu` into {"name": "relu"}.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .errors import did_you_mean

# The tables name torch's classes and functions rather than hold them, so that checking a name (and
# `nntrain params CONFIG`) needs no torch import; factory() looks the object up on first use.
ACTIVATIONS: dict[str, str] = {
    "identity": "Identity",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "prelu": "PReLU",
    "rrelu": "RReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "selu": "SELU",
    "silu": "SiLU",
    "mish": "Mish",
    "softplus": "Softplus",
    "hardtanh": "Hardtanh",
    "relu6": "ReLU6",
}
# Allowed after the output layer only: they normalise across the outputs.
OUTPUT_ACTIVATIONS: dict[str, str] = {
    **ACTIVATIONS,
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
}

INITS: dict[str, str | None] = {
    "default": None,  # what nn.Linear does on its own
    "uniform": "uniform_",
    "normal": "normal_",
    "zeros": "zeros_",
    "ones": "ones_",
    "constant": "constant_",
    "kaiming_uniform": "kaiming_uniform_",
    "kaiming_normal": "kaiming_normal_",
    "xavier_uniform": "xavier_uniform_",
    "xavier_normal": "xavier_normal_",
    "orthogonal": "orthogonal_",
    "trunc_normal": "trunc_normal_",
}
# These need a fan-in and fan-out, so they cannot fill a 1-D bias.
MATRIX_ONLY_INITS = {"kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "orthogonal"}

LOSSES: dict[str, str] = {
    "cross_entropy": "CrossEntropyLoss",
    "nll": "NLLLoss",
    "bce": "BCEWithLogitsLoss",  # takes logits: numerically stable, no sigmoid in the model
    "mse": "MSELoss",
    "l1": "L1Loss",
    "smooth_l1": "SmoothL1Loss",
    "huber": "HuberLoss",
}
LOSS_ALIASES = {"mae": "l1", "ce": "cross_entropy", "binary_cross_entropy": "bce"}
CLASSIFICATION_LOSSES = {"cross_entropy", "nll", "bce"}

OPTIMIZERS: dict[str, str] = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}

SCHEDULERS: dict[str, str | None] = {
    "none": None,
    "step": "StepLR",
    "multistep": "MultiStepLR",
    "exponential": "ExponentialLR",
    "cosine": "CosineAnnealingLR",
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
# The torch module each kind's names live in.
MODULES = {"activation": "torch.nn", "output_activation": "torch.nn", "init": "torch.nn.init", "loss": "torch.nn",
           "optimizer": "torch.optim", "scheduler": "torch.optim.lr_scheduler"}
# Arguments the tool fills in itself; a config may not set them.
RESERVED = {"params", "optimizer", "tensor", "generator", "num_parameters", "reduction", "inplace", "last_epoch", "verbose"}


def canonical(kind: str, name: str) -> str | None:
    """The table key for a (case-insensitive, possibly aliased) name, or None."""
    key = str(name).strip().lower()
    key = ALIASES.get(kind, {}).get(key, key)
    return key if key in TABLES[kind] else None


def factory(kind: str, name: str) -> Any:
    """The torch class or function a canonical name stands for (None for 'default' init and 'none' scheduler)."""
    attr = TABLES[kind][name]
    return None if attr is None else getattr(importlib.import_module(MODULES[kind]), attr)


def spec_problems(kind: str, spec: dict[str, Any], path: str, arguments_too: bool = True) -> list[str]:
    """Everything wrong with one component spec: unknown name, unknown or bad arguments. With
    arguments_too=False only the name is checked, and torch is not imported."""
    table = TABLES[kind]
    name = canonical(kind, spec["name"])
    if name is None:
        return [f"{path}.name={spec['name']}: unknown {kind.replace('_', ' ')}{did_you_mean(str(spec['name']), table)};"
                f" choose one of: {', '.join(table)}"]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if table[name] is None:
        return [f"{path}: '{name}' takes no arguments, got {', '.join(kwargs)}"] if kwargs else []
    if not arguments_too:
        return []
    allowed = arguments(kind, name)
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        return [f"{path}.{k}: '{name}' has no argument '{k}'{did_you_mean(k, allowed)};"
                f" its arguments are: {', '.join(allowed) or 'none'}" for k in bad]
    try:
        _try_build(kind, factory(kind, name), kwargs)
    except (ValueError, TypeError, RuntimeError) as e:
        return [f"{path}: {name}({_fmt_kwargs(kwargs)}) is invalid: {e}"]
    return []


def arguments(kind: str, name: str) -> list[str]:
    """The keyword arguments a config may give to a component."""
    fn = factory(kind, name)
    if fn is None:
        return []
    return [p for p in inspect.signature(fn).parameters if p not in RESERVED]


EMPTY = "optimizer got an empty parameter list"


def _try_build(kind: str, fn: Any, kwargs: dict[str, Any]) -> None:
    """Build the component once on a dummy, so torch's own argument checks run before training.

    Optimizers and schedulers are checked without a real optimizer: building one imports torch._dynamo
    (1.2 s), which `nntrain params` would pay for nothing. An optimizer checks its arguments before it
    looks at its parameters, so an empty list reaches the checks and then fails in a known way; a
    scheduler only needs param_groups."""
    import torch

    if kind == "init":
        fn(torch.empty(4, 4), **kwargs)
    elif kind == "optimizer":
        try:
            fn([], **kwargs)
        except ValueError as e:
            if str(e) != EMPTY:
                raise
    elif kind == "scheduler":
        stand_in = object.__new__(torch.optim.SGD)
        stand_in.param_groups, stand_in.defaults, stand_in.state = [{"lr": 0.1, "params": []}], {}, {}
        fn(stand_in, **kwargs)
    else:
        fn(**kwargs)


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def build(kind: str, spec: dict[str, Any], *args: Any, **extra: Any) -> Any:
    """Construct a validated spec: build('optimizer', spec, model.parameters())."""
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return factory(kind, canonical(kind, spec["name"]))(*args, **kwargs, **extra)


def init_tensor(spec: dict[str, Any], tensor: Any) -> None:
    fn = factory("init", canonical("init", spec["name"]))
    if fn is not None:
        fn(tensor, **{k: v for k, v in spec.items() if k != "name"})
