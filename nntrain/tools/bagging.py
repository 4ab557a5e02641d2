"""A cross-fitted bag (train.bag: K), the protocol of TabArena: the non-test rows are cut into K folds as
`nntrain cv` cuts them; member k trains on the other folds and is early-stopped and best-epoch-chosen on fold
k. The preprocessing is fitted once on every non-test row (as AutoGluon's bags do), so the members share one
matrix and train as one on the stacked engine (their training rows cut to one length: at most a row each).

Every non-test row gets an out-of-fold prediction from the one member that never trained on it (oof.csv);
their metrics are the bag's validation score. eval, predict and export average the members' class
probabilities (or predictions). The bag's folder holds bag.json (its plan, written before any member trains),
summary.json and oof.csv, and a run folder per member (memberK), each a normal run.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nntrain import metrics as M
from nntrain.config.schema import Config
from nntrain.data.prepare import Prepared, check_against, infer_task, prepare, spelled, stamped
from nntrain.data.table_source import recorded
from nntrain.data.tables import Table, read_options, read_table, read_tables
from nntrain.engine.stopping import Diverged, Interrupted
from nntrain.errors import UserError
from nntrain.model.calibration import calibrated, fit_temperature
from nntrain.model.heads import truth
from nntrain.runs.files import write_json, write_run_file, write_text
from nntrain.runs.folders import create_run_dir
from nntrain.tools.bag_inference import BAG_FILE, bag_scores, mean_metrics, read_plan
from nntrain.tools.crossval import fold_rows
from nntrain.tools.inference import labels_of, load_run, prediction_columns, scores_of
from nntrain.tools.linear_path import blend_weight, fit_linear, linear_scores

OOF_FILE = "oof.csv"
BAG_KEYS = ("train.bag", "train.linear", "train.plots")  # the bag's own (folds, linear model, plots), not a member's


# train.bag auto: this many members from AUTO_MIN_ROWS to AUTO_MAX_ROWS non-test rows, each class (of a target
# with at most AUTO_MAX_CLASSES values) with a row for each fold. The fewer the rows, the more a bag gains: on 15
# R tables of 44-120 rows (seeds 0-2) one model scored 0.410 on average, a bag 0.543 (its folds' stops, and the
# linear model beside it); so a table bags from 4 rows a fold. On 3 tables whose rarest class has 5-9 rows
# (fgl, Cars93, mtcars' gear) one model scored 0.684, a bag 0.817: the folds are stratified, so a class of 2 or
# more non-test rows trains in every member (the test split takes a fifth of a class, never its last row).
AUTO_MEMBERS, AUTO_MIN_ROWS, AUTO_MAX_ROWS, AUTO_MAX_CLASSES = 5, 20, 10_000, 50


def is_bag(folder: Path) -> bool:
    return (Path(folder) / BAG_FILE).is_file()


def fit_bag(cfg: Config, config_dir: Path | None, log: Callable[[str], None], quiet: bool = True) -> dict:
    """Train the bag of cfg.train.bag members under RUNS_DIR/NAME; its summary (also summary.json there)."""
    from nntrain.engine.run_groups import fit_many

    k = cfg.train.bag
    check_bag(cfg)
    t0 = time.perf_counter()
    tables = read_tables(cfg.data, config_dir)
    whole = _whole(cfg, tables)
    folds = fold_rows(cfg, tables[0].frame, whole, k, f"train.bag={k}")
    cfgs, data = members(cfg, whole, folds)  # every member checked before the bag's folder is made
    root = create_run_dir(cfg.runs_dir, cfg.name)
    begun: list = []  # told by fit_many once every member has its folder
    try:
        _write_plan(root, cfg, config_dir, cfgs, folds, whole.test)
        log(
            f"bag: {k} members, each early-stopped on its own fold of the {sum(map(len, folds)):,} non-test rows "
            f"(preprocessing fitted on them all); test split {len(whole.test):,} rows; {root}"
        )
        results = fit_many(cfgs, config_dir, log, quiet, data=data, started=begun.extend)
    except BaseException as e:
        if not begun:  # refused, or stopped, before every member started (fit_many removed theirs): no bag left
            shutil.rmtree(root, ignore_errors=True)
            if isinstance(e, Interrupted):  # "before a run folder was made; nothing to resume"
                raise Interrupted(e.signum) from None
            raise
        if isinstance(e, Interrupted):  # each member saved its last.pt: the bag resumes as one
            raise Interrupted(e.signum, root, e.epoch, e.step) from None
        raise
    return finish_bag(root, cfg, results, time.perf_counter() - t0, log, (whole, tables[0]))


def _write_plan(
    root: Path, cfg: Config, config_dir: Path | None, cfgs: list[Config], folds: list[np.ndarray], test: np.ndarray
) -> None:
    """The bag's config.yaml, bag.json (its members, folds and test rows) and split.json; members go under root."""
    for member in cfgs:
        member.runs_dir = str(root)
    plan = {"members": [c.name for c in cfgs], "folds": [f.tolist() for f in folds], "test": test.tolist()}
    write_text(root / "config.yaml", recorded(cfg, config_dir))  # first: a folder with bag.json has its config
    write_json(root / BAG_FILE, plan)
    rest = np.sort(np.concatenate(folds)).tolist()  # what every tool reads of a run's split: the bag trained on these
    write_json(root / "split.json", {"train": rest, "val": [], "test": plan["test"], "bag": len(cfgs)})


