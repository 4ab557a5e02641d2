"""nntrain cv: folds of the non-test rows, a run per fold, cv.json's mean and spread, predictions averaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nntrain

from .conftest import make_table, write_config


def splits(run_dir) -> dict:
    return json.loads((run_dir / "split.json").read_text())


def test_folds_cover_the_non_test_rows_once_and_report_mean_and_spread(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=150), train={"epochs": 3, "batch_size": 16})
    r = cli("cv", config, "--folds", "3", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    root = workdir / "runs" / "t-cv"
    assert report["root"] == str(root.relative_to(workdir)) and (root / "cv.json").is_file()
    parts = [splits(root / f"fold{k}") for k in (1, 2, 3)]
    assert cli("fit", config).exit_code == 0  # a plain fit of the same config: the same test rows
    assert all(p["test"] == splits(workdir / "runs" / "t")["test"] for p in parts)
    vals = [set(p["val"]) for p in parts]
    rest = set(parts[0]["train"]) | vals[0]
    assert set().union(*vals) == rest and sum(map(len, vals)) == len(rest) == 120  # each row validates once
    y = pd.read_csv(workdir / "t.csv")["y"].to_numpy()
    counts = np.array([np.bincount(y[sorted(v)], minlength=3) for v in vals])
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()  # stratified
    tests = np.array([f["test"]["accuracy"] for f in report["folds"]])
    assert report["summary"]["test"]["accuracy"]["mean"] == pytest.approx(tests.mean())
    assert report["summary"]["test"]["accuracy"]["std"] == pytest.approx(tests.std(ddof=1))
    r = cli("cv", config, "--folds", "3")
    assert "3-fold cross-validation" in r.stdout and "mean" in r.stdout and "std" in r.stdout


def test_a_cv_folders_config_is_the_one_its_folds_trained_with(workdir, table_csv):
    """Folds.config (as Run.config for a run) was an AttributeError: the config the folds trained with, named and
    placed as the cross-validation was given it (a fold's own is fold1 under the cv folder)."""
    config = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 2}, model={"hidden": [6]})
    for root in ("t-cv", "t-cv-2"):
        folds = nntrain.cv(config, ["optimizer.lr=0.02"], folds=2, log=None)
        assert folds.run_dir.name == root
        for cfg in (folds.config, nntrain.load(folds.run_dir).config):
            assert (cfg.name, cfg.runs_dir, cfg.train.epochs, cfg.optimizer["lr"]) == ("t", "runs", 2, 0.02)
            assert cfg.model.hidden == [6] and cfg.sweep is None
            fold = folds.runs[1].config
            assert cfg.model_dump(exclude={"name", "runs_dir"}) == fold.model_dump(exclude={"name", "runs_dir"})


def test_predict_on_the_cv_folder_averages_the_folds(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=150))
    folds = nntrain.cv(config, folds=2, log=None)
    rows = make_table(10, seed=3).drop(columns="y")
    each = [run.predict(rows).filter(like="proba_") for run in folds.runs]
    averaged = folds.predict(rows)
    assert np.allclose(averaged.filter(like="proba_"), (each[0] + each[1]) / 2)
    labels = np.array(folds.runs[0].classes)[averaged.filter(like="proba_").to_numpy().argmax(axis=1)]
    assert list(averaged["prediction"]) == list(labels)
    wide = folds.in_float64().predict(rows)  # as Run.in_float64 and Bag.in_float64 (was an AttributeError)
    assert all(next(run._loaded.model.parameters()).dtype == torch.float64 for run in folds.runs)
    assert np.allclose(wide.filter(like="proba_"), averaged.filter(like="proba_"), atol=1e-5)
    rows.to_csv(workdir / "rows.csv", index=False)
    r = cli("predict", folds.run_dir, "rows.csv")
    assert r.exit_code == 0 and np.allclose(
        pd.read_csv(pd.io.common.StringIO(r.stdout)).filter(like="proba_"), averaged.filter(like="proba_")
    )
    r = cli("eval", folds.run_dir)
    assert r.exit_code == 2 and "a cross-validation folder: give one of its runs" in r.stderr


