"""`nntrain fit`: one run, several seeds or resumed runs trained together, or a data-parallel fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from nntrain.cli.app import (
    PROCESS,
    argv_again,
    config_source,
    console,
    guarded,
    loaded_config,
    print_json,
)


@guarded
def fit(
    ctx: typer.Context,
    config: str | None = typer.Argument(
        None, help="the YAML config, or a table file (CSV, TSV, Excel, Parquet, ...) to train the recipe on"
    ),
    overrides: list[str] | None = typer.Argument(None, help="dotted KEY=VALUE overrides, e.g. optimizer.lr=0.001"),
    target: str | None = typer.Option(None, "--target", help="the column to predict (data.target)"),
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
    """Train a model from CONFIG, or the tabular recipe on a TABLE file (nntrain fit house.csv --target price);
    the run folder keeps config, metrics, best.pt, last.pt, summary and plots."""
    if resume and target:
        from nntrain.errors import UserError

        raise UserError("--target: not with --resume (the run keeps its target)")
    if not resume:
        config, overrides = config_source(config, overrides, target)
    if seeds is not None or (resume and len(resume) > 1):
        together = list(overrides or []) + (["data.cache=false"] if no_cache and seeds else [])
        track = {"quiet": quiet, "mlflow": mlflow_option(mlflow, mlflow_uri), "tensorboard": tensorboard}
        return _fit_together(config, together, name, seeds, resume, as_json, nproc, track)
    _before_fit(ctx, config, overrides, resume, nproc)
    from nntrain import api
    from nntrain.engine.progress import Bar, Lines
    from nntrain.engine.stopping import catching_signals

    extra = list(overrides or []) + (["data.cache=false"] if no_cache and not resume else [])
    out = console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    shown = Bar(out) if out.is_terminal and not quiet else Lines(log, quiet=quiet)
    track = {"log": log, "progress": shown, "tensorboard": tensorboard, "mlflow": mlflow_option(mlflow, mlflow_uri)}
    with catching_signals(then_ignore=PROCESS["exiting"]):
        run = _fit_one(config, extra, name, resume, track)
    if isinstance(config, dict) and isinstance(run, (api.Run, api.Bag)):
        saved = run.run_dir / "config.yaml"
        log(f"the whole config: {saved}; train it again: nntrain fit {saved}")
    if as_json and isinstance(run, (api.Run, api.Bag)):  # data-parallel ranks other than 0 print nothing
        print_json(_run_json(run.summary))


def _fit_one(config: str | dict | None, extra: list[str], name: str | None, resume: list[Path] | None, track: dict):
    """One run, fitted or resumed (a data-parallel rank other than 0 gives None)."""
    from nntrain import api
    from nntrain.errors import UserError

    if resume:
        if config is not None and "=" not in config:
            raise UserError(f"give either CONFIG ({config}) or --resume RUN_DIR, not both")
        extra = ([config] if config else []) + extra + ([f"name={name}"] if name else [])
        return api.resume(resume[0], extra, **track)
    if config is None:
        raise UserError(
            "missing CONFIG: nntrain fit configs/phone.yaml, nntrain fit TABLE --target COLUMN (or --resume RUN_DIR)"
        )
    return api.fit(loaded_config(config), extra, name=name, **track)


def _run_json(summary: dict) -> dict:
    """What fit --json prints of a run (of a bag, also its out-of-fold metrics and size)."""
    keep = ("run_dir", "best_epoch", "monitor", "best_value", "test", "test_baseline", "val", "bag", "calibration")
    return {k: summary[k] for k in keep if k in summary and (k not in ("val", "bag") or "bag" in summary)}


def mlflow_option(flag: bool, uri: str | None) -> str | bool | None:
    """--mlflow-uri URI, or --mlflow (True: $MLFLOW_TRACKING_URI, else ./mlruns), or neither: the config says."""
    return uri if uri is not None else (True if flag else None)


def _before_fit(ctx: typer.Context, config: str | None, overrides: list[str] | None, resume, nproc: int) -> None:
    """--nproc: this process becomes the launcher of the group; else the data file's sha256 starts hashing on
    its own thread while torch imports."""
    if nproc != 1:
        from nntrain.engine.distributed import launch, launched
        from nntrain.errors import UserError
        from nntrain.tools.bagging import is_bag

        if not launched():
            for run_dir in resume or []:  # refused before the processes start, each of which would resume it
                if is_bag(Path(run_dir)):
                    raise UserError(
                        f"--nproc {nproc}: {run_dir} is a bag, whose members train stacked in one process; "
                        f"resume it without --nproc: nntrain fit --resume {run_dir}"
                    )
            raise typer.Exit(launch(nproc, argv_again(ctx, leave_out="nproc")))
    if config is not None and resume is None:
        from nntrain.data.table_source import hash_ahead

        hash_ahead(config, list(overrides or []))


def _fit_together(
    config: str | None,
    extra: list[str],
    name: str | None,
    seeds: str | None,
    resume: list[Path] | None,
    as_json: bool,
    nproc: int,
    track: dict,
) -> None:
    """fit --seeds (a run per seed), or --resume given several run folders: trained together where they can.
    track: quiet, mlflow and tensorboard, as api.fit_seeds and api.resume_together take them."""
    from nntrain import api
    from nntrain.engine.run_groups import seeds_line
    from nntrain.engine.stopping import Diverged, catching_signals
    from nntrain.errors import UserError

    out = console(stderr=as_json)
    log = lambda m: out.print(m, markup=False)  # noqa: E731
    if seeds is None:
        for flag, given in (("--nproc", nproc != 1), ("--name", name is not None)):
            if given:
                raise UserError(
                    f"{flag}: not with several --resume (each run goes on in its own folder, in one process)"
                )
        with catching_signals(then_ignore=PROCESS["exiting"]):
            extra = ([config] if config else []) + extra
            runs = api.resume_together(resume, extra, log=log, **track)
        results = [r.summary if isinstance(r, api.Run) else r for r in runs]
        _print_results([""] * len(resume), results, log)
        if as_json:
            each = [{"run_dir": str(r.run_dir), "diverged": str(r)} if isinstance(r, Diverged) else _run_json(r)
                    for r in results]  # fmt: skip
            print_json({"runs": each})
    else:
        chosen = _seeds(seeds, config, resume, nproc)
        with catching_signals(then_ignore=PROCESS["exiting"]):
            runs = api.fit_seeds(loaded_config(config), chosen, extra, name=name, log=log, **track)
        results = [r.summary if isinstance(r, api.Run) else r for r in runs]
        _print_results([f"seed {s}, " for s in chosen], results, log)
        line = seeds_line(chosen, results)
        log(line)
        if as_json:
            dirs = [r["run_dir"] if isinstance(r, dict) else str(r.run_dir) for r in results]
            print_json({"seeds": chosen, "runs": dirs, "line": line})
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
    from nntrain import metrics as M
    from nntrain.engine.stopping import Diverged

    for label, r in zip(labels, results):
        if isinstance(r, Diverged):
            log(f"{label}{r.run_dir}: diverged: {r}")
        else:
            shown = " ".join(f"{k}={M.shown(v)}" for k, v in r["test"].items() if isinstance(v, float))
            log(f"{label}{r['run_dir']}: best epoch {r['best_epoch']}; test {shown}")
