"""The end of a fit: the test metrics of best.pt, summary.json with the run's status and why it stopped, and
the plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nntrain import metrics as M
from nntrain.config.schema import to_plain
from nntrain.data.prepare import Prepared
from nntrain.engine.loop_state import Halt, Loop
from nntrain.engine.progress import format_metrics
from nntrain.engine.state import Run
from nntrain.engine.stopping import RanksDiverged
from nntrain.model.calibration import MIN_ROWS, calibrated, fit_temperature, log_loss
from nntrain.model.heads import Rows, evaluate_with_scores, truth
from nntrain.runs.checkpoints import load_checkpoint, versions
from nntrain.runs.files import atomic_save, write_json


def _train_rows(data: Prepared) -> int:
    """The training rows: in memory, or (a streamed run, which holds none) the split's count of them."""
    return data.prep["stream"]["rows"]["train"] if "stream" in data.prep else len(data.train)


def summary_of(run: Run, status: str, stopped: str | None, seconds: float) -> dict:
    """summary.json without the test metrics: what every run that ends says of itself."""
    data = run.data
    return {
        "run_dir": str(run.run_dir),
        "status": status,
        "best_epoch": run.best_epoch,
        "monitor": M.monitor_name(run.cfg.train.monitor),
        "best_value": run.best_value,
        "epochs_run": run.epoch,
        "stopped": stopped,
        "train_seconds": round(seconds, 3),
        "task": data.task,
        "rows": {"train": _train_rows(data), "val": len(data.val), "test": len(data.test)},
        "data": {
            "source": data.prep["source"],
            "sha256": data.prep["sha256"],
            "files": data.prep.get("files", []),  # data.val_path / data.test_path
            "split": data.prep.get("split"),
            "notes": data.prep.get("notes", []),  # the choices fit printed
        },
        "config": {**to_plain(run.cfg), "sweep": None},  # what was trained, whatever is done to config.yaml
        "versions": versions(),
    }


UNCHANGED = "unchanged"  # in the summary a resume with nothing to train gives back (never in summary.json)