def test_groups_stay_in_one_fold_and_bad_settings_are_refused(workdir, cli):
    df = make_table(160)
    df["shop"] = np.arange(160) % 16
    df.to_csv(workdir / "g.csv", index=False)
    config = write_config(workdir / "c.yaml", workdir / "g.csv", data={"path": "g.csv", "group": "shop", "target": "y"})
    assert cli("cv", config, "--folds", "4").exit_code == 0
    shops = [set(df["shop"][splits(workdir / "runs/t-cv" / f"fold{k}")["val"]]) for k in range(1, 5)]
    assert all(not (a & b) for i, a in enumerate(shops) for b in shops[i + 1 :])
    r = cli("cv", config, "--folds", "1")
    assert r.exit_code == 2 and "--folds 1: give 2 to 20" in r.stderr
    r = cli("cv", config, "--folds", "30")
    assert r.exit_code == 2 and "--folds 30" in r.stderr
    df.assign(part=np.where(np.arange(160) < 120, "train", "test")).to_csv(workdir / "s.csv", index=False)
    split = write_config(
        workdir / "s.yaml", workdir / "s.csv", data={"path": "s.csv", "split_column": "part", "target": "y"}
    )
    r = cli("cv", split)
    assert r.exit_code == 2 and "data.split_column: it fixes the validation rows" in r.stderr


def test_an_interrupted_cv_is_finished_by_cv_resume_as_if_never_stopped(workdir, table_csv, cli, monkeypatch):
    """120 rows in 5 folds: training sizes 76 and 77, two stacked groups; a SIGINT during the first group. The
    message names one command; it trains the unfinished folds (the never-started ones too) and writes cv.json."""
    import signal

    from nntrain.engine.stopping import Interrupted

    config = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 6, "batch_size": 16})
    nntrain.cv(config, ["name=full"], folds=5, log=None)

    def stop_at_epoch_2(msg: str) -> None:
        if msg.startswith("epoch   2"):  # the first group's second epoch, lone or stacked
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted) as e:
        nntrain.cv(config, folds=5, log=stop_at_epoch_2, quiet=False)
    assert str(e.value).endswith("Resume with: nntrain cv --resume runs/t-cv") and "run(s) not yet trained" in str(
        e.value
    )
    rows = make_table(10, seed=3).drop(columns="y")
    rows.to_csv(workdir / "rows.csv", index=False)
    r = cli("predict", "runs/t-cv", "rows.csv")
    assert r.exit_code == 2 and "finish it with: nntrain cv --resume runs/t-cv" in r.stderr
    r = cli("cv", "--resume", "runs/t-cv")
    assert r.exit_code == 0, r.output
    done, full = (json.loads((workdir / "runs" / n / "cv.json").read_text()) for n in ("t-cv", "full-cv"))
    assert [(f["fold"], f["best_epoch"], f["val"]) for f in done["folds"]] == [
        (f["fold"], f["best_epoch"], f["val"]) for f in full["folds"]
    ]
    assert cli("predict", "runs/t-cv", "rows.csv").exit_code == 0
    r = cli("cv", "--resume", "runs/t-cv")
    assert r.exit_code == 2 and "nothing to resume" in r.stderr


def test_a_fold_resumed_alone_is_refused_as_cv_json_would_go_stale(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=90), train={"epochs": 2, "plots": False, "threads": 1})
    assert cli("cv", config, "--folds", "2").exit_code == 0
    root = workdir / "runs" / "t-cv"
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    r = cli("fit", "--resume", "runs/t-cv/fold1", "train.epochs=4")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "runs/t-cv/fold1: a fold of the cross-validation runs/t-cv" in r.stderr
    assert "nntrain cv --resume runs/t-cv" in r.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files  # nothing written


def test_predict_on_a_cv_whose_every_fold_diverged_says_no_fold_has_a_model(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=120, task="regression"))
    r = cli("cv", config, "optimizer.name=sgd", "optimizer.lr=1e30", "--folds", "2")
    assert r.exit_code == 3
    make_table(10, seed=3).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    r = cli("predict", "runs/t-cv", "rows.csv")
    assert r.exit_code == 2 and "every fold diverged" in r.stderr and "no fold has a model" in r.stderr
    with pytest.raises(nntrain.UserError if hasattr(nntrain, "UserError") else Exception, match="every fold diverged"):
        nntrain.load(workdir / "runs/t-cv").predict(make_table(5).drop(columns="y"))


