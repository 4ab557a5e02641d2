"""Checks that the parts of a config agree, as pure functions: a config (and, once the data is read, its
task and class count) in, Problem records out. Nothing here changes the config.

The rules read the component records (a loss's tasks, what it takes from the model, what an output
activation gives), so a new loss or activation is checked without a new rule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from nntrain import metrics
from nntrain.config.components import LOSSES, OUTPUT_ACTIVATIONS, canonical, names, record, spec_problems
from nntrain.config.data_section import EXCEL
from nntrain.config.schema import AUTO_LOSS_ARGS, Config, loss_name
from nntrain.errors import Problem, did_you_mean


def semantic_problems(cfg: Config, arguments_too: bool = True) -> list[Problem]:
    """Problems pydantic's types cannot see: component names and arguments, and parts that disagree.
    arguments_too=False checks names only, without importing torch."""
    spec = functools.partial(spec_problems, arguments_too=arguments_too)
    m = cfg.model
    problems = spec("activation", m.activation, "model.activation")
    problems += spec("output_activation", m.output_activation, "model.output_activation")
    problems += _init_problems(cfg, spec)
    for i, layer in enumerate(m.layers or []):
        if layer.activation:
            problems += spec("activation", layer.activation, f"model.layers.{i}.activation")
    out_act = canonical("output_activation", m.output_activation["name"])
    if out_act is not None and OUTPUT_ACTIVATIONS[out_act].across_outputs and "dim" in m.output_activation:
        problems.append(
            Problem(
                "model.output_activation.dim",
                f"{out_act} always runs across the classes (dim 1); remove dim",
                value=str(m.output_activation["dim"]),
            )
        )
    problems += _member_problems(m, out_act)
    problems += _training_problems(cfg) + _sheet_problems(cfg)
    problems += _loss_spec_problems(cfg.loss, spec)
    lr = cfg.optimizer.get("lr", 1.0)
    lr_problem = None if lr == "auto" else _lr_problem(lr)  # auto: fit sets it from the batch size
    if lr_problem is not None or lr == "auto":  # torch's own check of it names no key: the rest are checked alone
        problems += [lr_problem] if lr_problem else []
        problems += spec("optimizer", {k: v for k, v in cfg.optimizer.items() if k != "lr"}, "optimizer")
    else:
        problems += spec("optimizer", cfg.optimizer, "optimizer")
    scheduler = cfg.scheduler
    if cfg.train.epochs == "auto" and canonical("scheduler", scheduler["name"]) == "cosine":
        scheduler = {"T_max": 1, **scheduler}  # fit sets it to the epochs it chooses
    if canonical("scheduler", scheduler["name"]) == "onecycle":
        scheduler = {"max_lr": 0.1, "total_steps": 1, **scheduler}  # fit sets them from optimizer.lr and the rows
    problems += spec("scheduler", scheduler, "scheduler", optimizer=cfg.optimizer)
    problems += _milestone_problems(cfg) + _warmup_problems(cfg)
    if cfg.data.task != "auto":
        problems += task_problems(cfg, cfg.data.task, None)
    return problems


def _member_problems(m: Any, out_act: str | None) -> list[Problem]:
    """model.ensemble and model.shared_members: members average their probabilities from logits, and one model
    is one of the two kinds."""
    problems = []
    for key, k in (("ensemble", m.ensemble), ("shared_members", m.shared_members)):
        if k > 1 and out_act is not None and OUTPUT_ACTIVATIONS[out_act].family != "linear":
            problems.append(
                Problem(
                    f"model.{key}",
                    f"the members' probabilities are averaged from their logits; with model.{key} use "
                    f"output_activation: identity (not {out_act})",
                    value=str(k),
                )
            )
    if m.ensemble > 1 and m.shared_members > 1:
        problems.append(
            Problem(
                "model.shared_members",
                f"model.ensemble={m.ensemble} trains members apart and shared_members members that share their layers: "
                "choose one",
                value=str(m.shared_members),
            )
        )
    return problems


def _lr_problem(lr: object) -> Problem | None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        why = "must be a number greater than 0, or auto"
    elif not math.isfinite(lr):
        why = "must be a finite number greater than 0"
    elif lr <= 0:
        why = "must be greater than 0"
    else:
        return None
    return Problem("optimizer.lr", f"{why}, e.g. lr: 0.001", value=str(lr))


def _init_problems(cfg: Config, spec: functools.partial) -> list[Problem]:
    m = cfg.model
    problems = []
    inits = [("model.init", m.init)] + [
        (f"model.layers.{i}.init", lay.init) for i, lay in enumerate(m.layers or []) if lay.init
    ]
    for path, init in inits:
        problems += spec("init", init.weight, f"{path}.weight")
        problems += spec("init", init.bias, f"{path}.bias")
        name = canonical("init", init.bias["name"])
        if name is not None and record("init", name).matrix_only:
            problems.append(
                Problem(
                    f"{path}.bias",
                    "a bias is 1-D and has no fan-in/fan-out; use zeros, constant, uniform, normal or default",
                    value=str(init.bias["name"]),
                )
            )
    return problems


def _training_problems(cfg: Config) -> list[Problem]:
    problems = []
    if cfg.train.compile and cfg.train.engine == "fused":
        problems.append(
            Problem(
                "train.compile",
                "compile runs the autograd step, and engine: fused asks for the "
                "written-out step; use engine: auto with compile, or drop compile",
                value="true",
                leans_on=("train.engine",),
            )
        )
    if cfg.train.batch_size == 1 and any(lay.batch_norm for lay in cfg.model.resolved_layers()):
        problems.append(
            Problem(
                "train.batch_size",
                "batch norm needs at least two rows per batch to normalise; "
                "use a larger batch or model.batch_norm: false",
                value="1",
                leans_on=("model.batch_norm", "model.layers"),
            )
        )
    return problems


def _sheet_problems(cfg: Config) -> list[Problem]:
    """data.sheet names a sheet of an Excel workbook: on any other data.path it would be ignored."""
    path = str(cfg.data.path)
    if cfg.data.sheet is None or path.lower().endswith(EXCEL):
        return []
    return [
        Problem(
            "data.sheet",
            f"names a sheet of an Excel workbook ({', '.join(EXCEL)}), and data.path={path} is not one; remove "
            f"data.sheet",
            value=cfg.data.sheet,
            leans_on=("data.path",),
        )
    ]


def _warmup_problems(cfg: Config) -> list[Problem]:
    """scheduler.warmup_epochs: a whole number of epochs, fewer than the run's, before a schedule that steps
    once per epoch (plateau and onecycle keep their own pace)."""
    warm = cfg.scheduler.get("warmup_epochs")
    if warm is None:
        return []
    key, name = "scheduler.warmup_epochs", canonical("scheduler", cfg.scheduler["name"])
    if isinstance(warm, bool) or not isinstance(warm, int) or warm < 1:
        return [Problem(key, "give a whole number of epochs, 1 or more", value=str(warm))]
    if name in ("plateau", "onecycle", "anneal"):
        return [Problem(key, f"{name} does not follow a warmup (onecycle warms up itself)", value=str(warm))]
    epochs = cfg.train.epochs
    if epochs != "auto" and warm >= epochs:
        return [
            Problem(key, f"must be fewer than train.epochs ({epochs})", value=str(warm), leans_on=("train.epochs",))
        ]
    return []


def _milestone_problems(cfg: Config) -> list[Problem]:
    if canonical("scheduler", cfg.scheduler["name"]) != "multistep":
        return []
    milestones = cfg.scheduler.get("milestones")
    late = (
        [x for x in milestones if isinstance(x, int) and x >= cfg.train.epochs]
        if isinstance(milestones, list) and isinstance(cfg.train.epochs, int)
        else []
    )
    if not late:
        return []
    return [
        Problem(
            "scheduler.milestones",
            f"{late} at or past the last epoch ({cfg.train.epochs}) never take effect; "
            f"lower them or raise train.epochs",
            value=str(milestones),
            leans_on=("train.epochs",),
        )
    ]


def task_problems(cfg: Config, task: str, n_classes: int | None) -> list[Problem]:
    """Loss, output activation and monitor against the task (and the number of classes, once the data is read)."""
    problems = _loss_task_problems(cfg, task, n_classes) + _output_problems(cfg, task)
    problems += _class_weight_problems(cfg, task, n_classes)
    monitor = metrics.monitor_name(cfg.train.monitor)
    allowed = metrics.monitors(task)
    if monitor not in allowed:
        problems.append(
            Problem(
                "train.monitor",
                f"not measured for {task}{did_you_mean(monitor, allowed)}; choose one of: {', '.join(sorted(allowed))}",
                value=cfg.train.monitor,
                leans_on=("data.task",),
            )
        )
    return problems


def _class_weight_problems(cfg: Config, task: str, n_classes: int | None) -> list[Problem]:
    """loss.weight: one number a class (known once the data is read)."""
    weight = cfg.loss.get("weight")
    if not n_classes or task == "regression" or not isinstance(weight, list) or len(weight) == n_classes:
        return []
    return [
        Problem(
            "loss.weight",
            f"{len(weight)} weights for the target's {n_classes} classes: give one a class",
            value=str(weight),
        )
    ]


def _loss_spec_problems(loss: dict, spec: Callable) -> list[Problem]:
    """The loss's name and arguments; `auto` takes label_smoothing alone, checked as cross_entropy's."""
    if str(loss["name"]).lower() != "auto":
        return spec("loss", loss, "loss")
    extra = [k for k in loss if k not in ("name", *AUTO_LOSS_ARGS)]
    if extra:
        message = (
            f"'auto' takes no arguments but {', '.join(AUTO_LOSS_ARGS)} (got {', '.join(extra)}); "
            f"name the loss, e.g. {{name: huber, delta: 2.0}}"
        )
        return [Problem("loss", message)]
    given = {k: v for k, v in loss.items() if k != "name"}
    return spec("loss", {"name": "cross_entropy", **given}, "loss") if given else []


def _either(choices: list[str]) -> str:
    """a, b or c"""
    return " or ".join([", ".join(choices[:-1]), choices[-1]] if len(choices) > 1 else choices)


def _loss_task_problems(cfg: Config, task: str, n_classes: int | None) -> list[Problem]:
    name = loss_name(cfg, task)
    loss = LOSSES.get(name)
    if loss is None or task in loss.tasks:  # an unknown name is told by the name check
        return []
    lean = ("data.task",)
    if task == "regression":
        return [
            Problem(
                "loss",
                f"the target is a regression target; use {_either(names('loss', lambda r: task in r.tasks))}",
                value=name,
                leans_on=lean,
            )
        ]
    logits = _either(names("loss", lambda r: task in r.tasks and r.takes == "logits"))
    classes = f" ({n_classes} classes)" if n_classes else ""
    if loss.tasks & {"multiclass", "binary"}:  # a loss for other classes: bce on more than two
        return [
            Problem(
                "loss",
                f"{name} is for two classes, the target has more{classes}; use {logits}",
                value=name,
                leans_on=lean,
            )
        ]
    return [Problem("loss", f"the target is {task} classification{classes}; use {logits}", value=name, leans_on=lean)]


def _output_problems(cfg: Config, task: str) -> list[Problem]:
    """The output activation against what the loss takes: logits, log-probabilities or any value."""
    name = loss_name(cfg, task)
    loss = LOSSES.get(name)
    act_name = canonical("output_activation", cfg.model.output_activation["name"])
    act = OUTPUT_ACTIVATIONS.get(act_name) if act_name else None
    if loss is None:
        return []

    def wrong(message: str) -> Problem:
        return Problem("model.output_activation", message, value=act_name, leans_on=("loss", "data.task"))

    log_probs = names("output_activation", lambda r: r.gives == "log_probs")[0]
    logits_out = act is not None and loss.takes == "logits"
    problems = []
    if logits_out and act.across_outputs and not loss.one_output:
        takes_log_probs = _either(names("loss", lambda r: r.takes == "log_probs" and r.tasks == loss.tasks))
        problems.append(
            wrong(
                f"{name} applies {loss.applies} itself; use output_activation: identity (or loss: "
                f"{takes_log_probs} with {log_probs})"
            )
        )
    if loss.takes == "log_probs" and (act is None or act.gives != "log_probs"):
        instead = _either(names("loss", lambda r: r.takes == "logits" and r.tasks == loss.tasks))
        problems.append(
            Problem(
                "loss",
                f"{name} expects log-probabilities; set model.output_activation: {log_probs} (or use {instead})",
                value=name,
                leans_on=("model.output_activation",),
            )
        )
    if task == "regression" and act is not None and act.family != "linear":
        problems.append(
            wrong(
                "a regression output must be free to take any value (the target is standardized, half "
                "of it negative); use identity"
            )
        )
    if logits_out and loss.one_output and act.across_outputs:
        problems.append(
            wrong(f"with {name} there is one output, and {act_name} over one value is constant; use identity")
        )
    if logits_out and loss.one_output and act.gives == "probs" and not act.across_outputs:
        problems.append(
            wrong(f"{name} here takes logits and applies {loss.applies} itself; use output_activation: identity")
        )
    return problems
