"""k-fold cross-validation: the run's test split stays aside; its other rows are cut into k folds
(stratified by class, or whole groups with data.group), and fold k is the validation split of run foldK
(preprocessing fitted on the other folds). The runs train together on the stacked engine where they can;
cv.json holds each fold's validation metrics (at its best epoch) and test metrics, with mean and spread.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nntrain import metrics as M
from nntrain.config.schema import Config
from nntrain.data.prepare import prepared
from nntrain.data.tables import read_tables
from nntrain.engine.run_groups import fit_many
from nntrain.engine.stopping import Diverged
from nntrain.errors import UserError
from nntrain.runs.files import write_json
from nntrain.runs.folders import create_run_dir

MAX_FOLDS = 20


def cross_validate(
    cfg: Config, config_dir: Path | None, folds: int, log: Callable[[str], None], quiet: bool = True
) -> dict:
    """Train a run per fold under RUNS_DIR/NAME-cv/ and write cv.json there; its contents."""
    _check(cfg, folds)
    tables = read_tables(cfg.data, config_dir)  # read once; each fold prepares it with its own rows
    base = prepared(cfg, tables)
    vals = fold_rows(cfg, tables[0].frame, base, folds)
    root = create_run_dir(cfg.runs_dir, f"{cfg.name}-cv")
    cfgs, data = [], []
    for k, val in enumerate(vals, start=1):
        fold = copy.deepcopy(cfg)
        fold.name, fold.runs_dir = f"fold{k}", str(root)
        one = prepared(fold, tables, rows={"val": val, "test": base.test})
        one.prep["split"] = f"fold {k} of {folds} as validation, the run's test split as test"
        one.notes = [n for n in one.notes if not n.startswith("split ")]
        cfgs.append(fold)
        data.append(one)
    log(f"{folds} folds of {sum(map(len, vals)):,} rows ({base.prep['split']}); test split {len(base.test):,} rows")
    results = fit_many(cfgs, config_dir, log, quiet, data=data)
    report = _report(cfg, results, root)
    write_json(root / "cv.json", report)
    return report


def _check(cfg: Config, folds: int) -> None:
    if not 2 <= folds <= MAX_FOLDS:
        raise UserError(f"--folds {folds}: give 2 to {MAX_FOLDS}")
    for key in ("split_column", "val_path", "time_column"):
        if getattr(cfg.data, key):
            raise UserError(f"data.{key}: it fixes the validation rows; cv chooses them fold by fold (leave it out)")


def fold_rows(cfg: Config, frame, base, folds: int) -> list[np.ndarray]:
    """The non-test rows cut into `folds` validation sets: whole groups, else stratified by class, else at
    random; seeded by the split's seed."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    rest = np.sort(np.concatenate([base.train, base.val]))
    seed = cfg.data.split_seed if cfg.data.split_seed is not None else cfg.seed
    try:
        if cfg.data.group:
            groups = frame[cfg.data.group].to_numpy()[rest]
            cuts = GroupKFold(n_splits=folds).split(rest, groups=groups)
        elif base.task != "regression":
            cuts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(rest, base.y[rest])
        else:
            cuts = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rest)
        return [np.sort(rest[val]) for _, val in cuts]
    except ValueError as e:  # fewer groups or rows than folds
        raise UserError(f"--folds {folds}: {e}") from None


def _report(cfg: Config, results: list, root: Path) -> dict:
    """Per fold: its run, best epoch, validation metrics at that epoch and test metrics; then mean and std."""
    import pandas as pd

    rows = []
    for k, r in enumerate(results, start=1):
        if isinstance(r, Diverged):
            rows.append({"fold": k, "run_dir": str(r.run_dir), "diverged": str(r)})
            continue
        metrics = pd.read_csv(Path(r["run_dir"]) / "metrics.csv")
        at_best = metrics[metrics["epoch"] == r["best_epoch"]].iloc[0]
        val = {c.removeprefix("val_"): float(at_best[c]) for c in metrics.columns if c.startswith("val_")}
        rows.append({"fold": k, "run_dir": r["run_dir"], "best_epoch": r["best_epoch"], "val": val, "test": r["test"]})
    done = [r for r in rows if "diverged" not in r]
    summary = {}
    for part in ("val", "test"):
        names = done[0][part].keys() if done else []
        values = {n: np.array([r[part][n] for r in done]) for n in names}
        summary[part] = {n: _spread(v) for n, v in values.items()}
    task = results and next((r["task"] for r in results if isinstance(r, dict)), None)
    return {
        "folds": rows,
        "summary": summary,
        "headline": M.headline(task or "multiclass"),
        "monitor": M.monitor_name(cfg.train.monitor),
        "root": str(root),
    }


def _spread(v: np.ndarray) -> dict:
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def read_cv(folder: Path) -> dict:
    path = folder / "cv.json"
    if not path.is_file():
        raise UserError(f"{folder}: not a cross-validation folder (no cv.json)")
    return json.loads(path.read_text())