@pytest.mark.parametrize("extra", [[], ["train.engine=fused", "model.batch_norm=true"]])
def test_a_refused_cv_leaves_no_folder_and_names_the_rare_class_and_folds(workdir, cli, extra):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 3)), columns=list("abc"))
    df["y"] = np.where(df.a > 0, "hi", "lo")
    if not extra:
        df.loc[0, "y"] = "rare"  # one row: in one fold's validation rows, so that fold cannot train it
    df.to_csv(workdir / "t.csv", index=False)
    config = write_config(workdir / "c.yaml", "t.csv", data={"path": "t.csv", "target": "y"})
    r = cli("cv", config, "--folds", "2", *extra)
    assert r.exit_code == 2 and "Traceback" not in r.output
    if not extra:
        assert "class 'rare'" in r.stderr and "add rows of that class" in r.stderr and "data.val_size" not in r.stderr
        assert "least populated" not in r.stderr
    assert not (workdir / "runs" / "t-cv").exists()


def test_a_cv_folder_predicts_from_another_working_folder(workdir, table_csv, monkeypatch):
    config = write_config(workdir / "c.yaml", table_csv(n=120))
    nntrain.cv(config, folds=2, log=None)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rows = make_table(5, seed=3).drop(columns="y")
    assert len(nntrain.load(workdir / "runs/t-cv").predict(rows)) == 5


def test_a_cv_folder_gives_cv_plus_intervals_and_sets_from_each_folds_held_out_rows(workdir, table_csv, cli):
    from nntrain.tools.conformal import cv_plus, lac_sets

    table = make_table(300, task="regression", seed=1)
    table["y"] += np.random.default_rng(0).normal(0, 2.0, len(table))  # noise: intervals of some width
    table.to_csv("r.csv", index=False)
    config = write_config(workdir / "c.yaml", "r.csv", data={"target": "y"}, train={"epochs": 30})
    folds = nntrain.cv(config, folds=3, log=None)
    rows = make_table(40, seed=5).drop(columns="y")
    out = folds.predict(rows, interval=0.8)
    preds = [run.predict(rows)["prediction"].to_numpy() for run in folds.runs]
    lower, upper = cv_plus(preds, [run.held_out()["residuals"] for run in folds.runs], 0.8)
    assert np.allclose(out["lower"], lower) and np.allclose(out["upper"], upper)
    assert (out["lower"] < out["prediction"]).all() and (out["prediction"] < out["upper"]).all()
    rows.to_csv("rows.csv", index=False)
    r = cli("predict", folds.run_dir, "rows.csv", "--interval", "0.8")
    assert r.exit_code == 0 and np.allclose(pd.read_csv(pd.io.common.StringIO(r.stdout))["upper"], upper)

    classes = write_config(workdir / "k.yaml", table_csv(n=300), train={"epochs": 20})
    folds = nntrain.cv(classes, folds=3, log=None)
    out = folds.predict(rows, sets=0.8)
    true = np.concatenate([run.held_out()["true_proba"] for run in folds.runs])
    members = lac_sets(out.filter(like="proba_").to_numpy(), true, 0.8)
    assert (out["set_size"].to_numpy() == members.sum(axis=1)).all() and len(true) == 240
    r = cli("predict", folds.run_dir, "rows.csv", "--interval", "0.8")
    assert r.exit_code == 2 and "--interval is for a regression" in r.stderr


def test_a_class_of_one_row_is_refused_with_a_fix_that_can_help(workdir, cli):
    """Fewer folds cannot give a one-row class training rows in every fold: the message does not offer them."""
    table = make_table(n=120)
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "y": "solo"}
    table.to_csv(workdir / "t.csv", index=False)
    r = cli("cv", write_config(workdir / "c.yaml", workdir / "t.csv"), "--folds", "2")
    assert r.exit_code == 2 and "class 'solo' has 1 row(s) outside the test split" in r.output
    assert "add rows of that class (or leave its rows out)" in r.output and "fewer folds" not in r.output


