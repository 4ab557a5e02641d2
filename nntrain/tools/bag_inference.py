"""What eval, predict, explain and export read of a trained bag (tools/bagging.py trains it): its members loaded,
their scores averaged (mixed with the bag's linear model), the metrics of the mean, the rows it predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nntrain import metrics as M
from nntrain.data.tables import Table
from nntrain.errors import UserError
from nntrain.model.heads import truth
from nntrain.tools.inference import (
    LoadedRun,
    checked_checkpoint,
    data_label,
    load_run,
    prediction_columns,
    read_input,
    scores_of,
)
from nntrain.tools.linear_path import fold_scores

BAG_FILE = "bag.json"


def averaged(loaded: list[LoadedRun], X: np.ndarray) -> np.ndarray:
    return sum(scores_of(run, X) for run in loaded) / len(loaded)


def mean_metrics(prep: dict, y: np.ndarray, scores: np.ndarray, w: np.ndarray | None) -> dict:
    """The metrics of averaged scores; the loss is their log loss (classes) or the mean squared error of the
    standardized target (regression), as the members' criteria measure it."""
    if prep["task"] == "regression":
        from nntrain.data.encoding import scale_target

        target = truth(prep, y)
        loss = float(np.average((y - scale_target(prep, scores)) ** 2, weights=w))
        return M.regression(target, scores, loss, w)
    p = np.clip(scores[np.arange(len(y)), y], 1e-12, 1.0)
    return M.classification(y, scores, float(np.average(-np.log(p), weights=w)), w)


def read_plan(root: Path) -> dict:
    """A bag's bag.json: its members, their folds and the test rows. Every reader comes here, so a file cut short
    (a full disk, a copy stopped) or edited is a UserError naming it, not a traceback."""
    path = Path(root) / BAG_FILE
    try:
        plan = json.loads(path.read_text())
        why = _plan_problem(plan)
    except OSError as e:
        why = e.strerror or str(e)
    except ValueError as e:  # not JSON, or not UTF-8
        why = f"not JSON: {e}"
    if why:
        raise UserError(
            f"{path}: not a bag's plan ({why}); the bag's members and folds are unknown without it: "
            f"train the bag again: nntrain fit {Path(root) / 'config.yaml'}"
        )
    return plan


def _plan_problem(plan) -> str | None:
    """What a bag.json's content lacks (the keys every reader takes), or None."""
    if not isinstance(plan, dict):
        return "not a JSON object"
    for key in ("members", "folds", "test"):
        if not isinstance(plan.get(key), list):
            return f"no list {key!r}"
    if not all(isinstance(m, str) for m in plan["members"]) or len(plan["folds"]) != len(plan["members"]):
        return "its members and folds do not match"
    return None


def read_oof(path: Path, prep: dict):
    """oof.csv with its target and prediction as predict gives a prediction: numbers for a regression, else the
    run's class labels (read as text first: a class written NA is a class, not a missing value)."""
    import pandas as pd

    if prep["task"] == "regression":
        return pd.read_csv(path)
    oof = pd.read_csv(path, dtype={"target": object, "prediction": object}, keep_default_na=False)
    labels = {str(c): c for c in prep["classes"]}
    for column in ("target", "prediction"):
        oof[column] = pd.Series([labels.get(v, v) for v in oof[column]], index=oof.index, dtype=object)
    return oof


def load_members(root: Path, checkpoint: str = "best") -> tuple[dict, list[LoadedRun]]:
    """(bag.json, the members that have a checkpoint): what eval, predict and export of a bag read. A bag a stop
    cut short, or one missing a member, is refused: the mean of the members left is not the bag's prediction."""
    checked_checkpoint(checkpoint)  # before a member is looked for: a bad name is no missing member
    plan = read_plan(root)
    if not (root / "summary.json").is_file():
        raise UserError(
            f"{root}: the bag has not finished (a stop cut it short); finish it with: nntrain fit --resume {root}"
        )
    loaded = []
    for name in plan["members"]:
        path = root / name / f"{checkpoint}.pt"
        if path.is_file():
            loaded.append(load_run(root / name, checkpoint))
        elif not (root / name).is_dir():
            raise UserError(f"{root / name}: not found: the bag's member {name} is missing; train the bag again")
        elif not _diverged(root / name):  # a member that diverged before its first best epoch has none
            raise UserError(f"{path}: not found: the bag's member {name} is missing it; train the bag again")
    if not loaded:
        raise UserError(f"{root}: every member of the bag diverged; no member has a {checkpoint}.pt")
    return plan, loaded


