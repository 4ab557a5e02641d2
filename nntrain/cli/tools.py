"""The tools over configs and runs: `sweep`, `cv`, `lr-find`, `explain`, `export`."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from nntrain.cli import app as common
from nntrain.cli.training import mlflow_option


@common.guarded
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

    out = common.console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    track = mlflow_option(mlflow, mlflow_uri)
    result = api.sweep(config, list(overrides or []), trials=trials, storage=storage, study=study, grid=grid,
                       batch=batch, log=log, mlflow=track)  # fmt: skip
    if as_json:
        common.print_json(result)
    else:
        _print_sweep(result, out)
    counts = result["trials"]
    if counts.get("fail") and not counts.get("complete"):  # as cv's every fold diverged: nothing to train on
        common.console(True).print(
            f"no trial of study {result['study']} completed ({counts['fail']} failed): no best.yaml; each trial's "
            "summary.json says why (a divergence: search a lower optimizer.lr range, or set train.grad_clip)",
            markup=False,
        )
        raise typer.Exit(3)


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


@common.guarded
def cv(
    config: str | None = typer.Argument(
        None, help="the YAML config, or a table file to cross-validate the recipe on (leave out with --resume)"
    ),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides"),
    target: str | None = typer.Option(None, "--target", help="the column to predict (data.target)"),
    folds: int = typer.Option(5, "--folds", help="folds of the non-test rows (stratified, or by data.group)"),
    quiet: bool = typer.Option(True, "--quiet/--verbose", help="a line per epoch of every fold, or not"),
    as_json: bool = typer.Option(False, "--json", help="print cv.json on stdout at the end"),
    resume: Path | None = typer.Option(
        None, "--resume", help="finish this interrupted cross-validation (RUNS/NAME-cv): its unfinished folds"
    ),
    mlflow: bool = typer.Option(False, "--mlflow", help="log each fold to MLflow, nested under the cv's run"),
    mlflow_uri: str | None = typer.Option(None, "--mlflow-uri", help="the MLflow tracking URI (implies --mlflow)"),
) -> None:
    """k-fold cross-validation: a run per fold under RUNS/NAME-cv/, each fold's metrics, their mean and spread."""
    from rich.table import Table

    from nntrain import api
    from nntrain.errors import UserError

    if config is None and not target and resume is None:  # both given: api.cv says "not both"
        raise UserError("give a CONFIG, or --resume RUNS/NAME-cv to finish an interrupted cross-validation")
    config, extra = common.config_source(config, overrides, target)
    out = common.console(stderr=as_json, width=common.TABLE_WIDTH)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    track = mlflow_option(mlflow, mlflow_uri)
    config = None if config is None else common.loaded_config(config)
    result = api.cv(config, extra, folds=folds, log=log, quiet=quiet, resume=resume, mlflow=track)
    report = result.summary
    if as_json:
        common.print_json(report)
        return
    head, monitor = report["headline"], report["monitor"].removeprefix("val_")
    t = Table(title=f"{len(report['folds'])}-fold cross-validation: {report['root']}")
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
        common.console(True).print(f"fold {failed[0]['fold']} diverged: {failed[0]['diverged']}", markup=False)
        raise typer.Exit(3)


def _cell(v: float | None) -> str:
    from nntrain.metrics import shown

    return "-" if v is None else shown(v)


@common.guarded
def lr_find(
    config: str = typer.Argument(..., help="the YAML config, or a table file (the recipe's model on it)"),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides"),
    target: str | None = typer.Option(None, "--target", help="the column to predict (data.target)"),
    steps: int = typer.Option(200, "--steps", help="steps of the test, each at a higher rate"),
    start: float = typer.Option(1e-7, "--start", help="the first rate"),
    end: float = typer.Option(10.0, "--end", help="the last rate (the test stops earlier if the loss diverges)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The learning-rate range test: the loss as the rate rises; suggests optimizer.lr (RUNS/NAME-lr-find/)."""
    from nntrain import api

    out = common.console(stderr=as_json)
    source, extra = common.config_source(config, overrides, target)
    result = api.lr_find(common.loaded_config(source), extra, steps=steps, start=start, end=end,
                         log=lambda m: out.print(m, markup=False))  # fmt: skip
    files = [str(p) for p in result["files"]]
    if as_json:
        common.print_json({"suggested": result["suggested"], "lowest": result["lowest"], "files": files})
        return
    shown = f"optimizer.lr={result['suggested']:.3g}"
    out.print(f"suggested: {shown} (the smoothed loss falls fastest there); curve: {files[1]}", markup=False)
    again = f"{config} --target {target}" if target else config
    out.print(f"nntrain fit {again} {shown}", markup=False)


@common.guarded
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

    with common.data_warnings():
        result = api.load(run_dir, checkpoint).explain(data, repeats)
    rows = result["table"].to_dict(orient="records")
    if as_json:
        keep = {k: result[k] for k in ("metric", "base", "rows", "data")}
        common.print_json({**keep, "columns": rows, "files": [str(p) for p in result["files"]]})
        return
    t = Table(title=f"permutation importance: {result['metric']} made worse when a column is shuffled")
    for col, justify in (("column", "left"), ("importance", "right"), ("std", "right")):
        t.add_column(col, justify=justify)
    for r in rows:
        t.add_row(str(r["column"]), f"{r['importance']:.4f}", f"{r['std']:.4f}")
    out = common.console(False, width=common.TABLE_WIDTH)
    out.print(t)
    out.print(
        f"{result['data']}, {result['rows']} rows, {result['metric']} {result['base']:.4f} unshuffled, {repeats} "
        f"shuffle(s) per column; {', '.join(p.name for p in result['files'])} in {run_dir}",
        markup=False,
    )


@common.guarded
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
    from nntrain.tools.export_graph import TORCHSCRIPT_NOTE
    from nntrain.tools.export_sidecar import sidecar_path

    path = api.export(run_dir, fmt, output, checkpoint, force)
    if common.PROCESS["exiting"]:  # the files are written: a Ctrl-C from here on has nothing to stop (as fit's)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
    err = common.console(True)
    err.print(f"wrote {path} and {sidecar_path(path).name} (the input columns in order, the outputs)", markup=False)
    if fmt.strip().lower() == "torchscript":
        err.print(f"note: {TORCHSCRIPT_NOTE}", markup=False)