def auto_bag(cfg: Config, config_dir: Path | None, tracked: bool, frame: pd.DataFrame | None = None) -> None:
    """train.bag auto -> a number, in place and said in a note: AUTO_MEMBERS up to AUTO_MAX_ROWS non-test rows
    (above, a bag's time grows past a default's and one model is as good), else one model, as also where a bag
    cannot train (the reason is said). `frame`: the DataFrame that stands for data.path."""
    if cfg.train.bag != "auto":
        return
    why = _no_bag(cfg, tracked)
    if why is None:
        why = _too_big_or_small(
            cfg,
            frame if frame is not None else read_table(cfg.data.path, config_dir, options=read_options(cfg.data)).frame,
        )
    cfg.train.bag = 1 if why else AUTO_MEMBERS
    said = f"one model: {why}" if why else f"a bag of {AUTO_MEMBERS} members (up to {AUTO_MAX_ROWS:,} non-test rows)"
    cfg._notes.append(f"train.bag auto: {said}")


def _too_big_or_small(cfg: Config, frame: pd.DataFrame) -> str | None:
    """Why data.path's rows call for one model (too many non-test rows, or too few for the folds), or None."""
    rows = len(frame) if cfg.data.test_path else round(len(frame) * (1 - cfg.data.test_size))
    if rows > AUTO_MAX_ROWS:
        return f"{rows:,} non-test rows (bags up to {AUTO_MAX_ROWS:,})"
    if rows < AUTO_MIN_ROWS:
        return f"{rows:,} non-test rows, too few for {AUTO_MEMBERS} folds (bags from {AUTO_MIN_ROWS})"
    target = frame.get(spelled(cfg.data.target, list(frame.columns))) if cfg.data.target else None
    if target is None or _regression(target, cfg.data.task):
        return None
    counts = target.value_counts()
    rarest = int(counts.min()) if len(counts) else 0
    if len(counts) <= AUTO_MAX_CLASSES and rarest < AUTO_MEMBERS:
        return f"the rarest class of {cfg.data.target!r} has {rarest} row(s), too few for {AUTO_MEMBERS} folds"
    return None


def _regression(target: pd.Series, asked: str) -> bool:
    """Whether the fit will read `target` as a quantity (its values are no classes, however often they repeat)."""
    try:
        return infer_task(target, asked)[0] == "regression"
    except UserError:  # a target that cannot train: the fit says why
        return False


def _no_bag(cfg: Config, tracked: bool) -> str | None:
    """Why a bag cannot train this config, or None."""
    from nntrain.engine.distributed import launched

    if launched():
        return "a bag trains in one process, its members stacked (no --nproc)"
    for key in ("split_column", "val_path", "time_column"):
        if getattr(cfg.data, key):
            return f"data.{key} fixes the validation rows, while a bag chooses them fold by fold"
    if cfg.model.ensemble > 1:
        return f"model.ensemble={cfg.model.ensemble} is an ensemble already (choose it or a bag)"
    if cfg.train.compile:
        return "a bag's members train stacked, without train.compile"
    return "TensorBoard and MLflow log one model" if tracked else None


def check_bag(cfg: Config) -> None:
    why = _no_bag(cfg, False)
    if why is not None:
        raise UserError(f"train.bag={cfg.train.bag}: {why}; train.bag=1 trains one model")


def _whole(cfg: Config, tables: tuple) -> Prepared:
    """The table prepared with the preprocessing fitted on every non-test row: the test split is the one a lone
    fit of the config would hold out, and no validation split (each member takes its fold)."""
    table, given, _ = tables
    data = stamped(prepare(table, cfg.data, cfg.seed, {**given, "val": np.array([], dtype=np.int64)}), cfg, tables)
    data.prep["split"] = "bagged: fold k of the non-test rows validates member k"
    data.notes = [n for n in data.notes if not n.startswith("split ")]  # the split is said by fit_bag
    return data


