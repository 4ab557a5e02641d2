"""The nntrain command line. Each command parses, calls library code and prints; no training logic here.

torch, pandas and scikit-learn are imported inside the commands, so `nntrain --help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's panels cost a tenth of a second of imports per --help
    help="Train neural networks on tabular data from a YAML config.",
)


def _console(stderr: bool, width: int | None = None):
    """width: for tables, when the output is not a terminal (rich would cut them to 80 columns)."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if width and not console.is_terminal:
        console.width = width
    if not stderr:
        console.on_broken_pipe = _stdout_closed  # rich's own would exit 1 at once, a run unsaved
    return console


def _guard(fn: Callable[[], None]) -> None:
    """A user's mistake, a divergence or a signal: one message on stderr and its exit code; never a traceback."""
    from nntrain.engine.distributed import rank
    from nntrain.errors import Stop

    try:
        fn()
    except Stop as e:
        if rank() == 0:  # data-parallel: rank 0 speaks for the group
            _console(True).print(f"{e.prefix}: {e}", markup=False)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:  # before training started: nothing to save
        _console(True).print("interrupted", markup=False)
        raise typer.Exit(130) from None
    except BrokenPipeError:  # stdout's reader went away (`nntrain runs | head -1`): a normal end, said nowhere
        _discard_stdout()
        raise typer.Exit(128 + signal.SIGPIPE) from None


def _discard_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _stdout_closed() -> None:
    """rich's broken-pipe hook for stdout: whatever follows for stdout goes nowhere. A run in progress (`nntrain
    fit ... | head -1`) goes on to its next step, saves and stops as on SIGPIPE; any other command ends there,
    quietly, with SIGPIPE's exit code."""
    from nntrain.engine.stopping import SIGNALS

    _discard_stdout()
    if not SIGNALS.armed:
        raise typer.Exit(128 + signal.SIGPIPE)
    if SIGNALS.signum is None:
        SIGNALS.signum = signal.SIGPIPE


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """A command whose body runs under _guard; typer reads the command's own signature through functools.wraps."""

    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        _guard(lambda: command(*args, **kwargs))

    return run


TABLE_WIDTH = 160


