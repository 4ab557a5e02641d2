"""`nntrain sweep`: an Optuna study over any config keys. Each trial is a normal run folder under
runs/STUDY/; the study lives in a database (SQLite in runs/ by default, PostgreSQL to share it across
machines), so any number of `nntrain sweep` processes can work on one study (studies.py: the claim lock
under which a worker starts a trial, and the heartbeat that re-runs a dead worker's trial). Under the claim
lock the grid sampler sees every running trial, so no grid point runs twice.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import yaml

from nntrain import metrics
from nntrain.config.loading import load_config
from nntrain.config.schema import FOLDER_NAME_RULE, dump_yaml, folder_name
from nntrain.data.tables import refuse_streaming
from nntrain.engine.loop_state import Halt
from nntrain.engine.run_groups import fit_many
from nntrain.engine.state import configure
from nntrain.engine.stopping import SIGNALS, Diverged, Interrupted, catching_signals
from nntrain.errors import UserError, first_line
from nntrain.runs.tracking import tracker_for
from nntrain.tools.studies import (
    ask,
    beating,
    claim_lock,
    fail_and_queue_again,
    fail_stale_trials,
    masked,
    not_diverged_before,
    open_storage,
    storage_url,
    tally,
)
from nntrain.tools.sweep_space import Plan, check_space, copied, grid_sampler, make_pruner, plan, suggest

AUTO_BATCH = 16  # trials claimed at once by default; stacked_runs.py splits a group that memory cannot hold


# ---------------------------------------------------------------- storage and the claim lock


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
        sampler = grid_sampler({d.key: d.grid() for d in p.dims}) if grid else optuna.samplers.TPESampler()
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=make_pruner(p.pruner),
            direction=p.direction,
            load_if_exists=True,
        )
        check_space(study, p.dims, f"study {name} in {masked(url)}")  # before a trial is drawn from it
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
    refuse_streaming(cfg.data)  # before a study or folder exists
    p = plan(cfg, trials, grid)
    name = study_name or cfg.name
    url = storage_url(storage, f"sqlite:///{(Path(cfg.runs_dir) / 'sweeps.db').resolve()}")
    root = Path(cfg.runs_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    tracker = tracker_for(mlflow, cfg)  # the trials are nested MLflow runs under one run of the study
    parent = tracker.parent(name) if tracker else None
    track = (lambda run_dir: tracker.log_run(run_dir, parent=parent)) if tracker else None
    study, db = open_study(url, name, p, grid, log)
    again = {"--trials": trials, "--storage": storage and masked(storage), "--study": study_name, "--grid": grid}
    again |= {"--batch": batch if batch != AUTO_BATCH else None, "--mlflow": mlflow is True}
    again |= {"--mlflow-uri": mlflow if isinstance(mlflow, str) else None}
    log(
        f"study {name} in {masked(url)}: {p.trials} trials in all{_capped(trials, p.trials, grid)}, {p.direction} "
        f"{p.monitor}; "
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
    except Interrupted as e:  # this worker's unfinished trials are queued again: the same command trains them
        e.args = (f"{signal.Signals(e.signum).name}; {_QUEUED} Resume with: {_command(path, overrides, again)}",)
        raise e from None
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        raise UserError(
            f"--storage {masked(url)}: the study's database stopped answering ({first_line(e, 200)}); the trials it "
            f"recorded are kept: run the sweep again to go on"
        ) from None


_QUEUED = "the sweep's trials in progress here are failed and queued again, each to go on from its last save."


def _command(path: Path, overrides: list[str], options: dict[str, Any]) -> str:
    """`nntrain sweep` as this one was asked (a storage password masked): run again, it finishes the study."""
    argv = ["nntrain", "sweep", str(path), *overrides]
    for option, value in options.items():
        if value is True:
            argv.append(option)
        elif value is not None and value is not False:
            argv += [option, str(value)]
    return shlex.join(argv)


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
    Up to `batch` trials are claimed at once and trained together where their shapes agree (stacked_runs.py)."""
    ran, told_waiting = 0, False
    while True:
        if SIGNALS.signum is not None:  # a signal between trials or while waiting: none of this worker's runs
            raise Interrupted(SIGNALS.signum)
        trials: list[Any] = []
        with claim_lock(url, study.study_name, log):
            fail_stale_trials(study)  # a worker that stopped beating: its trial failed and queued again
            counted, running, waiting = tally(study.get_trials(deepcopy=False))
            try:
                while len(trials) < batch and (waiting or counted < p.trials):
                    trials.append(ask(study, db, p.heartbeat))
                    waiting, counted = (waiting - 1, counted) if waiting else (waiting, counted + 1)
            except BaseException:  # a signal before any trial trained here: those claimed go back to the queue
                fail_and_queue_again(study, trials)
                raise
        if not trials and not running:
            return ran
        if not trials:  # other workers' last trials: wait for them to end, or to go stale and come back
            if not told_waiting:
                log(f"waiting for {running} running trial(s) of other workers to end")
                told_waiting = True
            time.sleep(min(p.heartbeat, 5))
            continue
        with contextlib.ExitStack() as beats:
            for trial in trials:
                beats.enter_context(beating(db, trial, p.heartbeat))
            ran += _run_trials(study, trials, p, root, config_dir, log, track)


