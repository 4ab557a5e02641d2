"""`nntrain sweep`: an Optuna study over any config keys. Each trial is a normal run folder under
runs/STUDY/; the study lives in a database (SQLite in runs/ by default, PostgreSQL to share it across
machines), so any number of `nntrain sweep` processes can work on one study (studies.py: the claim lock
under which a worker starts a trial, and the heartbeat that re-runs a dead worker's trial). Under the claim
lock the grid sampler sees every running trial, so no grid point runs twice.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import yaml

from nntrain import metrics
from nntrain.config.loading import load_config
from nntrain.config.schema import FOLDER_NAME_RULE, Config, folder_name, to_plain
from nntrain.engine.loop import Halt
from nntrain.engine.run_groups import fit_many
from nntrain.engine.state import configure
from nntrain.engine.stopping import SIGNALS, Diverged, Interrupted, catching_signals
from nntrain.errors import Problem, UserError, did_you_mean, first_line
from nntrain.plaindata import flow
from nntrain.runs.tracking import tracker_for
from nntrain.tools.studies import (
    DEFAULT_HEARTBEAT,
    ask,
    beating,
    claim_lock,
    fail_stale_trials,
    masked,
    open_storage,
    storage_url,
    tally,
)

SETTINGS = ("trials", "direction", "pruner", "heartbeat")
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
}
DEFAULT_TRIALS = 20
AUTO_BATCH = 16  # trials claimed at once by default; together.py splits a group that memory cannot hold


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
    for key, spec in section.items():
        if key in SETTINGS:
            continue
        dim, found = _dimension(key, spec, base)
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
    return Plan(base, dims, n, direction, pruner, monitor, heartbeat)


def _dimension(key: str, spec: Any, base: dict) -> tuple[Dimension | None, list[str]]:
    where = f"sweep.{key}"
    if key in ("name", "runs_dir", "sweep"):
        return None, [f"{where}: {key} is set by the sweep itself and cannot be searched"]
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
            load_config(None, [f"{key}={value}"], raw=_copy(base))
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


def _copy(base: dict) -> dict:
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
        _pruner(spec)
    except (TypeError, ValueError) as e:
        return [f"sweep.pruner: {name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) is invalid: {e}"]
    return []


# ---------------------------------------------------------------- storage and the claim lock


def _pruner(spec: dict) -> Any:
    """The Optuna pruner a checked spec names; TypeError or ValueError for bad arguments."""
    cls = getattr(optuna.pruners, PRUNERS[str(spec["name"]).lower()])
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    inspect.signature(cls).bind(**kwargs)  # names the unknown argument, where the constructor's error may not
    return cls(**kwargs)


def _grid(space: dict) -> Any:
    """A GridSampler that does not stop the study when the grid is used up: that works only inside
    study.optimize; here the trial count under the claim lock ends the sweep."""
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return Grid(space)


def open_study(url: str, name: str, p: Plan, grid: bool, log: Callable[[str], None]) -> tuple[Any, Any]:
    """(study, storage), created or loaded under the claim lock: two workers starting at once on a new SQLite
    file would both try to create its tables."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with claim_lock(url, name, log):
        try:
            storage = open_storage(url, p.heartbeat)
        except ImportError as e:
            raise UserError(
                f'--storage {masked(url)}: {e}; pip install -e ".[sweep]" installs the PostgreSQL driver'
            ) from None
        except Exception as e:  # a server that cannot be reached, a bad password: sqlalchemy's many error types
            raise UserError(f"--storage {masked(url)}: cannot open it: {first_line(e)}") from None
        sampler = _grid({d.key: d.grid() for d in p.dims}) if grid else optuna.samplers.TPESampler()
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=_pruner(p.pruner),
            direction=p.direction,
            load_if_exists=True,
        )
    if study.direction.name.lower() != p.direction:
        raise UserError(
            f"study {name} in {masked(url)} was made to {study.direction.name.lower()}; this config asks to "
            f"{p.direction}: use another --study"
        )
    return study, storage


# ---------------------------------------------------------------- trials


class Pruner:
    """A trial's should_stop hook: reports each epoch's monitored value to Optuna, and halts a pruned trial."""

    def __init__(self, trial: Any, monitor: str, pruner: str):
        self.trial, self.monitor, self.pruner = trial, monitor, pruner

    def __call__(self, epoch: int, row: dict[str, Any]) -> Halt | None:
        value = row[self.monitor]
        if math.isfinite(value):
            self.trial.report(value, epoch)
        if self.trial.should_prune():
            return Halt(
                "pruned", f"pruned by the sweep's {self.pruner} pruner at epoch {epoch} ({self.monitor}={value:.4f})"
            )
        return None


