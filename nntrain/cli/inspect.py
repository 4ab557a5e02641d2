"""What a run did and what it gives: `eval`, `params`, `predict`, `runs`, `compare`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from nntrain.cli.app import (
    STRICT_HELP,
    TABLE_WIDTH,
    console,
    data_warnings,
    guarded,
    print_json,
)


def _checkpoint(checkpoint: str, report: dict) -> str:
    """'best.pt, epoch 12', or a bag's 'best.pt of 5 members, epochs 12-31'."""
    from nntrain.runs.listing import span

    epochs = report["checkpoint_epoch"]
    if not isinstance(epochs, list):
        return f"{checkpoint}.pt, epoch {epochs}"
    return f"{checkpoint}.pt of {len(epochs)} members, epochs {span(epochs)}"


SHEET_HELP = (
    "the sheet of an Excel workbook to read; default: the sheet named as the one the run was trained on, or the "
    "workbook's only sheet"
)


@guarded
def eval_(
    run_dir: Path | None = typer.Argument(None, help="run folder; default: the newest under runs/"),
    data: str | None = typer.Option(
        None, "--data", help="evaluate on this file (same columns) instead of the test split"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json"),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    level: float = typer.Option(0.9, "--level", help="the coverage asked of the intervals or sets it reports"),
    sheet: str | None = typer.Option(None, "--sheet", help=SHEET_HELP),
) -> None:
    """Metrics of a trained run on its own test split or on another file."""

    from nntrain import api
    from nntrain.engine.progress import format_metrics
    from nntrain.errors import UserError
    from nntrain.runs.folders import resolve_run_dir

    if sheet is not None and data is None:
        raise UserError(f"--sheet {sheet}: names a sheet of the workbook --data gives; the test split needs none")
    run = api.load(resolve_run_dir(str(run_dir) if run_dir else None), checkpoint)
    with data_warnings():
        report = run.report(data, strict, level, sheet)
    if as_json:
        print_json(report)
        return
    out = console(False)
    out.print(
        f"{report['run_dir']} ({_checkpoint(checkpoint, report)}) on {report['data']}, {report['rows']} rows:",
        markup=False,
    )
    out.print(format_metrics(report["metrics"], report["baseline"]), markup=False)
    if report.get("calibration"):
        out.print(calibration_shown(report["calibration"]), markup=False)
    if report.get("conformal"):
        out.print(conformal_line(report["conformal"], "members" in report), markup=False)


def calibration_shown(c: dict) -> str:
    """eval's calibration line: the test rows' scores before and after the temperature, as the metrics print."""
    from nntrain.metrics import shown

    pairs = ", ".join(f"{k} {shown(c['before'][k])} -> {shown(c['after'][k])}" for k in ("log_loss", "brier", "ece"))
    return f"calibration (temperature {c['temperature']:g}, fitted on {c['fitted_on']}): {pairs}"


def conformal_line(c: dict, bag: bool) -> str:
    """eval's line on the intervals (or sets) predict --interval (--sets) would give."""
    if "note" in c:
        return f"intervals / sets at {c['level']:g}: {c['note']}"
    rows = "out-of-fold rows" if bag else "validation rows"
    if "mean_width" in c:
        what, how, size = "intervals", "CV+" if bag else "split conformal", f"mean width {c['mean_width']:.4g}"
    else:
        what, how, size = "sets", "LAC", f"mean size {c['mean_set_size']:.3g}"
    flag = "--interval" if what == "intervals" else "--sets"
    return (
        f"{c['level']:.0%} {what} (predict {flag} {c['level']:g}): coverage {c['coverage']:.3f}, {size} ({how} "
        f"on the {rows})"
    )


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
        from nntrain.data.readers import is_table

        if is_table(target):
            raise UserError(f"{target} is a table: params counts a config's or a run folder's parameters")
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
            console(True).print(f"warning: {why}: `nntrain fit` on the CPU would refuse it", markup=False)
    if as_json:
        print_json(table)
        return
    _print_params(table)


def _print_params(table: dict) -> None:
    from rich.table import Table

    t = Table(title="parameters")
    for col in ("layer", "type", "shape", "weights", "biases", "total", "buffers"):
        # cells wrap in a narrow terminal: rich's default cut them ('256x…'), the shapes unreadable
        t.add_column(col, justify="left" if col in ("layer", "type", "shape") else "right", overflow="fold")
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
    out = console(False)
    out.print(t)
    out.print(
        f"total {table['total']:,}  trainable {table['trainable']:,}  non-trainable {table['non_trainable']:,}  "
        f"buffers {table['buffers']:,}  memory {table['bytes'] / 1024:.1f} KiB",
        markup=False,
    )
    if "members" in table:
        out.print(f"a bag of {table['members']} members, each with these layers", markup=False)


@guarded
def predict(
    run_dir: Path = typer.Argument(..., help="the run folder"),
    input: str = typer.Argument(
        ..., help="a table file (CSV, Excel, Parquet, ...) of raw rows with the training columns"
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="write the predictions in the format its suffix names: .parquet, .xlsx, .jsonl, .tsv, .feather, else CSV",
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    force: bool = typer.Option(False, "--force", help="replace an existing output file"),
    raw: bool = typer.Option(
        False, "--raw", help="write labels as they are, even those a spreadsheet runs as formulas"
    ),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    interval: float | None = typer.Option(
        None, "--interval", help="regression: add lower and upper, holding the truth with this probability (0.9)"
    ),
    sets: float | None = typer.Option(
        None, "--sets", help="classification: add set and set_size, the classes holding the truth with this probability"
    ),
    sheet: str | None = typer.Option(None, "--sheet", help=SHEET_HELP),
) -> None:
    """Predict from raw rows: the stored preprocessing is applied; labels come back as in the training data."""

    from nntrain import api
    from nntrain.data.stream import parquet_files
    from nntrain.errors import UserError
    from nntrain.runs.files import output_file, write_output
    from nntrain.tools.conformal import asked
    from nntrain.tools.inference import check_sheet
    from nntrain.tools.prediction_files import prediction_writer

    check_sheet(sheet, input, "INPUT")
    if output is not None:
        output_file(output, force, inputs=[input])
    writer = prediction_writer(output, raw)  # the format -o's suffix names (stdout: CSV); refused before any work
    run = api.load(run_dir, checkpoint)
    asked(run.task, interval, sets, cli=True)
    files = parquet_files(input)  # Parquet (a file, folder or glob) is read and written a chunk at a time
    written = 0

    def write(f: Any) -> None:
        nonlocal written
        frames = _chunked(run, files, input, strict, interval, sets) if files else None
        try:
            written = writer(f, frames or [run.predict(input, strict, interval=interval, sets=sets, sheet=sheet)])
        except UserError as e:  # the API names its arguments (interval 0.999: ...); here they were flags
            raise UserError(f"--{e}") if str(e).startswith(("interval ", "sets ")) else e from None

    with data_warnings():
        if output is None:
            write(sys.stdout)
            return
        write_output(output, write, f"-o {output}")
    console(True).print(f"{written} predictions written to {output}", markup=False)


def _chunked(run: Any, files: list[str], shown: str, strict: bool, interval: Any, sets: Any) -> Iterator[Any]:
    """Predictions of the Parquet files' rows, a chunk (data/stream.py's) at a time: memory stays flat. What the
    chunks' encoding read as unknown is said once at the end, as of one input: a value's rows added up. Under
    --strict a column missing in every row is refused there too, where it is so in every chunk."""
    import warnings

    from nntrain.api import DataWarning
    from nntrain.data.chunk_rows import in_file
    from nntrain.data.columns import CHUNK_STRICT, refuse_absent, summed_notes
    from nntrain.data.stream import chunks, open_source
    from nntrain.errors import UserError

    source, said = open_source(files, shown, key=""), []
    for fragment in source.fragments:
        for first, frame in chunks(source, fragment):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                try:
                    predicted = run.predict(frame, strict and CHUNK_STRICT, interval=interval, sets=sets)
                except UserError as e:  # "at row 6" of the chunk, given as a DataFrame: the file's row
                    plain = UserError(str(e).removeprefix("a DataFrame: "))
                    raise in_file(plain, source.files[fragment.file], first) from None
            for w in caught:  # a DataWarning is said at the end (a cv's folds each say it: once a chunk)
                if not issubclass(w.category, DataWarning):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            said.append([str(w.message) for w in caught if issubclass(w.category, DataWarning)])
            yield predicted
    notes = summed_notes(said)
    if strict:
        refuse_absent(notes)
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)


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
        print_json(
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
        console(False).print(f"no runs under {runs_dir}/", markup=False)
        return
    console(False, width=TABLE_WIDTH).print(runs_table(rows))


@guarded
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="two or more run folders"),
    output: Path = typer.Option(Path("compare.png"), "-o", "--output", help="where to write the overlaid curves (PNG)"),
    force: bool = typer.Option(False, "--force", help="replace an existing output file"),
) -> None:
    """Overlay several runs' curves (val loss, metric, lr) and table what differs in their configs and results."""

    import pandas as pd

    from nntrain.errors import UserError, listed
    from nntrain.runs.files import output_file
    from nntrain.runs.folders import resolve_run_dir
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
        members = sorted(r["path"].glob("member*/metrics.csv")) if (r["path"] / "bag.json").is_file() else []
        for csv in members:  # a bag: each member's curves (on its own fold)
            frames[f"{name}/{csv.parent.name}"] = pd.read_csv(csv)
        if members:
            continue
        if not (r["path"] / "metrics.csv").is_file() or not r["path"].joinpath("metrics.csv").stat().st_size:
            raise UserError(f"{r['path']}: no finished epoch yet (metrics.csv is missing or empty)")
        frames[name] = pd.read_csv(r["path"] / "metrics.csv")
    if output.suffix.lower() != ".png":
        raise UserError(f"-o {output}: the curves are written as PNG; name a .png file")
    output_file(output, force)
    metric = _compare_metric(rows[0])
    try:
        compare_plot(frames, output, metric, f"{listed(frames, most=6)}: each run's validation rows")
    except OSError as e:
        raise UserError(f"-o {output}: cannot write it: {e.strerror or e}") from None
    out = console(False, width=TABLE_WIDTH)
    out.print(compare_table(dict(zip(names, rows))))
    out.print(f"curves (val_loss, {metric}, lr): {output}", markup=False)


def _compare_metric(row: dict) -> str:
    """The monitored metric, or when that is the loss (already the first panel) the task's headline metric."""
    monitor = row.get("monitor") or "val_loss"
    if monitor != "val_loss":
        return monitor
    from nntrain.metrics import headline

    return "val_" + headline(row.get("task") or "")