def _capped(asked: int | None, planned: int, grid: bool) -> str:
    """Where --grid runs fewer trials than --trials asked: the grid's every point, said so."""
    return f" (the grid's every point; --trials {asked} asked for more)" if grid and asked and asked > planned else ""


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
    trials, earlier = not_diverged_before(study, trials, log)
    if not trials:
        return 0
    params = [{d.key: suggest(trial, d) for d in p.dims} for trial in trials]
    cfgs = []
    for trial, chosen in zip(trials, params):
        raw = copied(p.base)
        raw["runs_dir"] = str(root)
        cfgs.append(
            load_config(None, [f"{k}={v}" for k, v in chosen.items()], raw=raw, name=f"trial-{trial.number:04d}")
        )

    def started(runs: list[Any]) -> None:
        for trial, run in zip(trials, runs):
            trial.set_user_attr("run_dir", str(run.run_dir.resolve()))  # other workers work in other folders

    hooks = [Pruner(trial, p.monitor, p.pruner["name"]) for trial in trials]
    try:
        results = fit_many(cfgs, config_dir, lambda m: None, should_stop=hooks, started=started, earlier=earlier)
    except (Interrupted, UserError):  # a signal, or a bad data value: the trials are failed and queued again,
        fail_and_queue_again(study, trials)  # for the same sweep command (its data fixed) to train; it stops
        raise
    except BaseException:  # a fault of nntrain's or the database's: the trials are marked failed, the sweep stops
        for trial in trials:
            with contextlib.suppress(Exception):  # not when the database itself is what failed
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    for trial, chosen, summary in zip(trials, params, results):
        _told(study, trial, p, chosen, summary, log)
        if track is not None:
            track(Path(summary.run_dir if isinstance(summary, Diverged) else summary["run_dir"]))
    return sum(isinstance(r, dict) for r in results)


def _told(study: Any, trial: Any, p: Plan, chosen: dict, summary: Any, log: Callable) -> None:
    """One trial's result told to the study and logged (a divergence fails the trial; the sweep goes on: a high
    lr is what sweeps try): its validation value and its own training time; its test metric only where
    sweep.show_test asks (a trial chosen on its test score is a test score no longer)."""
    shown = " ".join(f"{k}={_short(v)}" for k, v in chosen.items())
    if isinstance(summary, Diverged):
        _tell(study, trial, log, state=optuna.trial.TrialState.FAIL)
        log(f"trial {trial.number}: failed: {summary}")
    elif summary["status"] == "pruned":
        _tell(study, trial, log, state=optuna.trial.TrialState.PRUNED)
        log(f"trial {trial.number}: {shown} -> {summary['stopped']}")
    else:
        _tell(study, trial, log, values=summary["best_value"])
        test = f"test {_headline(summary)}; " if p.show_test else ""
        log(
            f"trial {trial.number}: {shown} -> {p.monitor}={metrics.shown(summary['best_value'])} "
            f"({test}{summary['train_seconds']:.1f} s)"
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


def _short(value: str) -> str:
    """0.0025965878327835817 -> 0.002597 in what a person reads; the trial itself uses the full value."""
    try:
        return f"{float(value):.4g}" if any(c in value for c in ".e") else value
    except ValueError:
        return value


def _headline(summary: dict) -> str:
    key = metrics.headline(summary["task"])
    return f"{key}={metrics.shown(summary['test'][key])}" if key in summary["test"] else "no test split"


# ---------------------------------------------------------------- results


def finish(study: Any, root: Path, p: Plan, log: Callable[[str], None]) -> dict:
    """The trials table, the best trial's config as a ready YAML, and Optuna's plots, all under runs/STUDY/."""
    from nntrain.runs.files import write_json, write_output, write_text

    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    counts = {s.name.lower(): n for s, n in states.items() if n}
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    write_output(root / "trials.csv", lambda f: frame.to_csv(f, index=False), str(root / "trials.csv"))
    result: dict[str, Any] = {"study": study.study_name, "trials": counts, "root": str(root)}
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        best_cfg = _config_of(best, root, p)
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
            best_run=str(_trial_dir(best.user_attrs["run_dir"], root)),
            best_config=str(root / "best.yaml"),
        )
    try:
        result["plots"] = [str(f) for f in _plots(study, root)] if done else []
    except OSError as e:  # the study and its tables are whole without them
        log(f"warning: the sweep's plots were not written: {e.strerror or e}")
        result["plots"] = []
    write_json(root / "sweep.json", result)
    return result


def _trial_dir(stored: str, root: Path) -> Path:
    """A trial's run folder: absolute as stored; a relative one (stored by an older nntrain, relative to the
    worker's working folder) is a folder of the study's, under root."""
    path = Path(stored)
    return path if path.is_absolute() else root / path.name


def _config_of(trial: Any, root: Path, p: Plan) -> dict:
    """The trial's config.yaml; when its folder is not here (another worker's, on another machine), the study's
    base config with the trial's values, as _run_trials builds it."""
    path = _trial_dir(trial.user_attrs.get("run_dir", ""), root) / "config.yaml"
    if path.is_file():
        return yaml.safe_load(path.read_text())
    cfg = load_config(None, [f"{k}={v}" for k, v in trial.params.items()], raw=copied(p.base))
    return yaml.safe_load(dump_yaml(cfg))


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