def members(cfg: Config, whole: Prepared, folds: list[np.ndarray]) -> tuple[list[Config], list]:
    """Each member's config (a lone run's: no bag) and data: the whole matrix, its training rows (the other
    folds, cut to one length so the members stack) and its fold as validation."""
    rest = np.concatenate(folds)
    trains = [np.setdiff1d(rest, f) for f in folds]
    keep = min(map(len, trains))
    rng = np.random.default_rng(cfg.seed)
    cfgs, data = [], []
    for k, (fold, train) in enumerate(zip(folds, trains), start=1):
        if len(train) > keep and len(train) - keep <= len(folds):  # a row or two: one length for the stack
            train = np.sort(rng.choice(train, keep, replace=False))
        member = copy.deepcopy(cfg)
        member.name, member.train.bag, member._bag = f"member{k}", 0, len(folds)
        member.train.plots = False  # a member's curves: its metrics.csv (a plot each would cost a second apiece)
        prep = {**whole.prep, "split": f"bag member {k} of {len(folds)}: fold {k} validates, the other folds train"}
        one = dataclasses.replace(whole, train=train, val=fold, prep=prep, notes=list(whole.notes))
        check_against(member, one)
        cfgs.append(member)
        data.append(one)
    return cfgs, data


def finish_bag(
    root: Path, cfg: Config, results: list, seconds: float, log: Callable[[str], None], whole: tuple | None = None
) -> dict:
    """The out-of-fold predictions (oof.csv) and their metrics, the test metrics, the linear model beside the
    members (train.linear) with its weight, summary.json. `whole`: (the bag's Prepared matrix, the Table it
    encodes) while they are in memory (a fit), else the table is read and encoded again (a resume)."""
    from nntrain.data.encoding import encode_table
    from nntrain.data.reread import load_table

    plan = read_plan(root)
    done = [k for k, r in enumerate(results) if not isinstance(r, Diverged)]
    if not done:
        raise UserError(f"{root}: every member of the bag diverged; see each member's message above")
    loaded = [load_run(root / plan["members"][k]) for k in done]
    prep = loaded[0].prep
    table = whole[1] if whole is not None else load_table(prep)
    e = whole[0] if whole is not None else encode_table(table, prep, prep["source"], every_row=True)
    folds = [np.asarray(f, dtype=np.int64) for f in plan["folds"]]
    rows = np.concatenate([folds[k] for k in done])
    y, w = e.y[rows], None if e.weights is None else e.weights[rows]
    raw, scores = _out_of_fold(cfg, plan, loaded, e, folds, done)
    write_json(root / BAG_FILE, plan)
    fold = np.concatenate([np.full(len(folds[k]), k + 1) for k in done])
    order = np.argsort(rows)
    oof = pd.DataFrame(
        {"row": rows[order], "fold": fold[order], "target": _targets(prep, table, rows[order], y[order])}
    )
    oof = pd.concat([oof, prediction_columns(prep, scores[order])], axis=1)
    summary = {"val": mean_metrics(prep, y, scores, w), "task": prep["task"]}
    notes = M.r2_notes(prep["task"], truth(prep, y), w, "the out-of-fold rows")
    summary.update(
        status="completed" if len(loaded) == len(results) else "diverged",
        bag=len(results),
        members=[str(root / n) for n in plan["members"]],
        best_epoch=[r["best_epoch"] if isinstance(r, dict) else None for r in results],
        seconds=round(seconds, 2),
        monitor=M.monitor_name(cfg.train.monitor),
        run_dir=str(root),
    )
    summary["best_value"] = summary["val"].get(summary["monitor"].removeprefix("val_"))
    if "linear" in plan:
        summary["linear_weight"] = plan["linear"]["weight"]
    if "temperature" in plan:
        summary["temperature"] = plan["temperature"]
    test = np.asarray(plan["test"], dtype=np.int64)
    test_scores = bag_scores(plan, loaded, e.X[test])[0] if len(test) else None
    if test_scores is not None:
        w_test = None if e.weights is None else e.weights[test]
        summary["test"] = mean_metrics(prep, e.y[test], test_scores, w_test)
        summary["test_baseline"] = M.baseline(prep["task"], truth(prep, e.y[test]), prep, w_test)
        notes += M.r2_notes(prep["task"], truth(prep, e.y[test]), w_test, "the test split")
    write_run_file(root / OOF_FILE, oof.to_csv(index=False).encode())
    write_json(root / "summary.json", summary)
    _said(summary, plan, len(loaded), root / OOF_FILE, log, notes)
    if cfg.train.plots:
        held_out = None if prep["task"] == "regression" else (raw, scores, y)
        _plots(root, loaded, None if test_scores is None else truth(prep, e.y[test]), test_scores, held_out, log)
    return summary