def test_cv_given_a_config_and_resume_says_to_give_one_not_both(workdir, table_csv, cli):
    """`nntrain cv c.yaml --resume runs/t-cv` said "give a CONFIG, or --resume ...", as if neither was given;
    nntrain.cv says "not both" and so does the command now; neither still asks for one."""
    cfg = write_config(workdir / "c.yaml", table_csv(n=60), train={"epochs": 1})
    r = cli("cv", str(cfg), "--resume", "runs/t-cv")
    assert r.exit_code == 2 and "give either CONFIG or --resume runs/t-cv" in r.stderr and "not both" in r.stderr
    r = cli("cv", "--resume", "runs/t-cv", "--target", "y")
    assert r.exit_code == 2 and "not both" in r.stderr
    r = cli("cv")
    assert r.exit_code == 2 and "give a CONFIG, or --resume RUNS/NAME-cv" in r.stderr
    assert not (workdir / "runs").exists()


def test_cv_takes_a_dataframe_as_fit_does_and_scores_it_as_its_csv_file(workdir):
    """nntrain.cv(config, data=frame) was a TypeError (no argument data), though fit and fit_seeds take one. It
    cross-validates the frame as the same table written to CSV: the same folds, epochs and metrics; the frame is
    stored once under runs/.data, named by every fold; a frame refused is refused as fit refuses it."""
    df = make_table(90, cat=True).round(3)  # CSV text that reads back as the same numbers
    df.to_csv(workdir / "t.csv", index=False)
    config = write_config(workdir / "c.yaml", "t.csv", train={"epochs": 2, "plots": False, "threads": 1})
    on_csv = nntrain.cv(config, ["name=csv"], folds=2, log=None)
    on_frame = nntrain.cv(config, ["name=frame", "data.path=elsewhere.csv"], data=df, folds=2, log=None)
    assert on_frame.run_dir.name == "frame-cv" and len(on_frame.summary["folds"]) == 2
    folds = [[(f["best_epoch"], f["val"], f["test"]) for f in r.summary["folds"]] for r in (on_csv, on_frame)]
    assert folds[0] == folds[1] and on_csv.summary["summary"] == on_frame.summary["summary"]
    (stored,) = (workdir / "runs" / ".data").glob("*.parquet")
    assert {Path(r.config.data.path).name for r in on_frame.runs} == {stored.name}
    for data, said in ((df.iloc[:0], "data: the DataFrame has no rows"), (5, "data: give a pandas DataFrame")):
        with pytest.raises(nntrain.UserError, match=f"^{said}"):
            nntrain.cv(config, ["name=refused"], data=data, folds=2, log=None)
    with pytest.raises(nntrain.UserError, match="^the DataFrame: no feature columns besides the target 'y'") as e:
        nntrain.cv(config, ["name=refused"], data=df[["y"]], folds=2, log=None)
    assert ".parquet" not in str(e.value)
    with pytest.raises(nntrain.UserError, match="not both"):
        nntrain.cv(None, data=df, resume=on_frame.run_dir, log=None)
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == [".data", "csv-cv", "frame-cv"]
    assert len(list((workdir / "runs" / ".data").iterdir())) == 1


def test_an_interrupted_cv_of_a_dataframe_keeps_it_for_cv_resume(workdir):
    """The stored frame of a cross-validation stopped by a signal stays (its folds name it, a folder down), so
    that the command the message names finishes it."""
    import signal

    from nntrain.engine.stopping import Interrupted

    df = make_table(90)
    config = write_config(workdir / "c.yaml", "t.csv", train={"epochs": 4, "plots": False, "threads": 1})

    def stop_at_epoch_2(msg: str) -> None:
        if msg.startswith("epoch   2"):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted, match="Resume with: nntrain cv --resume runs/t-cv"):
        nntrain.cv(config, data=df, folds=2, log=stop_at_epoch_2, quiet=False)
    assert len(list((workdir / "runs" / ".data").glob("*.parquet"))) == 1
    done = nntrain.cv(None, resume=workdir / "runs" / "t-cv", log=None)
    assert [f["best_epoch"] > 0 for f in done.summary["folds"]] == [True, True]