def _diverged(member: Path) -> bool:
    from nntrain.runs.files import read_summary

    try:
        return read_summary(member).get("status") == "diverged"
    except (OSError, ValueError):
        return False


def bag_report(
    root: Path, plan: dict, loaded: list[LoadedRun], data: str | Table | None = None, strict: bool = False
) -> dict:
    """What eval reports of a bag (its plan and members, loaded): the members' mean on the bag's test split (read
    again from its file), or on `data`; for a classifier also "calibration": the temperature and the log loss,
    Brier score and ECE of the probabilities before and after it."""
    from nntrain.data.columns import Report
    from nntrain.data.encoding import encode_table
    from nntrain.data.reread import load_encoded, seen_in_training
    from nntrain.model.calibration import calibrated, measures

    prep, report = loaded[0].prep, Report(strict)
    if data is None and not plan["test"]:
        raise UserError(f"{root} has no test split (data.test_size=0): evaluate it on a file with --data")
    label = "test split" if data is None else data_label(data)
    if data is None:
        e = load_encoded(prep, rows=plan["test"])
    else:
        table = read_input(data, "--data", prep)
        e = encode_table(table, prep, label, report)
        seen = seen_in_training(prep, table, None, plan["test"])
        report.notes += [seen] if seen else []
    raw, _ = bag_scores({**plan, "temperature": None}, loaded, e.X)
    scores = raw if prep["task"] == "regression" else calibrated(raw, plan.get("temperature"))
    report.notes += M.r2_notes(prep["task"], truth(prep, e.y), e.weights, f"the {label}" if data is None else label)
    out = {
        "run_dir": str(root),
        "checkpoint_epoch": [run.ckpt["epoch"] for run in loaded],
        "data": label,
        "rows": len(e.y),
        "metrics": mean_metrics(prep, e.y, scores, e.weights),
        "baseline": M.baseline(prep["task"], truth(prep, e.y), prep, e.weights),
        "notes": report.notes,
        "members": len(loaded),
    }
    if prep["task"] != "regression":
        t = plan.get("temperature")
        shown = {"temperature": t, "fitted_on": "the out-of-fold rows"}
        out["calibration"] = {**shown, "before": measures(raw, e.y), "after": measures(scores, e.y)}
    return out


def bag_predict(plan: dict, loaded: list[LoadedRun], data: str | Table, report=None, members: bool = False):
    """Raw rows in; the members' averaged probabilities (or predictions) out, encoded once (the preprocessing is
    the bag's, shared by every member); from the members in memory, so a bag whose folder is gone predicts.
    members: also each member's own predictions (bag_scores), from the same pass."""
    from nntrain.data.encoding import encode

    prep = loaded[0].prep
    table = read_input(data, "INPUT", prep, report.notes if report else [])
    X = encode(table.frame, prep, table.header_line, report=report, shown=data_label(data))
    mean, own = bag_scores(plan, loaded, X, members)
    frame = prediction_columns(prep, mean).set_axis(table.frame.index)
    return (frame, own) if members else frame


def bag_scores(plan: dict, loaded: list[LoadedRun], X: np.ndarray, members: bool = False) -> tuple:
    """(the bag's scores: the members' mean mixed with its linear model (class probabilities calibrated by its
    temperature), and where `members` asks, each member's
    number with its own scores mixed with its fold's linear model: what CV+ intervals need; else None)."""
    from nntrain.model.calibration import calibrated

    prep, linear = loaded[0].prep, plan.get("linear")
    share = linear["weight"] if linear else 0.0
    lin = fold_scores(linear, prep, X) if share else None  # the linear model's inputs read once
    nets = [scores_of(run, X) for run in loaded]
    mean = sum(nets) / len(nets)
    if share:  # the members' mean mixed with the linear model by its weight
        mean = (1 - share) * mean + share * (sum(lin) / len(lin))
    if prep["task"] != "regression":
        mean = calibrated(mean, plan.get("temperature"))
    if not members:
        return mean, None
    own = []
    for run, net in zip(loaded, nets):
        k = int(run.run_dir.name.removeprefix("member"))
        own.append((k, net if not share else (1 - share) * net + share * lin[k - 1]))
    return mean, own