def _targets(prep: dict, table: Table, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """oof.csv's targets: the classes' labels, or a regression's values as the table holds them (y, float32 and
    standardized, comes back off in the 8th digit: 1234567.89 as 1234567.8899...)."""
    from nntrain.data.encoding import target_numbers, target_values

    if prep["task"] != "regression":
        return labels_of(prep, truth(prep, y))
    return target_numbers(target_values(table.frame.iloc[rows], prep), prep, table.header_line)


def _said(summary: dict, plan: dict, n: int, oof: Path, log: Callable[[str], None], notes: list[str]) -> None:
    """The bag's line: its out-of-fold and test headline metric; then why one is missing (r2 of a constant
    target)."""
    name = M.headline(summary["task"])
    base = summary.get("test_baseline", {}).get(name)
    shown = f"; test {name} {M.shown(summary['test'][name])}" if "test" in summary else ""
    shown += f", baseline {M.shown(base)}" if shown and base is not None else ""
    linear = _share(plan["linear"]["weight"]) if "linear" in plan else ""
    log(f"bag of {n}{linear}: out-of-fold {name} {M.shown(summary['val'][name])}{shown} ({oof})")
    if "test" in summary and (worse := M.no_better(summary["test"], summary.get("test_baseline", {}))):
        log(worse)
    for note in notes:
        log(f"note: {note}")


def _share(weight: float) -> str:
    """How much of the bag's prediction is its linear model's; at 1 the networks have none of it."""
    alone = ": the linear model alone, the networks did not lower its out-of-fold loss" if weight >= 1 else ""
    return f" (a linear model's share: {weight:.2f}{alone})"


def _out_of_fold(cfg: Config, plan: dict, loaded: list, e, folds: list, done: list) -> tuple:
    """(the out-of-fold scores as trained, and calibrated): the members' on their own folds, mixed with the linear
    model (train.linear: fitted here, its weight chosen on them), then a classifier's temperature fitted on them;
    plan gets both."""
    prep = loaded[0].prep
    rows = np.concatenate([folds[k] for k in done])
    y, w = e.y[rows], None if e.weights is None else e.weights[rows]
    scores = np.concatenate([scores_of(run, e.X[folds[k]]) for run, k in zip(loaded, done)])
    plan.pop("linear", None)
    plan.pop("temperature", None)
    if cfg.train.linear:
        plan["linear"] = fit_linear(prep, e.X, e.y, e.weights, folds)
        lin = np.concatenate([linear_scores(plan["linear"], prep, e.X[folds[k]], model=k) for k in done])
        share = plan["linear"]["weight"] = blend_weight(prep, y, scores, lin, w)
        scores = (1 - share) * scores + share * lin  # each row's linear score from the fold model that left it out
    if prep["task"] == "regression":
        return scores, scores
    plan["temperature"] = fit_temperature(scores, y, w)  # oof.csv holds them calibrated
    return scores, calibrated(scores, plan["temperature"])


def _plots(root: Path, loaded: list, y_test, test_scores, held_out, log: Callable[[str], None]) -> None:
    """curves.png (every member's validation curves on shared axes), the test split's prediction plots and, for
    a classifier, calibration.png: the out-of-fold rows' reliability before and after the temperature."""
    from nntrain.runs.plots import compare_plot, prediction_plots, reliability_png

    prep = loaded[0].prep
    try:
        curves = {run.run_dir.name: pd.read_csv(run.run_dir / "metrics.csv") for run in loaded}
        each = f"{root.name}: each member on its own validation fold"
        written = [compare_plot(curves, root / "curves.png", M.headline(prep["task"]), each)]
        if y_test is not None:
            written += prediction_plots(root, prep["task"], y_test, test_scores, prep.get("classes"))
        if held_out is not None:
            raw, tempered, y = held_out
            curves = {"out-of-fold, as trained": (raw, y), "out-of-fold, calibrated": (tempered, y)}
            shown = f"{root.name}: the out-of-fold rows, {len(y):,}"
            written.append(reliability_png(curves, root / "calibration.png", shown))
        log(f"plots: {', '.join(p.name for p in written)} in {root}")
    except OSError as e:  # the bag is whole without them
        log(f"warning: the plots were not written: {e.strerror or e}; the bag's folder is complete otherwise")