def ended_already(run: Run) -> dict | None:
    """The summary.json of a run with nothing left to train (its epochs done, or early-stopped) when it already
    says how the run ended at this epoch: a resume then leaves the run folder as it is. Else None."""
    if run.step or not run.ended:
        return None
    try:
        summary = json.loads((run.run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    ended = isinstance(summary, dict) and summary.get("status") in ("completed", "early_stop", "pruned")
    return summary if ended and summary.get("epochs_run") == run.epoch else None


def nothing_to_train(run_dir: Path, summary: dict) -> str:
    """What a resume with nothing to train says."""
    why = f": {summary['stopped']}" if summary.get("stopped") else ""
    return (
        f"{run_dir}: ended at epoch {summary['epochs_run']} ({summary['status']}{why}); nothing to "
        f"train, summary.json unchanged (raise train.epochs, or train.patience, to train on)"
    )


def finish(run: Run, loop: Loop, seconds: float, halt: Halt | None) -> dict:
    """After the last epoch: the ranks' weights compared, then best.pt on the test split, summary.json, plots."""
    data, parts, group = run.data, run.parts, run.group
    if group:
        if not group.same_weights(parts.model):
            raise RanksDiverged(f"the {group.world} ranks ended with different weights; {run.run_dir} holds rank 0's")
        loop.log(f"data-parallel: {group.world} processes, weights identical on every rank (sha256 compared)")
        if not group.writes:
            return {"run_dir": str(run.run_dir), "rank": group.rank}
    parts.model.load_state_dict(load_checkpoint(run.run_dir / "best.pt")["model"])
    summary = summary_of(run, halt.status if halt else "completed", halt.reason if halt else None, seconds)
    summary.update(test={}, test_baseline={})
    y_test, scores, held = None, None, calibrate(run, loop)
    none_why, held = (held, None) if isinstance(held, str) else (None, held)
    if len(data.test):
        rows = Rows.take(loop.X, loop.y, loop.loss_weights, data.weights, data.test)
        test, scores = evaluate_with_scores(parts.model, rows, run.cfg, data.prep, parts.criterion)
        y_test = truth(data.prep, data.y[data.test])
        if held:  # what predict and eval give: the probabilities calibrated
            test, scores = tempered(held[3], scores, y_test, rows.weights)
        summary.update(test=test, test_baseline=M.baseline(data.task, y_test, data.prep, rows.weights))
    if held:
        summary["calibration"] = held[3]
    write_json(run.run_dir / "summary.json", summary)
    loop.progress.end()
    best = f"best epoch {run.best_epoch} ({summary['monitor']}={M.shown(run.best_value)})"
    if y_test is None:
        loop.log(f"{best}; no test split (data.test_size=0)")
    else:
        loop.log(f"{best}; test metrics of best.pt:")
        loop.log(format_metrics(summary["test"], summary["test_baseline"]))
        for note in M.r2_notes(data.task, y_test, rows.weights, "the test split"):
            loop.log(f"note: {note}")
    if held or none_why:
        loop.log(calibration_line(held[3]) if held else none_why)
    if run.cfg.train.plots:
        try:
            written = write_plots(run.run_dir, summary["monitor"], data.task, y_test, scores, data.prep["classes"])
            written += [reliability(run.run_dir, *held[:3])] if held else []
            loop.log(f"plots: {', '.join(p.name for p in written)} in {run.run_dir}")
        except OSError as e:  # the run is whole without them
            loop.log(f"warning: the plots were not written: {e.strerror or e}; the run folder is complete otherwise")
    return summary


def write_plots(
    run_dir: Path, monitor: str, task: str, y_true: np.ndarray | None, scores: np.ndarray | None, classes: list | None
) -> list[Path]:
    """PNG plots in the run folder: curves from metrics.csv, and the test split's predictions (if it has one)."""
    from nntrain.runs.plots import curve_plots, prediction_plots

    curves = curve_plots(run_dir, monitor)
    return curves if y_true is None else curves + prediction_plots(run_dir, task, y_true, scores, classes)


def calibrate(run: Run, loop: Loop) -> tuple | str | None:
    """A lone classifier's temperature, fitted on its validation rows through best.pt's model (loaded) and stored
    in best.pt, where predict, eval, the API and export read it. A bag's member gets none: its bag fits one on
    the out-of-fold rows. (the validation rows' probabilities as trained and calibrated, their targets, and for
    summary.json the temperature with the log losses before and after), or None where it would be 1, or the line
    saying why there is none (too few validation rows)."""
    data = run.data
    member = run.cfg._bag or (run.run_dir.parent / "bag.json").is_file()  # a resumed member has no _bag
    if data.task == "regression" or member or not len(data.val):
        return None
    rows = Rows.take(loop.X, loop.y, loop.loss_weights, data.weights, data.val)
    _, raw = evaluate_with_scores(run.parts.model, rows, run.cfg, data.prep, run.parts.criterion)
    y = rows.y.cpu().numpy()
    if len(y) < MIN_ROWS:
        return f"calibration: none, {len(y)} validation rows are fewer than the {MIN_ROWS} a temperature needs"
    t = fit_temperature(raw, y, rows.weights)
    if t == 1.0:
        return None
    best = run.run_dir / "best.pt"
    atomic_save({**load_checkpoint(best), "temperature": t}, best)
    after = calibrated(raw, t)
    losses = [log_loss(raw, y, rows.weights), log_loss(after, y, rows.weights)]
    return raw, after, y, {"temperature": t, "rows": len(y), "val_log_loss": losses}


def tempered(said: dict, raw: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> tuple[dict, np.ndarray]:
    """The test split's metrics and probabilities calibrated by said's temperature, as eval computes them; said
    gets the test log loss before and after."""
    after = calibrated(raw, said["temperature"])
    said["test_log_loss"] = [log_loss(raw, y, w), log_loss(after, y, w)]
    return M.classification(y, after, said["test_log_loss"][1], w), after


def calibration_line(said: dict) -> str:
    losses = {k.removesuffix("_log_loss"): v for k, v in said.items() if k.endswith("_log_loss")}
    shown = [f"{k} {M.shown(a)} -> {M.shown(b)}" for k, (a, b) in losses.items()]  # 0.00031, not 0.0003
    return (
        f"calibration: temperature {said['temperature']:g}, fitted on the {said['rows']:,} validation rows; log loss "
        f"{', '.join(shown)}; the test metrics above, predict, eval and export apply it"
    )


def reliability(run_dir: Path, raw: np.ndarray, after: np.ndarray, y: np.ndarray) -> Path:
    """calibration.png: the validation rows' reliability before and after the temperature."""
    from nntrain.runs.plots import reliability_png

    curves = {"validation, as trained": (raw, y), "validation, calibrated": (after, y)}
    return reliability_png(curves, run_dir / "calibration.png", f"{run_dir.name}: the validation rows, {len(y):,}")
