"""The Python API: fit, resume, load and the rest give what the commands print; the CLI calls these and prints.

Errors are raised as the CLI reports them: UserError (a ConfigError for a config) with the same messages.
What the encoding reads as unknown (a level never seen in training) comes as a DataWarning.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nntrain.config.loading import load_config
from nntrain.config.schema import Config
from nntrain.data.frame_runs import frame_and_file, stored_for, the_dataframe
from nntrain.data.table_source import table_config
from nntrain.engine.stopping import Diverged, catching_signals
from nntrain.errors import UserError
from nntrain.plaindata import flow
from nntrain.results import Bag, Data, DataWarning, Folds, Run  # noqa: F401 (DataWarning: nntrain.DataWarning)
from nntrain.runs.folders import folder_of, folders_of
from nntrain.runs.tracking import stored_mlflow, tracker_for


def load(run_dir: str | Path, checkpoint: str = "best") -> Run | Folds:
    """A finished (or stopped) run from its folder alone; checkpoint: best or last. A cross-validation folder
    (one with cv.json) gives its Folds, a bag's folder (train.bag, with bag.json) its Bag."""
    from nntrain.tools.bagging import is_bag

    if ((run_dir := folder_of(run_dir)) / "cv.json").is_file():
        return Folds(run_dir, checkpoint)
    if is_bag(run_dir):
        return Bag(run_dir, checkpoint)
    return Run(run_dir, checkpoint)


def fit(
    config: str | Path | dict | Config,
    overrides: list[str] | dict[str, Any] | None = None,
    data: Data | None = None,
    *,
    name: str | None = None,
    log: Callable[[str], None] | None = print,
    progress: Any = None,
    tensorboard: bool = False,
    mlflow: str | bool | None = None,
) -> Run | Bag:
    """Train per `config` (a YAML path, a dict or a Config) with dotted `overrides` (["optimizer.lr=0.01"] or
    {"optimizer.lr": 0.01}); `data` (a DataFrame or a file) stands for data.path. log: where the run's lines
    go (None: nowhere); progress: how epochs show (default: no line per epoch). A config with train.bag >= 2
    trains a cross-fitted bag and gives its Bag."""
    from nntrain.engine.state import start
    from nntrain.engine.streamed import start_streamed, stream_files
    from nntrain.tools.bagging import auto_bag

    log = _outputs(tensorboard, log)
    cfg, config_dir = configured(config, overrides, data, name)
    frame, path = frame_and_file(data, cfg.runs_dir)
    tracker = tracker_for(mlflow, cfg)  # before the frame and the run folder: a dead server leaves neither behind
    files, why = stream_files(cfg, config_dir) if path is None else (None, "")
    if files:  # a Parquet table streamed from disk (engine/streamed.py): one model
        return _trained(lambda: start_streamed(cfg, config_dir, files, why), tracker, log, progress, tensorboard)

    def begin() -> Any:
        with stored_for(frame, path, [cfg]):
            return start(cfg, config_dir)

    with the_dataframe(path):
        auto_bag(cfg, config_dir, tensorboard or tracker is not None, frame)
        if cfg.train.bag > 1:
            return _bagged(cfg, config_dir, log, tensorboard or tracker is not None, frame, path)
        return _trained(begin, tracker, log, progress, tensorboard)


def _bagged(cfg: Config, config_dir: Path | None, log: Callable | None, extra: bool, frame: Any, path: Any) -> Bag:
    """fit of a config with train.bag >= 2 (tools/bagging.py); a DataFrame stored as fit stores it."""
    from nntrain.tools.bagging import fit_bag

    if extra:
        raise UserError(f"train.bag={cfg.train.bag}: TensorBoard and MLflow logging of a bag are not there yet")
    with catching_signals(), stored_for(frame, path, [cfg]):
        summary = fit_bag(cfg, config_dir, log)
    return Bag(summary["run_dir"])


def resume(
    run_dir: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    log: Callable[[str], None] | None = print,
    progress: Any = None,
    tensorboard: bool = False,
    mlflow: str | bool | None = None,
) -> Run:
    """Continue a stopped run from its last.pt; overrides may lengthen it (train.epochs=...). It is logged to
    MLflow (`mlflow`, or the run's train.mlflow) as a new MLflow run once it ends."""
    from nntrain.engine.state import resume as resumed
    from nntrain.tools.bag_resume import resume_bag
    from nntrain.tools.bagging import is_bag
    from nntrain.tools.crossval import refuse_a_part

    log = _outputs(tensorboard, log)
    refuse_a_part(run_dir := folder_of(run_dir))
    if is_bag(run_dir):
        with catching_signals():
            resume_bag(Path(run_dir), _override_list(overrides), log)
        return Bag(run_dir)

    extra = _override_list(overrides)
    return _trained(lambda: resumed(Path(run_dir), extra), None, log, progress, tensorboard, mlflow)


