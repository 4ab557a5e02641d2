"""What a sweep searches: the `sweep:` section of a config read into dimensions (a key, its values or range),
the study's settings (trials, direction, pruner, heartbeat), every problem reported at once; a trial's draw
from each dimension, and a continued study's space checked against them; the pruner and the grid sampler."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any

import optuna

from nntrain import metrics
from nntrain.config.loading import load_config
from nntrain.config.schema import Config, to_plain
from nntrain.errors import Problem, UserError, did_you_mean
from nntrain.plaindata import flow
from nntrain.tools.studies import (
    DEFAULT_HEARTBEAT,
)

SETTINGS = ("trials", "direction", "pruner", "heartbeat", "show_test")


PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
}


DEFAULT_TRIALS = 20


@dataclass
class Dimension:
    key: str  # a dotted config key
    choices: list[str] | None = None  # values as YAML flow text: Optuna's categorical values must be scalars
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))

    def grid(self) -> list[str] | None:
        """Every value --grid runs, or None for a continuous range."""
        if self.choices is not None:
            return self.choices
        if self.step is None:
            return None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [
            flow(self.low + i * self.step if self.is_int else round(self.low + i * self.step, 12)) for i in range(n)
        ]


@dataclass
class Plan:
    base: dict  # the resolved config without its sweep section
    dims: list[Dimension]
    trials: int
    direction: str
    pruner: dict
    monitor: str
    heartbeat: int  # seconds between a running trial's heartbeats
    show_test: bool = False  # each trial's line shows its test metric too (choose on validation: off by default)


def plan(cfg: Config, trials: int | None = None, grid: bool = False) -> Plan:
    """The sweep section checked as a whole: every problem at once, each value tried against the config."""
    section = cfg.sweep
    if not section:
        raise UserError(
            "the config has no sweep section; add one, e.g. sweep: {optimizer.lr: {low: 1e-4, high: 1e-1, "
            "log: true}, trials: 20}"
        )
    base = to_plain(cfg)
    base.pop("sweep")
    monitor = metrics.monitor_name(cfg.train.monitor)
    problems: list[str | Problem] = []
    dims = []
    names = [f"{k}={flow(v)}" for k, s in section.items() if k.endswith(".name") and isinstance(s, list) for v in s]
    for key, spec in section.items():
        if key in SETTINGS:
            continue
        dim, found = _dimension(key, spec, base, [] if key.endswith(".name") else names)
        problems += found
        if dim is not None:
            dims.append(dim)
    if not dims and not problems:
        problems.append("sweep: no key to search over; add one, e.g. optimizer.lr: {low: 1e-4, high: 1e-1, log: true}")
    direction = str(section.get("direction", "auto")).lower()
    wanted = "maximize" if metrics.maximize(monitor) else "minimize"
    if direction == "auto":
        direction = wanted
    elif direction not in ("minimize", "maximize"):
        problems.append(f"sweep.direction={direction}: choose auto, minimize or maximize")
    elif direction != wanted:
        problems.append(
            f"sweep.direction={direction}: train.monitor={monitor} is better when "
            f"{'higher' if wanted == 'maximize' else 'lower'}; use direction: auto"
        )
    pruner = section.get("pruner", "median")
    pruner = {"name": pruner} if isinstance(pruner, str) else pruner
    problems += _pruner_problems(pruner)
    n = trials if trials is not None else section.get("trials", DEFAULT_TRIALS)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        problems.append(f"sweep.trials={n}: must be a whole number of at least 1")
    heartbeat = section.get("heartbeat", DEFAULT_HEARTBEAT)
    if not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or not 1 <= heartbeat <= 3600:
        problems.append(f"sweep.heartbeat={heartbeat}: seconds between a trial's heartbeats, a whole number 1-3600")
    show_test = section.get("show_test", False)
    if not isinstance(show_test, bool):
        problems.append(f"sweep.show_test={show_test}: true or false")
    if grid and not problems:
        continuous = [d.key for d in dims if d.grid() is None]
        if continuous:
            problems.append(
                f"--grid runs every combination of listed values; {', '.join(continuous)} "
                f"{'is a range' if len(continuous) == 1 else 'are ranges'} without a step: give a list "
                f"of values or a step"
            )
        else:
            size = math.prod(len(d.grid()) for d in dims)
            n = size if trials is None else min(n, size)
    if problems:
        raise UserError(problems, header=f"{len(problems)} problem(s) in the sweep section:")
    return Plan(base, dims, n, direction, pruner, monitor, heartbeat, show_test)


def distribution(d: Dimension) -> Any:
    """The Optuna distribution a dimension's values are drawn from: what a study records of each searched key."""
    if d.choices is not None:
        return optuna.distributions.CategoricalDistribution(d.choices)
    if d.is_int:
        return optuna.distributions.IntDistribution(d.low, d.high, step=d.step or 1, log=d.log)
    return optuna.distributions.FloatDistribution(float(d.low), float(d.high), step=d.step, log=d.log)


def suggest(trial: Any, d: Dimension) -> str:
    """A trial's value of the dimension, drawn from distribution(d): the space check_space compares."""
    dist = distribution(d)
    if d.choices is not None:
        return trial.suggest_categorical(d.key, dist.choices)
    draw = trial.suggest_int if d.is_int else trial.suggest_float
    return flow(draw(d.key, dist.low, dist.high, step=dist.step, log=dist.log))