def sweep(
    path: Path,
    overrides: list[str],
    trials: int | None,
    storage: str | None,
    study_name: str | None,
    grid: bool,
    log: Callable[[str], None],
    batch: int = AUTO_BATCH,
    mlflow: str | bool | None = None,
) -> dict:
    """Run trials until the study holds the requested number; return the study's results. `batch`: trials
    claimed and trained together at most (those of one shape share the stacked engine); 1: one at a time."""
    if study_name is not None and not folder_name(study_name):  # it names the folder of the trials
        raise UserError(f"--study {study_name}: {FOLDER_NAME_RULE} under runs_dir")
    cfg = configure(path, overrides)
    p = plan(cfg, trials, grid)
    name = study_name or cfg.name
    url = storage_url(storage, f"sqlite:///{(Path(cfg.runs_dir) / 'sweeps.db').resolve()}")
    root = Path(cfg.runs_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    tracker = tracker_for(mlflow, cfg)  # the trials are nested MLflow runs under one run of the study
    parent = tracker.parent(name) if tracker else None
    track = (lambda run_dir: tracker.log_run(run_dir, parent=parent)) if tracker else None
    study, db = open_study(url, name, p, grid, log)
    log(
        f"study {name} in {masked(url)}: {p.trials} trials in all, {p.direction} {p.monitor}; "
        f"{'grid' if grid else 'TPE'} sampler, {p.pruner['name']} pruner; up to {batch} trial(s) trained at once; "
        f"run folders under {root}/"
    )
    try:
        with catching_signals():
            ran = _work(study, db, url, p, root, path.parent, log, batch, track)
        result = finish(study, root, p, log) | {"ran_here": ran}
        if tracker:
            tracker.end_parent(parent, result, root, p.monitor)
        return result
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        raise UserError(
            f"--storage {masked(url)}: the study's database stopped answering ({first_line(e, 200)}); the trials it "
            f"recorded are kept: run the sweep again to go on"
        ) from None


def _work(
    study: Any,
    db: Any,
    url: str,
    p: Plan,
    root: Path,
    config_dir: Path,
    log: Callable[[str], None],
    batch: int,
    track: Callable[[Path], Any] | None = None,
) -> int:
    """Trials until the study holds p.trials that count, none running or waiting; the trials this worker ran.
    Up to `batch` trials are claimed at once and trained together where their shapes agree (together.py)."""
    ran, told_waiting = 0, False
    while True:
        with claim_lock(url, study.study_name, log):
            fail_stale_trials(study)  # a worker that stopped beating: its trial failed and queued again
            counted, running, waiting = tally(study.get_trials(deepcopy=False))
            trials = []
            while len(trials) < batch and (waiting or counted < p.trials):
                trials.append(ask(study, db, p.heartbeat))
                waiting, counted = (waiting - 1, counted) if waiting else (waiting, counted + 1)
        if not trials and not running:
            return ran
        if not trials:  # other workers' last trials: wait for them to end, or to go stale and come back
            if not told_waiting:
                log(f"waiting for {running} running trial(s) of other workers to end")
                told_waiting = True
            if SIGNALS.signum is not None:  # a signal while waiting: nothing of this worker's to save
                raise Interrupted(SIGNALS.signum)
            time.sleep(min(p.heartbeat, 5))
            continue
        with contextlib.ExitStack() as beats:
            for trial in trials:
                beats.enter_context(beating(db, trial, p.heartbeat))
            ran += _run_trials(study, trials, p, root, config_dir, log, track)


def _run_trials(
    study: Any,
    trials: list[Any],
    p: Plan,
    root: Path,
    config_dir: Path,
    log: Callable[[str], None],
    track: Callable[[Path], Any] | None = None,
) -> int:
    """The trials, each in its own run folder, told to the study: completed, pruned or failed (and each handed
    to `track`, MLflow's). How many trained."""
    params = [{d.key: _suggest(trial, d) for d in p.dims} for trial in trials]
    cfgs = []
    for trial, chosen in zip(trials, params):
        raw = _copy(p.base)
        raw["runs_dir"] = str(root)
        cfgs.append(
            load_config(None, [f"{k}={v}" for k, v in chosen.items()], raw=raw, name=f"trial-{trial.number:04d}")
        )
    t0 = time.perf_counter()

    def started(runs: list[Any]) -> None:
        for trial, run in zip(trials, runs):
            trial.set_user_attr("run_dir", str(run.run_dir))

    hooks = [Pruner(trial, p.monitor, p.pruner["name"]) for trial in trials]
    try:
        results = fit_many(cfgs, config_dir, lambda m: None, should_stop=hooks, started=started)
    except BaseException:  # a signal or a bad data value: the trials are marked failed, the sweep stops
        for trial in trials:
            with contextlib.suppress(Exception):  # not when the database itself is what failed
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    seconds = time.perf_counter() - t0
    for trial, chosen, summary in zip(trials, params, results):
        _told(study, trial, p, chosen, summary, seconds, log)
        if track is not None:
            track(Path(summary.run_dir if isinstance(summary, Diverged) else summary["run_dir"]))
    return sum(isinstance(r, dict) for r in results)


def _told(study: Any, trial: Any, p: Plan, chosen: dict, summary: Any, seconds: float, log: Callable) -> None:
    """One trial's result told to the study and logged (a divergence fails the trial; the sweep goes on: a high
    lr is what sweeps try)."""
    shown = " ".join(f"{k}={_short(v)}" for k, v in chosen.items())
    if isinstance(summary, Diverged):
        _tell(study, trial, log, state=optuna.trial.TrialState.FAIL)
        log(f"trial {trial.number}: failed: {summary}")
    elif summary["status"] == "pruned":
        _tell(study, trial, log, state=optuna.trial.TrialState.PRUNED)
        log(f"trial {trial.number}: {shown} -> {summary['stopped']}")
    else:
        _tell(study, trial, log, values=summary["best_value"])
        log(
            f"trial {trial.number}: {shown} -> {p.monitor}={summary['best_value']:.4f} "
            f"(test {_headline(summary)}; {seconds:.1f} s)"
        )


def _tell(study: Any, trial: Any, log: Callable[[str], None], **result: Any) -> None:
    """The trial's end told to the study; if another worker already failed it as stale (its heartbeats were
    missed) it has been queued again, and this result stays in its run folder only."""
    try:
        study.tell(trial, **result)
    except optuna.exceptions.UpdateFinishedTrialError:
        log(
            f"trial {trial.number}: another worker failed it as stale meanwhile and queued it again; its run "
            f"folder keeps this result"
        )


def _suggest(trial: Any, d: Dimension) -> str:
    if d.choices is not None:
        return trial.suggest_categorical(d.key, d.choices)
    if d.is_int:
        return flow(trial.suggest_int(d.key, d.low, d.high, step=d.step or 1, log=d.log))
    return flow(trial.suggest_float(d.key, float(d.low), float(d.high), step=d.step, log=d.log))


def _short(value: str) -> str:
    """0.0025965878327835817 -> 0.002597 in what a person reads; the trial itself uses the full value."""
    try:
        return f"{float(value):.4g}" if any(c in value for c in ".e") else value
    except ValueError:
        return value


def _headline(summary: dict) -> str:
    key = metrics.headline(summary["task"])
    return f"{key}={summary['test'][key]:.4f}" if key in summary["test"] else "no test split"


# ---------------------------------------------------------------- results


def finish(study: Any, root: Path, p: Plan, log: Callable[[str], None]) -> dict:
    """The trials table, the best trial's config as a ready YAML, and Optuna's plots, all under runs/STUDY/."""
    from nntrain.runs.folders import write_json, write_output, write_text

    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    counts = {s.name.lower(): n for s, n in states.items() if n}
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    write_output(root / "trials.csv", lambda f: frame.to_csv(f, index=False), str(root / "trials.csv"))
    result: dict[str, Any] = {"study": study.study_name, "trials": counts, "root": str(root)}
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        best_cfg = yaml.safe_load((Path(best.user_attrs["run_dir"]) / "config.yaml").read_text())
        best_cfg["name"] = f"{study.study_name}-best"
        best_cfg["runs_dir"] = p.base["runs_dir"]
        header = (
            f"# The best trial of sweep {study.study_name}: trial {best.number}, {p.monitor}={best.value:.6g}\n"
            f"# ({', '.join(f'{k}={v}' for k, v in best.params.items())}). Train it: nntrain fit THIS_FILE\n"
        )
        write_text(root / "best.yaml", header + yaml.safe_dump(best_cfg, sort_keys=False))
        result.update(
            best_trial=best.number,
            best_value=best.value,
            best_params=best.params,
            best_run=best.user_attrs["run_dir"],
            best_config=str(root / "best.yaml"),
        )
    try:
        result["plots"] = [str(f) for f in _plots(study, root)] if done else []
    except OSError as e:  # the study and its tables are whole without them
        log(f"warning: the sweep's plots were not written: {e.strerror or e}")
        result["plots"] = []
    write_json(root / "sweep.json", result)
    return result


def _plots(study: Any, root: Path) -> list[Path]:
    """Optuna's own matplotlib plots; one that cannot be drawn (importances with one trial) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    from nntrain.runs.plots import save_png

    written = []
    names = {
        "optimization_history": ov.plot_optimization_history,
        "param_importances": ov.plot_param_importances,
        "parallel_coordinate": ov.plot_parallel_coordinate,
        "slice": ov.plot_slice,
        "intermediate_values": ov.plot_intermediate_values,
    }
    for name, fn in names.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notices on every call
            try:
                axes = fn(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
        ax = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = ax.figure
        fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
        written.append(save_png(fig, root / f"{name}.png", dpi=90, bbox_inches="tight"))
        plt.close(fig)
    return written