def export(
    run_dir: str | Path,
    fmt: str = "onnx",
    output: str | Path | None = None,
    checkpoint: str = "best",
    force: bool = False,
) -> Path:
    """RUN_DIR's model as ONNX or TorchScript with its preprocessing folded in, and the sidecar FILE.json (the
    input columns, the outputs); nothing is written unless it matches the checkpoint on sample rows."""
    from nntrain.tools.export import export_run

    return export_run(folder_of(run_dir), fmt, None if output is None else Path(output), checkpoint, force)


def lr_find(
    config: str | Path | dict | Config,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    steps: int = 200,
    start: float = 1e-7,
    end: float = 10.0,
    log: Callable[[str], None] | None = print,
) -> dict:
    """The learning-rate range test, as `nntrain lr-find`: {"suggested", "lowest", "rows" (a DataFrame of step,
    lr, loss, smoothed), "files" (lr_find.csv, lr_find.png under RUNS_DIR/NAME-lr-find), "run_dir"}."""
    from nntrain.tools.lr_find import lr_find as range_test

    cfg, config_dir = configured(config, overrides)
    with catching_signals():
        return range_test(cfg, config_dir, steps, start, end, _outputs(False, log))


def cv(
    config: str | Path | dict | Config | None,
    overrides: list[str] | dict[str, Any] | None = None,
    data: Data | None = None,
    *,
    folds: int = 5,
    log: Callable[[str], None] | None = print,
    quiet: bool = True,
    resume: str | Path | None = None,
    mlflow: str | bool | None = None,
) -> Folds:
    """k-fold cross-validation, as `nntrain cv`: a run per fold under RUNS_DIR/NAME-cv/, and cv.json; `data` as
    fit's. resume: a cv folder whose cross-validation was interrupted, finished (config None). mlflow (or the
    config's train.mlflow): each fold logged as an MLflow run, nested under one run of the cross-validation."""
    from nntrain.tools.crossval import cross_validate, resume_cv

    _checked("folds", folds, (int,), "a whole number of folds")
    _checked("resume", resume, (str, Path, type(None)), "a cv folder's path, or None")
    log = _outputs(False, log)
    if resume is not None:
        if config is not None or overrides or data is not None:
            said = "CONFIG" if data is None else "data="
            raise UserError(f"give either {said} or --resume {resume} (a cv folder goes on as it was), not both")
        with catching_signals():
            report = resume_cv(Path(resume), log, quiet)
        tracker = tracker_for(mlflow, None, stored_mlflow(Path(resume) / Path(report["folds"][0]["run_dir"]).name))
    else:
        cfg, config_dir = configured(config, overrides, data)
        frame, path = frame_and_file(data, cfg.runs_dir)
        tracker = tracker_for(mlflow, cfg)  # before the cv folder: a server that does not answer leaves none
        with the_dataframe(path), catching_signals(), stored_for(frame, path, [cfg]):
            report = cross_validate(cfg, config_dir, folds, log, quiet)
    if tracker is not None:
        root = Path(report["root"])
        dirs = [root / Path(f["run_dir"]).name for f in report["folds"]]
        rid = tracker.log_group(f"cv {root.name}", dirs, [root / "cv.json"])
        log(f"mlflow: run {rid} in {tracker.uri}, a nested run per fold")
    return Folds(report["root"])


def fit_seeds(
    config: str | Path | dict | Config,
    seeds: list[int],
    overrides: list[str] | dict[str, Any] | None = None,
    data: Data | None = None,
    *,
    name: str | None = None,
    log: Callable[[str], None] | None = print,
    quiet: bool = True,
    mlflow: str | bool | None = None,
    tensorboard: bool = False,
) -> list[Run | Diverged]:
    """A run per seed (NAME-seedS), trained together on the stacked engine where they can: what `fit --seeds`
    does; `data` as fit's. A seed that diverged is its Diverged error in the list (the CLI then exits 3)."""
    from nntrain.engine.run_groups import distinct_seeds, fit_many

    log = _outputs(tensorboard, log)
    seeds = distinct_seeds(seeds)
    extra = _override_list(overrides)
    base = configured(config, extra, data, name=name)[0].name
    made = [configured(config, [*extra, f"seed={s}"], data, name=f"{base}-seed{s}") for s in seeds]
    cfgs, config_dir = [c for c, _ in made], made[0][1]
    frame, path = frame_and_file(data, cfgs[0].runs_dir)
    tracker = tracker_for(mlflow, cfgs[0])
    with the_dataframe(path), catching_signals(), stored_for(frame, path, cfgs):
        results = fit_many(cfgs, config_dir, log, quiet, tensorboard=tensorboard)
    return [_ended(r, tracker) for r in results]


