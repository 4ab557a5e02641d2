"""eval and predict from a run folder alone: the checkpoint carries the config and the fitted preprocessing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from torch import nn

from nntrain import metrics as M
from nntrain.config.data_section import EXCEL
from nntrain.config.schema import Config
from nntrain.data.columns import Report, text_columns
from nntrain.data.encoding import encode, encode_table, unscale
from nntrain.data.frames import table_or_path
from nntrain.data.moved import found_again
from nntrain.data.readers import kind_of
from nntrain.data.reread import seen_in_run, split_encoded
from nntrain.data.tables import Table, read_options, read_table
from nntrain.engine.device import inference_threads
from nntrain.errors import UserError
from nntrain.model.calibration import calibrated, log_loss, measures
from nntrain.model.embeddings import embeds_of, numerics_of
from nntrain.model.heads import Rows, evaluate_with_scores, forward_all, make_criterion, to_proba, truth
from nntrain.model.mlp import build_mlp, check_weights, load_weights
from nntrain.runs.checkpoints import load_run_checkpoint
from nntrain.runs.files import read_summary


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: Config
    model: nn.Module
    prep: dict
    ckpt: dict
    split: dict  # split.json: the rows of each split, and the run id


def checked_checkpoint(checkpoint: str) -> str:
    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint={checkpoint}: choose best or last")
    return checkpoint


def load_run(run_dir: Path, checkpoint: str = "best") -> LoadedRun:
    checked_checkpoint(checkpoint)
    ckpt, split = load_run_checkpoint(run_dir, checkpoint)
    inference_threads()
    return from_checkpoint(run_dir, found_again(ckpt, run_dir), split, run_dir / f"{checkpoint}.pt")


# What predicting and evaluating read of a checkpoint (not the optimizer's state nor the RNGs)
MODEL_KEYS = (
    "format",
    "config",
    "prep",
    "n_inputs",
    "n_outputs",
    "task",
    "versions",
    "run_id",
    "epoch",
    "model",
    "temperature",
)


def from_checkpoint(run_dir: Path, ckpt: dict, split: dict, path: Path) -> LoadedRun:
    """The model built from its config and loaded with the checkpoint's weights; `path` names it in messages."""
    cfg = stored_config(ckpt, path)
    check_weights(cfg.model, ckpt, path)
    prep = ckpt["prep"]
    model = build_mlp(cfg.model, ckpt["n_inputs"], ckpt["n_outputs"], embeds_of(prep), ckpt["task"], numerics_of(prep))
    load_weights(model, ckpt, path)
    model.eval()
    kept = {k: ckpt[k] for k in MODEL_KEYS if k in ckpt}
    return LoadedRun(run_dir, cfg, model, prep, kept, split)


def stored_config(ckpt: dict, path: Path) -> Config:
    """The config a checkpoint was trained with, checked as the schema checks a file."""
    try:
        return Config.model_validate(ckpt["config"])
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{path}: its stored config is not valid ({where}: {err['msg']}); retrain") from None


def evaluate_run(run: LoadedRun, data_file: str | Table | None = None, strict: bool = False) -> dict:
    """Metrics on the run's own test split (same rows, from split.json), or on another file (or a Table in
    memory); `notes` says what the encoding read as unknown (under `strict`, that is an error)."""
    prep, report = run.prep, Report(strict)
    report.notes += unfinished(run)
    if data_file is None:
        e, label = split_encoded(prep, run.split, run.run_dir, "test", report), "test split"  # those rows only
        if e is None:
            raise UserError(f"{run.run_dir} has no test split (data.test_size=0): evaluate it on a file with --data")
    else:
        table = read_input(data_file, "--data", prep)
        label = data_label(data_file)
        e = encode_table(table, prep, label, report)
        seen = seen_in_run(prep, table, run.split, run.run_dir)
        report.notes += [seen] if seen else []
    rows = Rows(torch.as_tensor(e.X), torch.as_tensor(e.y), _tensor(e.loss_weights), e.weights)
    criterion = make_criterion(run.cfg, prep["task"], e.loss_weights is not None)
    metrics, raw = evaluate_with_scores(run.model, rows, run.cfg, prep, criterion)
    report.notes += M.r2_notes(
        prep["task"], truth(prep, e.y), e.weights, f"the {label}" if data_file is None else label
    )
    out = {
        "run_dir": str(run.run_dir),
        "checkpoint_epoch": run.ckpt["epoch"],
        "data": label,
        "rows": len(e.y),
        "metrics": metrics,
        "baseline": M.baseline(prep["task"], truth(prep, e.y), prep, e.weights),
        "notes": report.notes,
    }
    if run.ckpt.get("temperature"):  # what predict gives: the calibrated probabilities, and the change
        after = calibrated(raw, run.ckpt["temperature"])
        out["metrics"] = {**out["metrics"], **M.classification(e.y, after, log_loss(after, e.y, e.weights), e.weights)}
        out["calibration"] = {
            "temperature": run.ckpt["temperature"],
            "fitted_on": "the validation rows",
            "before": measures(raw, e.y),
            "after": measures(after, e.y),
        }
    return out


