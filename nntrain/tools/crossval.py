"""k-fold cross-validation: the run's test split stays aside; its other rows are cut into k folds
(stratified by class, or whole groups with data.group), and fold k is the validation split of run foldK
(preprocessing fitted on the other folds). The runs train together on the stacked engine where they can;
cv.json holds each fold's validation metrics (at its best epoch) and test metrics, with mean and spread.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nntrain import metrics as M
from nntrain.config.loading import load_config
from nntrain.config.schema import Config
from nntrain.data.prepare import prepared
from nntrain.data.tables import read_tables
from nntrain.engine.run_groups import fit_many, resume_many
from nntrain.engine.stopping import Diverged, Interrupted
from nntrain.errors import UserError, quoted
from nntrain.runs.files import read_summary, write_json
from nntrain.runs.folders import create_run_dir
from nntrain.tools.folds import shuffled_folds, stratified_folds

MAX_FOLDS = 20
CV_FILE = "cv.json"


def cross_validate(
    cfg: Config, config_dir: Path | None, folds: int, log: Callable[[str], None], quiet: bool = True
) -> dict:
    """Train a run per fold under RUNS_DIR/NAME-cv/ and write cv.json there; its contents. Every fold's data is
    prepared and checked before the folder is made; cv.json names the folds (status "running") before any
    trains, so that `cv --resume` finishes an interrupted cross-validation."""
    _check(cfg, folds)
    tables = read_tables(cfg.data, config_dir)  # read once; each fold prepares it with its own rows
    base = prepared(cfg, tables)
    vals = fold_rows(cfg, tables[0].frame, base, folds)
    cfgs, data = [], []
    for k, val in enumerate(vals, start=1):
        fold = copy.deepcopy(cfg)
        fold.name = f"fold{k}"
        one = prepared(fold, tables, rows={"val": val, "test": base.test})
        one.prep["split"] = f"fold {k} of {folds} as validation, the run's test split as test"
        one.notes = [n for n in one.notes if not n.startswith("split ")]
        cfgs.append(fold)
        data.append(one)
    root = create_run_dir(cfg.runs_dir, f"{cfg.name}-cv")
    monitor = M.monitor_name(cfg.train.monitor)
    for fold in cfgs:
        fold.runs_dir = str(root)

    def started(runs: list) -> None:  # every fold has its folder: from here the cv is resumable
        plan = [{"fold": k, "run_dir": str(r.run_dir.resolve())} for k, r in enumerate(runs, start=1)]
        write_json(root / CV_FILE, {"status": "running", "folds": plan, "monitor": monitor, "root": str(root)})

    log(f"{folds} folds of {sum(map(len, vals)):,} rows ({base.prep['split']}); test split {len(base.test):,} rows")
    try:
        results = fit_many(cfgs, config_dir, log, quiet, data=data, started=started)
    except BaseException as e:
        if not (root / CV_FILE).is_file():  # no fold started: nothing to keep
            shutil.rmtree(root, ignore_errors=True)
        elif isinstance(e, Interrupted):
            raise e.resume_with(f"nntrain cv --resume {root}") from None
        raise
    return _written(root, monitor, results)


def resume_cv(root: Path, log: Callable[[str], None], quiet: bool = True) -> dict:
    """An interrupted cross-validation finished: its unfinished folds (those never started too) resumed
    together, then cv.json written."""
    plan = read_cv(root, finished=False)
    if plan.get("status") != "running":
        raise UserError(f"{root}: its cross-validation has finished (cv.json); nothing to resume")
    dirs = [root / Path(f["run_dir"]).name for f in plan["folds"]]
    ended = {d: _ended(d) for d in dirs}
    going = [d for d in dirs if ended[d] is None]
    log(f"{root}: {len(dirs) - len(going)} of {len(dirs)} folds finished; resuming {len(going)}")
    try:
        resumed = dict(zip(going, resume_many(going, [], log, quiet))) if going else {}
    except Interrupted as e:
        raise e.resume_with(f"nntrain cv --resume {root}") from None
    return _written(root, plan["monitor"], [ended[d] or resumed[d] for d in dirs])


def refuse_a_part(run_dir: Path) -> None:
    """A bag's member or a cross-validation's fold (its parent's bag.json or cv.json) resumed alone: refused, as it
    would leave the bag's summary.json and oof.csv, or cv.json, behind its new weights."""
    from nntrain.tools.bag_inference import BAG_FILE, read_plan

    run_dir = Path(run_dir)
    root = run_dir.parent
    if (root / BAG_FILE).is_file() and run_dir.name in read_plan(root)["members"]:
        raise UserError(
            f"{run_dir}: a member of the bag {root} (bag.json); resumed alone it would leave the bag's summary.json "
            f"and oof.csv behind its weights. Resume the bag, whose members go on together and which is finished "
            f"again: nntrain fit --resume {root} (with train.epochs=N to train longer)"
        )
    if (root / CV_FILE).is_file():
        running = json.loads((root / CV_FILE).read_text()).get("status") == "running"
        how = (
            f"finish it, its folds together: nntrain cv --resume {root}"
            if running
            else f"it has finished (nntrain cv --resume {root} finishes an interrupted one); to train its folds "
            f"longer, run the cross-validation again: nntrain cv CONFIG train.epochs=N"
        )
        raise UserError(
            f"{run_dir}: a fold of the cross-validation {root} (cv.json), which it would leave stale; {how}"
        )


def _ended(run_dir: Path) -> dict | Diverged | None:
    """A fold's summary when it has finished (or how it diverged); None when it has still to train."""
    summary = read_summary(run_dir)
    if summary.get("status") == "diverged":
        e = Diverged(summary.get("stopped") or "diverged")
        e.run_dir = run_dir
        return e
    return {**summary, "run_dir": str(run_dir)} if summary.get("status") in ("completed", "early_stop") else None


def _written(root: Path, monitor: str, results: list) -> dict:
    report = _report(monitor, results, root)
    write_json(root / CV_FILE, report)
    return report


def _check(cfg: Config, folds: int) -> None:
    if not 2 <= folds <= MAX_FOLDS:
        raise UserError(f"--folds {folds}: give 2 to {MAX_FOLDS}")
    for key in ("split_column", "val_path", "time_column"):
        if getattr(cfg.data, key):
            raise UserError(f"data.{key}: it fixes the validation rows; cv chooses them fold by fold (leave it out)")


def fold_rows(cfg: Config, frame, base, folds: int, said: str | None = None) -> list[np.ndarray]:
    """The non-test rows cut into `folds` validation sets: whole groups, else stratified by class, else at
    random; seeded by the split's seed. said: how a refusal names the setting (default --folds K)."""
    rest = np.sort(np.concatenate([base.train, base.val]))
    seed = cfg.data.split_seed if cfg.data.split_seed is not None else cfg.seed
    name = said or f"--folds {folds}"
    if len(rest) < folds:
        raise UserError(f"{name}: the {len(rest)} non-test rows cannot make {folds} folds")
    if cfg.data.group:
        vals = _group_folds(frame[cfg.data.group].to_numpy()[rest], folds, name)
    elif base.task != "regression":
        if np.all(np.unique(base.y[rest], return_counts=True)[1] < folds):
            raise UserError(f"{name}: every class has fewer non-test rows than the {folds} folds")
        vals = stratified_folds(base.y[rest], folds, seed)
    else:
        vals = shuffled_folds(len(rest), folds, seed)
    vals = [rest[val] for val in vals]
    if base.task != "regression":
        _every_class_trains(base, rest, vals, "train.bag" if said else "--folds")
    return vals


def _group_folds(groups: np.ndarray, folds: int, name: str) -> list[np.ndarray]:
    """scikit-learn's GroupKFold: each group whole in one fold (imported here only: 1.7 s)."""
    from sklearn.model_selection import GroupKFold

    try:
        return [np.sort(val) for _, val in GroupKFold(n_splits=folds).split(groups, groups=groups)]
    except ValueError as e:  # fewer groups than folds
        raise UserError(f"{name}: {e}") from None


def _every_class_trains(base, rest: np.ndarray, vals: list[np.ndarray], key: str) -> None:
    """Each fold's training rows (the other folds') hold every class, else that fold could not learn it."""
    classes = base.prep["classes"]
    for k, val in enumerate(vals, start=1):
        present = set(np.unique(base.y[np.setdiff1d(rest, val)]).tolist())
        missing = [c for c in range(len(classes)) if c not in present]
        if missing:
            count = int((base.y[rest] == missing[0]).sum())
            fix = f"use fewer folds ({key}), or add rows of that class" if count > 1 else "add rows of that class"
            raise UserError(
                f"column {quoted(base.prep['target'])} (the target): class {quoted(classes[missing[0]])} has {count} "
                f"row(s) outside the test split, all in fold {k}'s validation rows, so fold {k} has none to train "
                f"on; {fix} (or leave its rows out)"
            )


def _report(monitor: str, results: list, root: Path) -> dict:
    """Per fold: its run, best epoch, validation metrics at that epoch and test metrics; then mean and std."""
    import pandas as pd

    rows = []
    for k, r in enumerate(results, start=1):
        if isinstance(r, Diverged):
            rows.append({"fold": k, "run_dir": str(Path(r.run_dir).resolve()), "diverged": str(r)})
            continue
        metrics = pd.read_csv(Path(r["run_dir"]) / "metrics.csv")
        at_best = metrics[metrics["epoch"] == r["best_epoch"]].iloc[0]
        val = {c.removeprefix("val_"): float(at_best[c]) for c in metrics.columns if c.startswith("val_")}
        run_dir = str(Path(r["run_dir"]).resolve())
        rows.append({"fold": k, "run_dir": run_dir, "best_epoch": r["best_epoch"], "val": val, "test": r["test"]})
    done = [r for r in rows if "diverged" not in r]
    summary = {}
    for part in ("val", "test"):
        names = done[0][part].keys() if done else []
        values = {n: np.array([r[part][n] for r in done], dtype=float) for n in names}
        summary[part] = {n: _spread(v) for n, v in values.items()}
    task = results and next((r["task"] for r in results if isinstance(r, dict)), None)
    return {
        "folds": rows,
        "summary": summary,
        "headline": M.headline(task or "multiclass"),
        "monitor": monitor,
        "root": str(root),
    }


def _spread(v: np.ndarray) -> dict:
    """Mean and std over the folds where the metric is defined (r2 is not where a fold's target is constant);
    "folds" counts those when some are not; none: missing (null)."""
    kept = v[np.isfinite(v)]
    if not len(kept):
        return {"mean": float("nan"), "std": float("nan")}
    out = {"mean": float(kept.mean()), "std": float(kept.std(ddof=1)) if len(kept) > 1 else 0.0}
    return out if len(kept) == len(v) else {**out, "folds": len(kept)}


def read_cv(folder: Path, finished: bool = True) -> dict:
    """cv.json; `finished`: refused while its cross-validation is still to finish (interrupted)."""
    path = folder / CV_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a cross-validation folder (no cv.json)")
    report = json.loads(path.read_text())
    if finished and report.get("status") == "running":
        raise UserError(
            f"{folder}: its cross-validation did not finish (stopped before every fold had trained); finish it "
            f"with: nntrain cv --resume {folder}"
        )
    return report


def cv_config(folder: Path, report: dict) -> Config:
    """The config the folds trained with (the first fold's: they differ in their rows only), named and placed as
    the cross-validation was given it: NAME (of NAME-cv, or NAME-cv-2 beside another) under the cv folder's."""
    cfg = load_config(folder / Path(report["folds"][0]["run_dir"]).name / "config.yaml")
    cfg.name, cfg.runs_dir = re.sub(r"-cv(-\d+)?$", "", folder.name), str(folder.parent)
    return cfg