def resume_together(
    run_dirs: list[str | Path],
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    log: Callable[[str], None] | None = print,
    quiet: bool = True,
    mlflow: str | bool | None = None,
    tensorboard: bool = False,
) -> list[Run | Diverged]:
    """Runs that were trained together (fit_seeds, a sweep's batch), resumed together from their last.pt."""
    from nntrain.engine.run_groups import resume_many
    from nntrain.tools.bagging import is_bag
    from nntrain.tools.crossval import refuse_a_part

    for run_dir in (run_dirs := folders_of(run_dirs)):
        refuse_a_part(run_dir)
        if is_bag(run_dir):  # its members go on together, then the bag is finished: not a run among others
            raise UserError(
                f"--resume {run_dir}: a bag resumes alone, not with other runs: nntrain fit --resume {run_dir} "
                f"(nntrain.resume in Python)"
            )
    log = _outputs(tensorboard, log)
    tracker = tracker_for(mlflow, None)  # given: asked before anything trains
    extra = _override_list(overrides)
    with catching_signals():
        results = resume_many(run_dirs, extra, log, quiet, tensorboard)
    if tracker is not None or mlflow is False:
        return [_ended(r, tracker) for r in results]
    trackers: dict[str, Any] = {}  # each run's own train.mlflow says
    ended = []
    for r in results:
        given = stored_mlflow(Path(r.run_dir if isinstance(r, Diverged) else r["run_dir"]))
        if repr(given) not in trackers:
            trackers[repr(given)] = tracker_for(None, None, given)
        ended.append(_ended(r, trackers[repr(given)]))
    return ended


def _ended(result: dict | Diverged, tracker: Any) -> Run | Diverged:
    """A run trained with others, logged to MLflow if asked; its Run, or how it diverged."""
    from nntrain.engine.finish import UNCHANGED

    run_dir = Path(result.run_dir if isinstance(result, Diverged) else result["run_dir"])
    if tracker is not None and not (isinstance(result, dict) and result.get(UNCHANGED)):
        tracker.log_run(run_dir)
    return result if isinstance(result, Diverged) else Run(run_dir)


def sweep(
    config: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    data: Data | None = None,
    *,
    trials: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    grid: bool = False,
    batch: int | None = None,
    log: Callable[[str], None] | None = print,
    mlflow: str | bool | None = None,
) -> dict:
    """An Optuna study over the config's sweep: section, as `nntrain sweep`; the dict `sweep --json` prints.
    `data` as fit's: every trial trains on it."""
    try:
        from nntrain.tools.sweep import AUTO_BATCH
        from nntrain.tools.sweep import sweep as run_sweep
    except ImportError as e:
        raise UserError(f'nntrain sweep needs Optuna ({e}): pip install -e ".[sweep]"') from None
    _checked("config", config, (str, Path), "a YAML path with a sweep: section")
    _checked("trials", trials, (int, type(None)), "a whole number of at least 1, or None (sweep.trials)", low=1)
    _checked("storage", storage, (str, type(None)), "a database URL (sqlite:///FILE, postgresql://...) or None")
    _checked("study", study, (str, type(None)), "a name, or None (the config's name)")
    _checked("grid", grid, (bool,), "True or False")
    _checked("batch", batch, (int, type(None)), "a whole number of at least 1, or None (16)", low=1)
    _checked("data", data, (str, Path, pd.DataFrame, type(None)), "a pandas DataFrame or a file path")
    extra, log = _override_list(overrides), _outputs(False, log)
    runs_dir = configured(config, extra, data)[0].runs_dir if isinstance(data, pd.DataFrame) else ""
    frame, path = frame_and_file(data, runs_dir)
    if data is not None:  # each trial's config is the study's base config: data.path goes in as an override
        extra.append(f"data.path={_as_yaml(str(data if path is None else path))}")
    with the_dataframe(path), stored_for(frame, path, []):
        return run_sweep(Path(config), extra, trials, storage, study, grid, log, batch or AUTO_BATCH, mlflow)