def _argv_again(ctx: typer.Context, leave_out: str) -> list[str]:
    """The running command's own arguments, rebuilt from what typer parsed (less `leave_out`): what `fit --nproc`
    hands its workers. Built from the parameters' declarations, so a new option travels without a change here."""
    argv = [ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == leave_out or value is None or value is False:
            continue
        if param.param_type_name == "argument":
            argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        elif value is True:
            argv.append(param.opts[0])
        elif isinstance(value, (list, tuple)):  # a repeatable option: once per value
            argv += [a for v in value for a in (param.opts[0], str(v))]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def _print_json(obj: dict) -> None:
    from nntrain.plaindata import strict_json

    print(strict_json(obj))


@app.command()
@guarded
def fit(
    ctx: typer.Context,
    config: str | None = typer.Argument(None, help="the YAML config (leave out with --resume)"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides, e.g. optimizer.lr=0.001"),
    name: str | None = typer.Option(None, "--name", help="run name (folder runs/NAME)"),
    resume: list[Path] | None = typer.Option(
        None, "--resume", help="continue this run folder from its last.pt (repeat it: runs trained together)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout at the end"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar and no line per epoch"),
    tensorboard: bool = typer.Option(
        False, "--tensorboard", help="also write TensorBoard event files to RUN/tensorboard"
    ),
    nproc: int = typer.Option(1, "--nproc", help="data-parallel processes on this machine (torch.distributed.run)"),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="prepare the data anew, neither reading nor writing the cache (data.cache=false)"
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="train one run per seed, e.g. 0,1,2 (together, on the stacked engine), runs/NAME-seedS"
    ),
    mlflow: bool = typer.Option(
        False, "--mlflow", help="log the run to MLflow when it ends: to $MLFLOW_TRACKING_URI, else ./mlruns"
    ),
    mlflow_uri: str | None = typer.Option(
        None, "--mlflow-uri", help="log the run to this MLflow tracking URI (a server's http://..., sqlite:///FILE)"
    ),
) -> None:
    """Train a model from CONFIG; the run folder keeps config, metrics, best.pt, last.pt, summary and plots."""
    if seeds is not None or (resume and len(resume) > 1):
        together = list(overrides or []) + (["data.cache=false"] if no_cache and seeds else [])
        return _fit_together(config, together, name, seeds, resume, quiet, as_json, nproc, _mlflow(mlflow, mlflow_uri))
    _before_fit(ctx, config, overrides, resume, nproc)
    from nntrain import api
    from nntrain.engine.progress import Bar, Lines
    from nntrain.engine.stopping import catching_signals
    from nntrain.errors import UserError

    extra = list(overrides or [])
    out = _console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    shown = Bar(out) if out.is_terminal and not quiet else Lines(log, quiet=quiet)
    track = {"log": log, "progress": shown, "tensorboard": tensorboard, "mlflow": _mlflow(mlflow, mlflow_uri)}
    with catching_signals(then_ignore=_PROCESS["exiting"]):
        if resume:
            if config is not None and "=" not in config:
                raise UserError(f"give either CONFIG ({config}) or --resume RUN_DIR, not both")
            extra = ([config] if config else []) + extra + ([f"name={name}"] if name else [])
            run = api.resume(resume[0], extra, **track)
        else:
            if config is None:
                raise UserError("missing CONFIG: nntrain fit configs/phone.yaml (or --resume RUN_DIR)")
            run = api.fit(Path(config), extra + (["data.cache=false"] if no_cache else []), name=name, **track)
    if as_json and isinstance(run, api.Run):  # data-parallel ranks other than 0 print nothing
        keep = ("run_dir", "best_epoch", "monitor", "best_value", "test", "test_baseline")
        _print_json({k: run.summary[k] for k in keep})


def _mlflow(flag: bool, uri: str | None) -> str | bool | None:
    """--mlflow-uri URI, or --mlflow (True: $MLFLOW_TRACKING_URI, else ./mlruns), or neither: the config says."""
    return uri if uri is not None else (True if flag else None)


def _before_fit(ctx: typer.Context, config: str | None, overrides: list[str] | None, resume, nproc: int) -> None:
    """--nproc: this process becomes the launcher of the group; else the data file's sha256 starts hashing on
    its own thread while torch imports."""
    if nproc != 1:
        from nntrain.engine.distributed import launch, launched

        if not launched():
            raise typer.Exit(launch(nproc, _argv_again(ctx, leave_out="nproc")))
    if config is not None and resume is None:
        from nntrain.data.tables import hash_ahead

        hash_ahead(Path(config), list(overrides or []))


def _fit_together(
    config: str | None,
    extra: list[str],
    name: str | None,
    seeds: str | None,
    resume: list[Path] | None,
    quiet: bool,
    as_json: bool,
    nproc: int,
    mlflow: str | bool | None,
) -> None:
    """fit --seeds (a run per seed), or --resume given several run folders: trained together where they can."""
    from nntrain import api
    from nntrain.engine.run_groups import seeds_line
    from nntrain.engine.stopping import Diverged, catching_signals

    out = _console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    if seeds is None:
        with catching_signals(then_ignore=_PROCESS["exiting"]):
            extra = ([config] if config else []) + extra
            runs = api.resume_together(resume, extra, log=log, quiet=quiet, mlflow=mlflow)
        results = [r.summary if isinstance(r, api.Run) else r for r in runs]
        _print_results([""] * len(resume), results, log)
    else:
        chosen = _seeds(seeds, config, resume, nproc)
        with catching_signals(then_ignore=_PROCESS["exiting"]):
            runs = api.fit_seeds(Path(config), chosen, extra, name=name, log=log, quiet=quiet, mlflow=mlflow)
        results = [r.summary if isinstance(r, api.Run) else r for r in runs]
        _print_results([f"seed {s}, " for s in chosen], results, log)
        line = seeds_line(chosen, results)
        log(line)
        if as_json:
            dirs = [r["run_dir"] if isinstance(r, dict) else str(r.run_dir) for r in results]
            _print_json({"seeds": chosen, "runs": dirs, "line": line})
    failed = [r for r in results if isinstance(r, Diverged)]
    if failed:
        raise failed[0]


def _seeds(seeds: str, config: str | None, resume: list[Path] | None, nproc: int) -> list[int]:
    from nntrain.errors import UserError

    try:
        chosen = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise UserError(f"--seeds {seeds}: give whole numbers separated by commas, e.g. --seeds 0,1,2") from None
    if resume or nproc != 1 or config is None or len(set(chosen)) != len(chosen):
        raise UserError(f"--seeds {seeds}: give a CONFIG and distinct seeds, and neither --resume nor --nproc")
    return chosen


def _print_results(labels: list[str], results: list, log: Callable[[str], None]) -> None:
    """A line per run trained together: its folder and test metrics, or how it diverged."""
    from nntrain.engine.stopping import Diverged

    for label, r in zip(labels, results):
        if isinstance(r, Diverged):
            log(f"{label}{r.run_dir}: diverged: {r}")
        else:
            shown = " ".join(f"{k}={v:.4f}" for k, v in r["test"].items() if isinstance(v, float))
            log(f"{label}{r['run_dir']}: best epoch {r['best_epoch']}; test {shown}")


STRICT_HELP = "a level never seen in training (or text in a date column) is an error, not an unknown level"


@contextlib.contextmanager
def _data_warnings():
    """The API's DataWarnings (what the encoding read as unknown) as `warning:` lines on stderr."""
    import warnings

    from nntrain.api import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        yield
    for w in caught:
        if issubclass(w.category, DataWarning):
            _console(True).print(f"warning: {w.message}", markup=False)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


@app.command("eval")
@guarded
def eval_(
    run_dir: Path | None = typer.Argument(None, help="run folder; default: the newest under runs/"),
    data: str | None = typer.Option(
        None, "--data", help="evaluate on this file (same columns) instead of the test split"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json"),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Metrics of a trained run on its own test split or on another file."""

    from nntrain import api
    from nntrain.engine.progress import format_metrics
    from nntrain.runs.folders import resolve_run_dir

    run = api.load(resolve_run_dir(str(run_dir) if run_dir else None), checkpoint)
    with _data_warnings():
        report = run.report(data, strict)
    if as_json:
        _print_json(report)
        return
    out = _console(False)
    out.print(
        f"{report['run_dir']} ({checkpoint}.pt, epoch {report['checkpoint_epoch']}) on {report['data']}, "
        f"{report['rows']} rows:",
        markup=False,
    )
    out.print(format_metrics(report["metrics"], report["baseline"]), markup=False)


@app.command()
@guarded
def params(
    target: Path = typer.Argument(..., help="a config file or a run folder"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides (config only)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Count the model's parameters layer by layer, from a config (no training) or a run folder."""

    from nntrain.errors import UserError

    if target.is_dir():
        from nntrain import api

        if overrides:
            raise UserError(f"overrides ({' '.join(overrides)}) apply to a config, not to a trained run folder")
        table = api.load(target).params()
    else:
        # No torch from a config (its import alone takes 1-2 s): names are checked, the arguments of
        # components are left to fit, and the layers are counted from the config.
        from nntrain.config.loading import load_config
        from nntrain.data.prepare import load_data
        from nntrain.model.embeddings import embeds_of, numerics_of
        from nntrain.model.memory import too_big
        from nntrain.model.mlp import n_outputs, planned_table

        cfg = load_config(target, list(overrides or []), arguments_too=False)
        data = load_data(cfg, target.parent)
        n_in, n_out = data.X.shape[1], n_outputs(cfg, data.task, data.n_outputs)
        numeric = numerics_of(data.prep)
        table = planned_table(cfg.model, n_in, n_out, embeds_of(data.prep), numeric)
        # on the CPU only: a GPU's free memory needs torch, which params does without
        batch, rows = cfg.train.batch_rows(len(data.train)), len(data.X)
        why = None if cfg.device.startswith("cuda") else too_big(cfg, n_in, n_out, batch, rows, numeric=numeric)
        if why is not None:
            _console(True).print(f"warning: {why}: `nntrain fit` on the CPU would refuse it", markup=False)
    if as_json:
        _print_json(table)
        return
    _print_params(table)


def _print_params(table: dict) -> None:
    from rich.table import Table

    t = Table(title="parameters")
    for col in ("layer", "type", "shape", "weights", "biases", "total", "buffers"):
        t.add_column(col, justify="left" if col in ("layer", "type", "shape") else "right")
    for r in table["layers"]:
        t.add_row(
            r["layer"],
            r["type"],
            "x".join(map(str, r["shape"])) or "-",
            f"{r['weights']:,}",
            f"{r['biases']:,}",
            f"{r['total']:,}",
            f"{r['buffers']:,}",
        )
    out = _console(False)
    out.print(t)
    out.print(
        f"total {table['total']:,}  trainable {table['trainable']:,}  non-trainable {table['non_trainable']:,}  "
        f"buffers {table['buffers']:,}  memory {table['bytes'] / 1024:.1f} KiB",
        markup=False,
    )


@app.command()
@guarded
def predict(
    run_dir: Path = typer.Argument(..., help="the run folder"),
    input: str = typer.Argument(..., help="CSV or Parquet of raw rows with the training columns"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write the predictions here (CSV)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    force: bool = typer.Option(False, "--force", help="replace an existing output file"),
    raw: bool = typer.Option(
        False, "--raw", help="write labels as they are, even those a spreadsheet runs as formulas"
    ),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Predict from raw rows: the stored preprocessing is applied; labels come back as in the training data."""

    from nntrain import api
    from nntrain.runs.folders import output_file, write_output
    from nntrain.tools.inference import spreadsheet_safe

    if output is not None:
        output_file(output, force, inputs=[input])
    run = api.load(run_dir, checkpoint)
    with _data_warnings():
        frame = run.predict(input, strict)
    frame = frame if raw else spreadsheet_safe(frame)
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        return
    write_output(output, lambda f: frame.to_csv(f, index=False), f"-o {output}")
    _console(True).print(f"{len(frame)} predictions written to {output}", markup=False)


@app.command()
@guarded
def sweep(
    config: Path = typer.Argument(..., help="a YAML config with a sweep: section"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides of the base config"),
    trials: int | None = typer.Option(None, "--trials", help="trials in the study in all (default: sweep.trials)"),
    storage: str | None = typer.Option(
        None, "--storage", help="sqlite:///FILE (default RUNS/sweeps.db) or postgresql://..."
    ),
    study: str | None = typer.Option(None, "--study", help="study name (default: the config's name)"),
    grid: bool = typer.Option(False, "--grid", help="run every combination of the listed values"),
    as_json: bool = typer.Option(False, "--json", help="print the results as one JSON object on stdout"),
    batch: int | None = typer.Option(
        None,
        "--batch",
        min=1,
        help="trials trained together at most (default 16, fewer if memory is short; 1: one at a time)",
    ),
    mlflow: bool = typer.Option(False, "--mlflow", help="log each trial to MLflow, nested under the study's run"),
    mlflow_uri: str | None = typer.Option(None, "--mlflow-uri", help="the MLflow tracking URI (implies --mlflow)"),
) -> None:
    """Search the config keys listed under sweep: with Optuna; start it on more machines to share the study."""

    from nntrain import api

    out = _console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    track = _mlflow(mlflow, mlflow_uri)
    result = api.sweep(config, list(overrides or []), trials=trials, storage=storage, study=study, grid=grid,
                       batch=batch, log=log, mlflow=track)  # fmt: skip
    if as_json:
        _print_json(result)
        return
    _print_sweep(result, out)


def _print_sweep(result: dict, out) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in result["trials"].items())
    out.print(f"study {result['study']}: {counts}; trials.csv, sweep.json in {result['root']}", markup=False)
    if "best_trial" in result:
        shown = " ".join(f"{k}={v}" for k, v in result["best_params"].items())
        out.print(
            f"best: trial {result['best_trial']} ({shown}) {result['best_value']:.4f}, run {result['best_run']}",
            markup=False,
        )
        out.print(f"its config: {result['best_config']} (nntrain fit {result['best_config']})", markup=False)
    if result["plots"]:
        out.print(f"plots: {', '.join(Path(p).name for p in result['plots'])}", markup=False)


@app.command()
@guarded
def cv(
    config: Path = typer.Argument(..., help="the YAML config"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides"),
    folds: int = typer.Option(5, "--folds", help="folds of the non-test rows (stratified, or by data.group)"),
    quiet: bool = typer.Option(True, "--quiet/--verbose", help="a line per epoch of every fold, or not"),
    as_json: bool = typer.Option(False, "--json", help="print cv.json on stdout at the end"),
) -> None:
    """k-fold cross-validation: a run per fold under RUNS/NAME-cv/, each fold's metrics, their mean and spread."""
    from rich.table import Table

    from nntrain import api

    out = _console(stderr=as_json, width=TABLE_WIDTH)
    result = api.cv(config, list(overrides or []), folds=folds, log=lambda m: out.print(m, markup=False), quiet=quiet)
    report = result.summary
    if as_json:
        _print_json(report)
        return
    head, monitor = report["headline"], report["monitor"].removeprefix("val_")
    t = Table(title=f"{folds}-fold cross-validation: {report['root']}")
    for col in ("fold", "best epoch", f"val {monitor}", f"val {head}", f"test {head}", "test loss"):
        t.add_column(col, justify="right")
    for f in report["folds"]:
        if "diverged" in f:
            t.add_row(str(f["fold"]), "diverged", "", "", "", "")
            continue
        cells = (f["val"][monitor], f["val"][head], f["test"].get(head), f["test"].get("loss"))
        t.add_row(str(f["fold"]), str(f["best_epoch"]), *(_cell(v) for v in cells))
    s = report["summary"]
    for stat in ("mean", "std"):
        cells = (s["val"].get(monitor), s["val"].get(head), s["test"].get(head), s["test"].get("loss"))
        t.add_row(stat, "", *(_cell(c[stat] if c else None) for c in cells))
    out.print(t)
    out.print(f"cv.json in {report['root']}; nntrain predict {report['root']} ROWS averages the folds", markup=False)
    failed = [f for f in report["folds"] if "diverged" in f]
    if failed:  # as fit --seeds: the folds that finished are kept, the exit code says one did not
        _console(True).print(f"fold {failed[0]['fold']} diverged: {failed[0]['diverged']}", markup=False)
        raise typer.Exit(3)


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


@app.command("lr-find")
@guarded
def lr_find(
    config: Path = typer.Argument(..., help="the YAML config"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides"),
    steps: int = typer.Option(200, "--steps", help="steps of the test, each at a higher rate"),
    start: float = typer.Option(1e-7, "--start", help="the first rate"),
    end: float = typer.Option(10.0, "--end", help="the last rate (the test stops earlier if the loss diverges)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The learning-rate range test: the loss as the rate rises; suggests optimizer.lr (RUNS/NAME-lr-find/)."""
    from nntrain import api

    out = _console(stderr=as_json)
    result = api.lr_find(config, list(overrides or []), steps=steps, start=start, end=end,
                         log=lambda m: out.print(m, markup=False))  # fmt: skip
    files = [str(p) for p in result["files"]]
    if as_json:
        _print_json({"suggested": result["suggested"], "lowest": result["lowest"], "files": files})
        return
    shown = f"optimizer.lr={result['suggested']:.3g}"
    out.print(f"suggested: {shown} (the smoothed loss falls fastest there); curve: {files[1]}", markup=False)
    out.print(f"nntrain fit {config} {shown}", markup=False)


@app.command()
@guarded
def explain(
    run_dir: Path = typer.Argument(..., help="the run folder"),
    data: str | None = typer.Option(None, "--data", help="rows of this file (same columns) instead of the test split"),
    repeats: int = typer.Option(5, "--repeats", help="shuffles per column"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Which columns matter: permutation importance on the test split, written to RUN_DIR/importance.csv, .png."""
    from rich.table import Table

    from nntrain import api

    with _data_warnings():
        result = api.load(run_dir, checkpoint).explain(data, repeats)
    rows = result["table"].to_dict(orient="records")
    if as_json:
        keep = {k: result[k] for k in ("metric", "base", "rows", "data")}
        _print_json({**keep, "columns": rows, "files": [str(p) for p in result["files"]]})
        return
    t = Table(title=f"permutation importance: {result['metric']} made worse when a column is shuffled")
    for col, justify in (("column", "left"), ("importance", "right"), ("std", "right")):
        t.add_column(col, justify=justify)
    for r in rows:
        t.add_row(str(r["column"]), f"{r['importance']:.4f}", f"{r['std']:.4f}")
    out = _console(False, width=TABLE_WIDTH)
    out.print(t)
    out.print(
        f"{result['data']}, {result['rows']} rows, {result['metric']} {result['base']:.4f} unshuffled, {repeats} "
        f"shuffle(s) per column; {', '.join(p.name for p in result['files'])} in {run_dir}",
        markup=False,
    )


@app.command()
@guarded
def export(
    run_dir: Path = typer.Argument(..., help="the run folder"),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript"),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="the model file; default RUN_DIR/model.onnx or RUN_DIR/model.pt"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    force: bool = typer.Option(False, "--force", help="replace an existing model file and sidecar"),
) -> None:
    """Write the model with its preprocessing folded in (raw numeric feature rows in) as ONNX or TorchScript."""

    from nntrain import api
    from nntrain.tools.export import TORCHSCRIPT_NOTE, sidecar_path

    path = api.export(run_dir, fmt, output, checkpoint, force)
    err = _console(True)
    err.print(f"wrote {path} and {sidecar_path(path).name} (the input columns in order, the outputs)", markup=False)
    if fmt.strip().lower() == "torchscript":
        err.print(f"note: {TORCHSCRIPT_NOTE}", markup=False)


@app.command()
@guarded
def runs(
    runs_dir: Path = typer.Argument(Path("runs"), help="the folder of run folders"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The runs under RUNS_DIR, newest first: model, optimizer, epochs, best value and test metric."""

    from nntrain.runs.listing import list_runs, runs_table

    rows = list_runs(runs_dir)
    if as_json:
        keep = ("name", "task", "model", "optimizer", "scheduler", "epochs", "status", "monitor", "best_value", "test")
        keep += ("config_edited",)
        _print_json(
            {
                "runs": [
                    {
                        **{k: r[k] for k in keep},
                        "path": str(r["path"]),
                        "started": r["started"].isoformat() if r["started"] else None,
                    }
                    for r in rows
                ]
            }
        )
        return
    if not rows:
        _console(False).print(f"no runs under {runs_dir}/", markup=False)
        return
    _console(False, width=TABLE_WIDTH).print(runs_table(rows))


@app.command()
@guarded
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="two or more run folders"),
    output: Path = typer.Option(Path("compare.png"), "-o", "--output", help="where to write the overlaid curves (PNG)"),
    force: bool = typer.Option(False, "--force", help="replace an existing output file"),
) -> None:
    """Overlay several runs' curves (val loss, metric, lr) and table what differs in their configs and results."""

    import pandas as pd

    from nntrain.errors import UserError
    from nntrain.runs.folders import output_file, resolve_run_dir
    from nntrain.runs.listing import compare_table, read_run
    from nntrain.runs.plots import compare_plot

    if len(run_dirs) < 2:
        raise UserError("compare needs at least two run folders, e.g. nntrain compare runs/sgd runs/adam")
    rows = [read_run(resolve_run_dir(str(p))) for p in run_dirs]
    names = [r["name"] for r in rows]
    if len(set(names)) < len(names):
        names = [str(r["path"]) for r in rows]
    frames = {}
    for name, r in zip(names, rows):
        if not (r["path"] / "metrics.csv").is_file() or not r["path"].joinpath("metrics.csv").stat().st_size:
            raise UserError(f"{r['path']}: no finished epoch yet (metrics.csv is missing or empty)")
        frames[name] = pd.read_csv(r["path"] / "metrics.csv")
    if output.suffix.lower() != ".png":
        raise UserError(f"-o {output}: the curves are written as PNG; name a .png file")
    output_file(output, force)
    metric = _compare_metric(rows[0])
    try:
        compare_plot(frames, output, metric)
    except OSError as e:
        raise UserError(f"-o {output}: cannot write it: {e.strerror or e}") from None
    out = _console(False, width=TABLE_WIDTH)
    out.print(compare_table(dict(zip(names, rows))))
    out.print(f"curves (val_loss, {metric}, lr): {output}", markup=False)


def _compare_metric(row: dict) -> str:
    """The monitored metric, or when that is the loss (already the first panel) the task's headline metric."""
    monitor = row.get("monitor") or "val_loss"
    if monitor != "val_loss":
        return monitor
    from nntrain.metrics import headline

    return "val_" + headline(row.get("task") or "")


@app.command()
def schema() -> None:
    """Print the config's JSON Schema, for an editor's YAML plugin to complete and check keys."""
    from nntrain.config.schema import Config

    doc = Config.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(doc, indent=2))


configs_app = typer.Typer(
    help="List the shipped example configs, or copy one to start from.", invoke_without_command=True
)
app.add_typer(configs_app, name="configs")

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"  # package data: there in every install


def _shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIGS_DIR.glob("*.yaml"))}


@configs_app.callback()
def configs_list(ctx: typer.Context) -> None:
    """The shipped configs with what each trains."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    table = Table(title=f"shipped configs ({CONFIGS_DIR})")
    table.add_column("name")
    table.add_column("what it trains")
    for name, path in _shipped().items():
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        table.add_row(name, first)
    _console(False).print(table)


@configs_app.command("show")
@guarded
def configs_show(config: Path = typer.Argument(..., help="a config file (its base: chain is merged)")) -> None:
    """The config as its base: chain merges it, key by key, as fit reads it (before overrides and defaults)."""
    import yaml

    from nntrain.config.loading import read_with_bases

    chain, merged, notes = read_with_bases(config)
    print(f"# {' <- '.join(str(p) for p, _ in reversed(chain))}")
    for note in notes:
        print(f"# note: {note}")
    print(yaml.safe_dump(merged, sort_keys=False, default_flow_style=None).rstrip())


@configs_app.command("copy")
@guarded
def configs_copy(
    name: str = typer.Argument(..., help="a shipped config, e.g. phone"),
    dest: Path = typer.Argument(..., help="where to write it (a file or a folder)"),
) -> None:
    """Copy a shipped config to start from; an existing file is never overwritten."""

    from nntrain.errors import UserError, did_you_mean
    from nntrain.runs.folders import write_output

    shipped = _shipped()
    if name.removesuffix(".yaml") not in shipped:
        raise UserError(f"no shipped config '{name}'{did_you_mean(name, shipped)}; choose one of: {', '.join(shipped)}")
    target = dest / f"{name.removesuffix('.yaml')}.yaml" if dest.is_dir() else dest
    if target.exists() or target.is_symlink():  # a dangling link too: writing through it would land elsewhere
        raise UserError(f"{target} exists; choose another destination (nothing was overwritten)")
    if not target.parent.is_dir():
        raise UserError(f"folder {target.parent} does not exist")
    text = shipped[name.removesuffix(".yaml")].read_bytes()
    write_output(target, lambda f: f.write(text), str(target))
    _console(True).print(f"wrote {target}", markup=False)


# Set by main(): the command owns the process and exits after it. Then a signal that arrives once training
# has finished is ignored rather than killing the exit; a caller that runs `app` in its own process (tests
# through CliRunner) keeps its handlers.
_PROCESS = {"exiting": False}


def main() -> None:
    _PROCESS["exiting"] = True
    from nntrain.engine.distributed import launched

    if not launched():
        app()
        return
    # A data-parallel worker has written its files and destroyed its process group by now, yet interpreter
    # finalization can still abort in gloo's threads now and then ("terminate called without an active
    # exception", exit -6; pytorch PR #179291 describes it): the worker leaves without finalization.
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
