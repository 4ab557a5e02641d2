"""Every component a config can name, one record per entry: the torch object it builds and what the rest of
nntrain needs to know about it (an activation's family, a loss's tasks, what the fused step writes out).

Fused support, the diagnostics, the config checks and the README's table are read from these records;
adding a component is one entry here (and the tests, which are parametrized over the tables, cover it).
A spec is a dict {"name": ..., **kwargs}; schema.py turns the YAML shorthand `relu` into {"name": "relu"}.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nntrain.config.ranges import range_problems
from nntrain.errors import Problem, did_you_mean

CLASSES = frozenset({"multiclass", "binary"})
REGRESSION = frozenset({"regression"})


@dataclass(frozen=True)
class Component:
    # The tables name torch's classes and functions rather than hold them, so that checking a name (and
    # `nntrain params CONFIG`) needs no torch import; factory() looks the object up on first use.
    attr: str | None  # the torch object's name in its kind's module; None: nothing is built
    fused: bool = False  # the written-out step (fused.py) implements it
    note: str = ""  # shown in the README's table


@dataclass(frozen=True)
class Activation(Component):
    # relu: a unit whose input is <= 0 on every row passes no gradient (it is dead); saturating: a bounded
    # output that passes little gradient near its bounds; linear: the identity; smooth: everything else
    family: str = "smooth"
    bounds: tuple[float, float] | None = None  # a saturating activation's output range
    across_outputs: bool = False  # normalises across the outputs (dim 1): after the output layer only
    gives: str = "values"  # what it makes of the output layer: "probs", "log_probs" or plain "values"
    parameters: int = 0  # learnable parameters it holds: PReLU's one slope (num_parameters is nntrain's, and 1)
    warning: str = ""  # said when a config uses it: accepted, but it does not do what a user may expect


@dataclass(frozen=True)
class Init(Component):
    matrix_only: bool = False  # needs a fan-in and fan-out, so it cannot fill a 1-D bias


@dataclass(frozen=True)
class Optimizer(Component):
    state: int = 0  # buffers the size of the parameters it keeps (momentum, moment estimates)
    stacked: str = (
        ""  # the update stacked_optim.py writes for K stacked models at once ("sgd", "adam"); "": each its own
    )


@dataclass(frozen=True)
class Schedule(Component):
    # when the loop steps it: "epoch" (at each epoch's end), "step" (after every training step) or "value" (with
    # the monitored value, once validation has it)
    pace: str = "epoch"


@dataclass(frozen=True)
class Loss(Component):
    tasks: frozenset[str] = REGRESSION
    one_output: bool = True  # one output per row (bce's single logit, a regression value), not one per class
    takes: str = "values"  # what it expects from the model: "logits", "log_probs" or "values"
    applies: str = ""  # what it applies to the logits itself


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("Identity", fused=True, family="linear"),
    "sigmoid": Activation("Sigmoid", fused=True, family="saturating", bounds=(0.0, 1.0), gives="probs"),
    "tanh": Activation("Tanh", fused=True, family="saturating", bounds=(-1.0, 1.0)),
    "relu": Activation("ReLU", fused=True, family="relu"),
    "leaky_relu": Activation("LeakyReLU", fused=True),
    "prelu": Activation("PReLU", parameters=1),
    "rrelu": Activation("RReLU"),
    "elu": Activation("ELU"),
    "gelu": Activation("GELU"),
    "selu": Activation("SELU"),
    "silu": Activation("SiLU"),
    "mish": Activation("Mish"),
    "softplus": Activation("Softplus"),
    "hardtanh": Activation("Hardtanh", family="saturating", bounds=(-1.0, 1.0)),
    "relu6": Activation("ReLU6", family="relu"),
    "step": Activation(
        "nntrain.model.activations:Step",
        family="relu",
        note="the course's step: derivative 0, nothing before it learns",
        warning="its derivative is 0 everywhere, so no layer before it learns (the activation lesson's point; "
        "train with relu or a smooth activation)",
    ),
}
OUTPUT_ACTIVATIONS: dict[str, Activation] = {
    **ACTIVATIONS,
    "softmax": Activation("Softmax", across_outputs=True, gives="probs"),
    "log_softmax": Activation("LogSoftmax", across_outputs=True, gives="log_probs"),
}

INITS: dict[str, Init] = {
    "default": Init(None, note="what nn.Linear does on its own"),
    "uniform": Init("uniform_"),
    "normal": Init("normal_"),
    "zeros": Init("zeros_"),
    "ones": Init("ones_"),
    "constant": Init("constant_"),
    "kaiming_uniform": Init("kaiming_uniform_", matrix_only=True),
    "kaiming_normal": Init("kaiming_normal_", matrix_only=True),
    "xavier_uniform": Init("xavier_uniform_", matrix_only=True),
    "xavier_normal": Init("xavier_normal_", matrix_only=True),
    "orthogonal": Init("orthogonal_", matrix_only=True),
    "trunc_normal": Init("trunc_normal_"),
}

LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(
        "CrossEntropyLoss", fused=True, tasks=CLASSES, one_output=False, takes="logits", applies="log-softmax"
    ),
    "nll": Loss("NLLLoss", tasks=CLASSES, one_output=False, takes="log_probs"),
    # takes logits: numerically stable, no sigmoid in the model
    "bce": Loss(
        "BCEWithLogitsLoss",
        fused=True,
        tasks=frozenset({"binary"}),
        takes="logits",
        applies="the sigmoid",
    ),
    "mse": Loss("MSELoss", fused=True),
    "l1": Loss("L1Loss"),
    "smooth_l1": Loss("SmoothL1Loss"),
    "huber": Loss("HuberLoss"),
}

OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(
        "SGD",
        fused=True,
        state=1,
        stacked="sgd",
        note="on the fused step one flat update, momentum, nesterov and weight_decay too",
    ),
    "adagrad": Optimizer("Adagrad", state=1),
    "rmsprop": Optimizer("RMSprop", state=3),  # square average, and momentum and grad average when asked for
    "adam": Optimizer("Adam", state=2, stacked="adam"),
    "adamw": Optimizer("AdamW", state=2, stacked="adam"),
}

SCHEDULERS: dict[str, Schedule] = {
    "none": Schedule(None),
    "step": Schedule("StepLR"),
    "multistep": Schedule("MultiStepLR"),
    "exponential": Schedule("ExponentialLR"),
    "cosine": Schedule("CosineAnnealingLR", note="T_max defaults to train.epochs (less warmup_epochs)"),
    "plateau": Schedule(
        "ReduceLROnPlateau",
        pace="value",
        note="stepped with train.monitor's value after validation; mode follows the monitor",
    ),
    "anneal": Schedule(
        "nntrain.engine.schedules:AnnealOnStall",
        pace="value",
        note="nntrain's own: the optimizer's rate until train.monitor stalls for patience epochs, then a half "
        "cosine to 0 over fraction of the epochs run (at least min_epochs), and the run ends; from_best: the "
        "anneal starts from the best epoch's weights; start: the anneal's first rate, a fraction of the optimizer's",
    ),
    "onecycle": Schedule(
        "OneCycleLR",
        pace="step",
        note="stepped after every step; max_lr defaults to optimizer.lr, total_steps to the run's",
    ),
}
# nntrain's own argument of every schedule: epochs of linear warmup (from lr / (N + 1) up to lr) before it
WARMUP = "warmup_epochs"

TABLES: dict[str, dict[str, Component]] = {
    "activation": ACTIVATIONS,
    "output_activation": OUTPUT_ACTIVATIONS,
    "init": INITS,
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
}
ALIASES: dict[str, dict[str, str]] = {"loss": {"mae": "l1", "ce": "cross_entropy", "binary_cross_entropy": "bce"}}
# The torch module each kind's names live in.
MODULES = {
    "activation": "torch.nn",
    "output_activation": "torch.nn",
    "init": "torch.nn.init",
    "loss": "torch.nn",
    "optimizer": "torch.optim",
    "scheduler": "torch.optim.lr_scheduler",
}
# Arguments the tool fills in itself; a config may not set them.
RESERVED = {
    "params",
    "optimizer",
    "tensor",
    "generator",
    "num_parameters",
    "reduction",
    "inplace",
    "last_epoch",
    "verbose",
}


def canonical(kind: str, name: str) -> str | None:
    """The table key for a (case-insensitive, possibly aliased) name, or None."""
    key = str(name).strip().lower()
    key = ALIASES.get(kind, {}).get(key, key)
    return key if key in TABLES[kind] else None


def record(kind: str, name: str) -> Any:
    """The entry a (case-insensitive, possibly aliased) name stands for; call only with a checked name."""
    return TABLES[kind][canonical(kind, name)]


def names(kind: str, where: Callable[[Any], bool]) -> list[str]:
    """The names of a kind whose entries satisfy `where`, in table order: the suggestions in messages."""
    return [n for n, r in TABLES[kind].items() if where(r)]


def factory(kind: str, name: str) -> Any:
    """The torch class or function a canonical name stands for (None for 'default' init and 'none' scheduler)."""
    attr = TABLES[kind][name].attr
    if attr is None:
        return None
    module, _, own = attr.rpartition(":")  # "nntrain.model.activations:Step": one of nntrain's own, not torch's
    return getattr(importlib.import_module(module or MODULES[kind]), own)


def spec_problems(
    kind: str, spec: dict[str, Any], path: str, arguments_too: bool = True, optimizer: dict | None = None
) -> list[Problem]:
    """Everything wrong with one component spec: unknown name, unknown or bad arguments. With
    arguments_too=False only the name is checked, and torch is not imported. `optimizer`: the optimizer a
    scheduler is checked against (onecycle needs one with momentum or betas)."""
    table = TABLES[kind]
    name = canonical(kind, spec["name"])
    if name is None:
        return [
            Problem(
                f"{path}.name",
                f"unknown {kind.replace('_', ' ')}{did_you_mean(str(spec['name']), table)}; "
                f"choose one of: {', '.join(table)}",
                value=str(spec["name"]),
            )
        ]
    kwargs = {k: v for k, v in spec.items() if k != "name" and not (kind == "scheduler" and k == WARMUP)}
    if table[name].attr is None:
        hint = "".join(did_you_mean(str(k), ["name"]) for k in kwargs)  # scheduler.nmae=cosine
        return [Problem(path, f"'{name}' takes no arguments, got {', '.join(kwargs)}{hint}")] if kwargs else []
    if not arguments_too:
        return []
    allowed = arguments(kind, name)
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        return [
            Problem(
                f"{path}.{k}",
                f"'{name}' has no argument '{k}'{did_you_mean(k, allowed)}; "
                f"its arguments are: {', '.join(allowed) or 'none'}",
            )
            for k in bad
        ]
    ranges = range_problems(kind, name, kwargs, path)
    if ranges:
        return ranges
    try:
        _try_build(kind, factory(kind, name), kwargs, optimizer)
    except (ValueError, TypeError, RuntimeError, IndexError, AssertionError) as e:  # hardtanh's min above max
        return [Problem(path, f"{name}({_fmt_kwargs(kwargs)}) is invalid: {e}")]
    return []


def arguments(kind: str, name: str) -> list[str]:
    """The keyword arguments a config may give to a component."""
    fn = factory(kind, name)
    if fn is None:
        return []
    return [p for p in inspect.signature(fn).parameters if p not in RESERVED]


EMPTY = "optimizer got an empty parameter list"


def _try_build(kind: str, fn: Any, kwargs: dict[str, Any], optimizer: dict | None = None) -> None:
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
        stand_in, group = _stand_in(optimizer)
        stand_in.param_groups, stand_in.defaults, stand_in.state = [{**group, "params": []}], dict(group), {}
        fn(stand_in, **kwargs)
    else:
        _try_call(fn, fn(**tensor_arguments(kwargs)), kwargs)


def _try_call(cls: Any, built: Any, kwargs: dict[str, Any]) -> None:
    """A loss or activation called once on a few numbers: torch checks some arguments only then (huber's delta,
    label_smoothing, pos_weight's length, an activation's slope given as text)."""
    import torch

    x = torch.linspace(-1.0, 1.0, 12).reshape(4, 3)
    if issubclass(cls, (torch.nn.Softmax, torch.nn.LogSoftmax)):
        return  # across the classes: dim 1, given when it is built for the model
    if not issubclass(cls, torch.nn.modules.loss._Loss):
        built(x)
    elif issubclass(cls, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
        k = len(kwargs["weight"]) if isinstance(kwargs.get("weight"), (list, tuple)) else 3
        built(torch.linspace(-1.0, 1.0, 4 * k).reshape(4, k), torch.arange(4) % k)
    else:  # bce's logits and 0/1 targets; a regression loss's predictions and targets
        built(x[:, :1], (x[:, 1:2] > 0).float())


def _stand_in(optimizer: dict | None) -> tuple[Any, dict[str, Any]]:
    """An unbuilt optimizer of the config's kind and its one param group's settings (its defaults, then the
    config's), for a scheduler to be checked against."""
    import torch

    known = optimizer and canonical("optimizer", optimizer["name"])  # an unknown name is said elsewhere
    cls, group = optimizer_settings(optimizer) if known else (torch.optim.SGD, _defaults(torch.optim.SGD))
    group["lr"] = group["lr"] if isinstance(group.get("lr"), (int, float)) else 0.1  # lr: auto, or none given
    return object.__new__(cls), group


def optimizer_settings(spec: dict) -> tuple[Any, dict[str, Any]]:
    """The optimizer class a spec names and the param group torch would build from it: the class's defaults,
    then the spec's values (a YAML list as the tuple torch keeps; AdamW's decoupled weight decay, which its
    signature does not show, included)."""
    import torch

    cls = factory("optimizer", canonical("optimizer", spec["name"]))
    group = _defaults(cls)
    group |= {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "name" and k in group}
    if issubclass(cls, torch.optim.AdamW):
        group["decoupled_weight_decay"] = True
    return cls, group


def _defaults(cls: Any) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}


# Loss arguments that torch takes as tensors and a YAML file gives as lists of numbers
TENSOR_ARGUMENTS = ("weight", "pos_weight")


def tensor_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A loss's `weight: [1, 2, 3]` as the float tensor torch wants (it refuses a list)."""
    import torch

    return {
        k: torch.tensor(v, dtype=torch.float32) if k in TENSOR_ARGUMENTS and v is not None else v
        for k, v in kwargs.items()
    }


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def build(kind: str, spec: dict[str, Any], *args: Any, **extra: Any) -> Any:
    """Construct a validated spec: build('optimizer', spec, model.parameters())."""
    kwargs = {k: v for k, v in spec.items() if k != "name" and not (kind == "scheduler" and k == WARMUP)}
    if kind == "loss":
        kwargs = tensor_arguments(kwargs)
    return factory(kind, canonical(kind, spec["name"]))(*args, **kwargs, **extra)


def init_tensor(spec: dict[str, Any], tensor: Any) -> None:
    fn = factory("init", canonical("init", spec["name"]))
    if fn is not None:
        fn(tensor, **{k: v for k, v in spec.items() if k != "name"})