def unfinished(run: LoadedRun) -> list[str]:
    """A note where the run's training has not ended (interrupted, killed, still going): a bag refuses a member
    that has not; a lone run's weights saved so far are used, and said to be. None for a folder gone (an
    estimator's temporary one: its model had finished) or a run that ended (completed, early-stopped, ...)."""
    if not run.run_dir.is_dir():
        return []
    try:
        status = read_summary(run.run_dir).get("status")
    except (OSError, ValueError):  # a summary.json not JSON: not this note's to say
        return []
    if status not in (None, "interrupted", "running"):
        return []
    why = "interrupted" if status == "interrupted" else "no summary.json: still training, or killed"
    return [
        f"{run.run_dir}: the run has not finished ({why}); its weights are those it saved at epoch "
        f"{run.ckpt['epoch']}, not a finished run's; resume it to finish it"
    ]


def data_label(data: str | Table) -> str:
    """What messages call rows given to eval or explain: the file as given, a file's rows by its path (explain
    reads the file, then evaluates its shuffled rows), or "a DataFrame"."""
    if isinstance(data, str):
        return data
    return "a DataFrame" if data.source == "DataFrame" else data.source


def _tensor(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.as_tensor(a, dtype=torch.float32)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells and headers that would start a formula get a leading ' (a class label =HYPERLINK(...) stays
    text); numbers stay numbers."""

    def cell(value: object) -> object:
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value

    safe = frame.copy()
    safe.columns = [cell(str(c)) for c in frame.columns]
    for i in range(safe.shape[1]):
        column = safe.iloc[:, i]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            safe.isetitem(i, column.map(cell))
    return safe


def read_input(
    data: str | Table, key: str, prep: dict, said: list[str] | None = None, sheet: str | None = None
) -> Table:
    """A file given to eval or predict, read as the run's own were (data.sep, data.decimal, data.thousands, what
    its commas were), with the columns that held text in training kept text. `said`: predict's warnings, where
    every row is predicted, a last one that looks like a total too. A workbook's sheet: `sheet` (--sheet), else
    the one named as the run's sheet, else its only one; one of several is not guessed."""
    if isinstance(data, Table):
        return data
    options = read_options(prep.get("read", {}))
    options.text, options.every_row = text_columns(prep), said
    check_sheet(sheet, data, key)
    options.run_sheet = prep.get("sheet") or options.sheet  # a run from before prep["sheet"]: its data.sheet
    options.sheet, options.sheet_key, options.largest = sheet, "--sheet", False
    return read_table(data, key=key, options=options)


def check_sheet(sheet: str | None, data: str, key: str) -> None:
    """--sheet names a sheet of a workbook: on any other file it would be ignored."""
    if sheet is not None and kind_of(Path(data))[0] not in EXCEL:
        raise UserError(f"--sheet {sheet}: {key}={data} is not an Excel workbook ({', '.join(EXCEL)}); drop --sheet")


def rows_of(data: object, key: str, prep: dict, sheet: str | None, said: list[str] | None = None) -> str | Table | None:
    """What the API's data= gives (table_or_path's path or Table); with a workbook's `sheet` named, the file read
    here, as a Table that messages name as given (`said`: as read_input's, for predict)."""
    rows = table_or_path(data)
    if sheet is None:
        return rows
    if not isinstance(rows, str):
        raise UserError(f"sheet={sheet}: names a sheet of a workbook file; give the file, or drop sheet")
    return dataclasses.replace(read_input(rows, key, prep, said, sheet), source=rows)


def predict_frame(run: LoadedRun, data: str | Table, report: Report | None = None) -> pd.DataFrame:
    """Raw rows in (a file, or a Table in memory); the prediction (original label values) and class
    probabilities out. `report` gathers what the encoding read as unknown."""
    table = read_input(data, "INPUT", run.prep, report.notes if report else [])
    if report is not None:
        report.notes += unfinished(run)
    X = encode(table.frame, run.prep, table.header_line, report=report, shown=data_label(data))
    return prediction_columns(run.prep, scores_of(run, X)).set_axis(table.frame.index)


def raw_scores(run: LoadedRun, X: np.ndarray) -> np.ndarray:
    """The model's class probabilities (as trained, before any temperature), or predictions in the target's
    units, in float64."""
    out = forward_all(run.model, torch.as_tensor(X))
    if run.prep["task"] == "regression":
        return unscale(run.prep, out[:, 0].double().numpy())
    return to_proba(out, run.cfg).double().numpy()


def scores_of(run: LoadedRun, X: np.ndarray) -> np.ndarray:
    """What the run predicts: raw_scores, a lone run's class probabilities calibrated by the temperature fit
    stored in best.pt (none in a bag's member: its bag has one for the members' mean)."""
    scores = raw_scores(run, X)
    return calibrated(scores, run.ckpt.get("temperature")) if run.prep["task"] != "regression" else scores


def labels_of(prep: dict, values: np.ndarray) -> np.ndarray:
    return values if prep["task"] == "regression" else np.asarray(prep["classes"], dtype=object)[values]


def prediction_columns(prep: dict, scores: np.ndarray) -> pd.DataFrame:
    """`prediction` in the target's labels or units, and `proba_<class>` per class."""
    if prep["task"] == "regression":
        return pd.DataFrame({"prediction": scores})
    frame = pd.DataFrame({"prediction": labels_of(prep, scores.argmax(axis=1))})
    for k, c in enumerate(prep["classes"]):
        frame[f"proba_{c}"] = scores[:, k]
    return frame