def _trained(begin: Callable, tracker: Any, log, progress, tensorboard: bool, mlflow: Any = None) -> Run:
    """begin() starts or resumes the run, which then trains; `tracker` (else one for `mlflow` and the run's
    config) logs it to MLflow when it ends, however it ends."""
    from nntrain.engine.finish import UNCHANGED
    from nntrain.engine.loop import train
    from nntrain.engine.progress import Lines

    with catching_signals():
        state = begin()
        tracker = tracker or tracker_for(mlflow, state.cfg)
        try:
            summary = train(state, log=log, progress=progress or Lines(log, quiet=True), tensorboard=tensorboard)
        except BaseException:
            # what the folder holds: its status says how it ended (none where the stop removed it: nothing trained)
            if tracker is not None and state.writes and state.run_dir.is_dir():
                with contextlib.suppress(Exception):
                    tracker.log_run(state.run_dir)
            raise
    if "best_epoch" not in summary:  # a data-parallel rank other than 0: rank 0 holds the run
        return summary
    if tracker is not None and not summary.get(UNCHANGED):  # nothing trained: nothing new to log
        rid = tracker.log_run(state.run_dir)
        log(f"mlflow: run {rid} in {tracker.uri}")
    return Run(state.run_dir)


def _outputs(tensorboard: bool, log: Any) -> Callable[[str], None]:
    """Where the lines go (`log`; None: nowhere); a log that is no function, or --tensorboard without the package,
    is refused before any run folder is made (a log "x" failed at the first line, leaving a half-written run)."""
    if log is not None and not callable(log):
        raise UserError(f"log: give a function of one line (print), or None, not {type(log).__name__}")
    if tensorboard:
        from nntrain.engine.loop_state import tensorboard_writer

        tensorboard_writer()
    return log or (lambda m: None)


def configured(
    config: str | Path | dict | Config,
    overrides: list[str] | dict[str, Any] | None = None,
    data: Data | None = None,
    name: str | None = None,
) -> tuple[Config, Path | None]:
    """(the validated config, the folder its relative paths start from): from a file, a dict or a Config, with
    `data` as data.path (a DataFrame holds its place until fit stores it under RUNS_DIR/.data)."""
    from nntrain.engine.state import configure

    extra = _override_list(overrides)
    config = table_config(config, data, extra)  # a table file, as the commands take it
    if isinstance(data, (str, Path)):
        extra.append(f"data.path={_as_yaml(str(data))}")
    elif data is not None:
        extra.append('data.path="DataFrame"')  # stands in until the frame is stored, once runs_dir is known
    if isinstance(config, (str, Path)):
        cfg, config_dir = configure(Path(config), extra, name=name), Path(config).parent
    elif isinstance(config, (dict, Config)):
        raw = config.model_dump(mode="json") if isinstance(config, Config) else json.loads(json.dumps(config))
        raw.setdefault("name", "run")
        cfg, config_dir = load_config(None, extra, raw=raw, name=name), None
    else:
        raise UserError(f"config: give a YAML path, a dict or a Config, not {type(config).__name__}")
    _checked("data", data, (str, Path, pd.DataFrame, type(None)), "a pandas DataFrame or a file path")
    return cfg, config_dir


def _checked(name: str, value: Any, kinds: tuple[type, ...], want: str, low: int | None = None) -> None:
    """An argument of one of `kinds` (True is no number here), and not below `low`, else refused naming it: what
    the CLI's option types check, and a wrong type would fail deep inside, as a TypeError."""
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UserError(f"{name}: give {want}, not {type(value).__name__}")
    if low is not None and value is not None and value < low:
        raise UserError(f"{name}: give {want}, not {value}")


def _override_list(overrides: list[str] | dict[str, Any] | None) -> list[str]:
    if isinstance(overrides, dict):
        return [f"{k}={_as_yaml(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides or []):
        raise UserError('overrides: give a list of "KEY=VALUE" strings or a dict of KEY: value')
    return list(overrides or [])


def _as_yaml(value: Any) -> str:
    """A Python value as an override's YAML text that reads back as the same value: through JSON first (numpy
    numbers, tuples), then YAML's own escapes (JSON's surrogate pairs would read back as two lone surrogates)."""
    return flow(json.loads(json.dumps(value)))