def check_space(study: Any, dims: list[Dimension], where: str) -> None:
    """A study continued with the space its trials were drawn from, else refused key by key (old -> new): a
    changed list of values made Optuna fail mid-sweep, and a changed range mixed two searches in one study."""
    old: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):  # in order: a key's latest space wins
        old |= trial.distributions
    if not old:
        return
    new = {d.key: distribution(d) for d in dims}
    changed = [
        f"sweep.{k}: {_described(old.get(k), 'not searched in the study')} -> {_described(new.get(k), 'not searched')}"
        for k in dict.fromkeys([*old, *new])
        if old.get(k) != new.get(k)
    ]
    if changed:
        raise UserError(
            [
                *changed,
                "to search the new space, give another --study (or --storage); to go on with this study, "
                "give the sweep section its space as it was",
            ],
            header=f"{where} searched another space than this sweep section gives:",
        )


def _described(dist: Any, none: str) -> str:
    """A study's space for a key as the sweep section writes it: [a, b] or {low: .., high: ..}; `none` if None."""
    if dist is None:
        return none
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return f"[{', '.join(map(str, dist.choices))}]"
    shown = {"low": dist.low, "high": dist.high, "log": dist.log or None, "step": dist.step}
    if isinstance(dist, optuna.distributions.IntDistribution) and dist.step == 1:
        shown["step"] = None
    return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in shown.items() if v is not None) + "}"


UNCOMPARED = {
    "data.target": "different targets",
    "data.path": "different tables",
    "data.task": "different tasks",
}


def _dimension(key: str, spec: Any, base: dict, names: list[str]) -> tuple[Dimension | None, list[str]]:
    """One searched key, each of its values tried on the base config, or with one of the component names the
    sweep gives (`names`: optimizer.momentum beside optimizer.name: [sgd])."""
    where = f"sweep.{key}"
    if key in ("name", "runs_dir", "sweep"):
        return None, [f"{where}: {key} is set by the sweep itself and cannot be searched"]
    if key in UNCOMPARED:  # another target or table: trials whose scores measure different things
        return None, [f"{where}: trials on {UNCOMPARED[key]} cannot be ranked against each other; sweep each apart"]
    if isinstance(spec, list):
        if not spec:
            return None, [f"{where}: the list of values is empty"]
        dim = Dimension(key, choices=[flow(v) for v in spec])
        tried = dim.choices
    elif isinstance(spec, dict):
        unknown = [k for k in spec if k not in ("low", "high", "log", "step")]
        if unknown:
            return None, [
                f"{where}.{k}: a range takes low, high, log and step{did_you_mean(k, ['low', 'high', 'log', 'step'])}"
                for k in unknown
            ]
        low, high, log, step = spec.get("low"), spec.get("high"), bool(spec.get("log", False)), spec.get("step")
        numbers = [v for v in (low, high) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) < 2:
            return None, [f"{where}: a range needs numbers low and high, e.g. {{low: 1e-4, high: 1e-1, log: true}}"]
        if not low < high:
            return None, [f"{where}: low ({low}) must be below high ({high})"]
        if log and low <= 0:
            return None, [f"{where}: a log range needs low above 0 (got {low})"]
        if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
            return None, [f"{where}.step={step}: a step must be a positive number, and a log range takes none"]
        dim = Dimension(key, low=low, high=high, log=log, step=step)
        tried = [flow(low), flow(high)]
    else:
        return None, [f"{where}={spec!r}: give a list of values, e.g. [sgd, adam], or a range {{low: ..., high: ...}}"]
    problems: dict[str, Problem] = {}  # a problem of the key itself (an unknown key) is told once, not per value
    for value in tried:  # each value must make a valid config on its own, as a trial would build it
        try:
            _valid_with_one(f"{key}={value}", base, names)
        except UserError as e:
            for p in e.problems:
                inner = dataclasses.replace(p, from_command_line=False)
                told = (
                    dataclasses.replace(inner, key=f"sweep.{key}")
                    if p.key == key
                    else Problem(where, str(inner), value)
                )
                problems.setdefault(str(inner), told)
    return dim, list(problems.values())


def _valid_with_one(override: str, base: dict, names: list[str]) -> None:
    """The override on the base config, or with one of the swept component names; the base's error if none."""
    for name in names:
        with contextlib.suppress(UserError):
            load_config(None, [name, override], raw=copied(base))
            return
    load_config(None, [override], raw=copied(base))


def copied(base: dict) -> dict:
    return copy.deepcopy(base)


def _pruner_problems(spec: Any) -> list[str]:
    if not isinstance(spec, dict) or "name" not in spec:
        return [f"sweep.pruner={spec!r}: give a name ({', '.join(PRUNERS)}) or {{name: median, n_warmup_steps: 5}}"]
    name = str(spec["name"]).lower()
    if name not in PRUNERS:
        return [
            f"sweep.pruner.name={spec['name']}: unknown pruner{did_you_mean(name, PRUNERS)}; choose one of: "
            f"{', '.join(PRUNERS)}"
        ]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        make_pruner(spec)
    except (TypeError, ValueError) as e:
        return [f"sweep.pruner: {name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) is invalid: {e}"]
    return []


def make_pruner(spec: dict) -> Any:
    """The Optuna pruner a checked spec names; TypeError or ValueError for bad arguments."""
    cls = getattr(optuna.pruners, PRUNERS[str(spec["name"]).lower()])
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    inspect.signature(cls).bind(**kwargs)  # names the unknown argument, where the constructor's error may not
    return cls(**kwargs)


def grid_sampler(space: dict) -> Any:
    """A GridSampler that does not stop the study when the grid is used up: that works only inside
    study.optimize; here the trial count under the claim lock ends the sweep."""
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return Grid(space)
