"""The commands as a user runs them: output, files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from .conftest import NNTRAIN, make_table, metrics_rows, write_config


@pytest.fixture
def trained(workdir, table_csv, cli):
    """One small run, binary with string labels."""
    data = table_csv(task="binary", n=200)
    cfg = write_config(workdir / "c.yaml", data)
    result = cli("fit", cfg, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), cfg, data


def test_json_commands_print_why_they_stopped_on_stdout(workdir, table_csv, cli):
    """A script that reads --json's stdout finds the stop's status, exit code, message and keys, not nothing."""
    cfg = write_config(workdir / "c.yaml", table_csv(n=120, task="regression"))
    r = cli("fit", cfg, "train.epochs=abc", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == out["exit_code"] == 2 and out["status"] == "error" and "train.epochs=abc" in r.stderr
    assert [(p["key"], p["value"]) for p in out["problems"]] == [("train.epochs", "abc")]
    r = cli("fit", cfg, "optimizer.name=sgd", "optimizer.lr=1e30", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == out["exit_code"] == 3 and out["status"] == "diverged" and "diverged" in out["message"]
    r = cli("eval", "runs/none", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 2 and out["status"] == "error" and "runs/none" in out["message"]
    r = cli("eval", "runs/t")  # the diverged run: no best.pt, and why
    assert r.exit_code == 2 and "runs/t/best.pt: checkpoint not found: the run diverged before it saved one" in r.stderr
    r = cli("predict", cfg, cfg)
    assert r.exit_code == 2 and f"{cfg} is a file, not a run folder" in r.stderr


def test_fit_prints_what_a_learner_needs(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(n=200))
    r = cli("fit", cfg, "train.epochs=4")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "run folder: runs/t" in out
    assert "rows: train 144, val 16, test 40" in out
    assert "144 samples / batch 16 -> 9 iterations per epoch" in out
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 4
    assert "test metrics of best.pt" in out and "(baseline" in out
    assert "task: multiclass" in out


def test_fit_json_and_run_folder_contents(trained, workdir):
    summary, _, _ = trained
    assert set(summary) >= {"run_dir", "best_epoch", "monitor", "best_value", "test"}
    assert set(summary["test"]) == {"accuracy", "balanced_accuracy", "f1_macro", "loss", "roc_auc"}
    run = workdir / summary["run_dir"]
    assert {p.name for p in run.iterdir()} == {  # no .lock: the writer's flock file goes when the run ends
        "config.yaml",
        "metrics.csv",
        "best.pt",
        "last.pt",
        "summary.json",
        "split.json",
        "curves.png",
        "diagnostics.png",
        "confusion_matrix.png",
        "roc.png",
        "pr.png",
    }  # no calibration.png: 32 validation rows fit no temperature (test_calibration.py has one that does)
    assert "calibration" not in summary
    rows = metrics_rows(run)
    assert len(rows) == 3
    assert list(rows[0]) == [
        "epoch",
        "train_loss",
        "val_accuracy",
        "val_balanced_accuracy",
        "val_f1_macro",
        "val_loss",
        "val_roc_auc",
        "lr",
        "grad_norm.fc1",
        "grad_norm.out",
        "dead_frac.fc1",
        "seconds",
    ]
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["epoch"] == summary["best_epoch"]
    assert {"model", "optimizer", "scheduler", "epoch", "best_value", "rng", "config", "prep"} <= set(ckpt)
    assert ckpt["prep"]["classes"] == ["no", "yes"]
    assert summary["best_value"] == pytest.approx(min(float(r["val_loss"]) for r in rows), rel=1e-5)


def test_run_folders_are_never_overwritten(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), train={"epochs": 1})
    for _ in range(2):
        assert cli("fit", cfg).exit_code == 0
    assert cli("fit", cfg, "--name", "other").exit_code == 0
    assert sorted(p.name for p in (workdir / "runs").iterdir() if not p.name.startswith(".")) == ["other", "t", "t-2"]


def test_config_yaml_in_run_holds_the_overrides(workdir, table_csv, cli):
    import yaml

    cfg = write_config(workdir / "c.yaml", table_csv(), train={"epochs": 1})
    assert cli("fit", cfg, "optimizer.lr=0.005", "seed=3").exit_code == 0
    saved = yaml.safe_load((workdir / "runs/t/config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.005 and saved["seed"] == 3 and saved["data"]["scale"] == "standard"


def test_eval_repeats_the_test_metrics_of_fit(trained, cli):
    summary, _, _ = trained
    r = cli("eval", "--json")  # newest run under runs/
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["rows"] == 40
    for k, v in summary["test"].items():
        assert report["metrics"][k] == pytest.approx(v, rel=1e-6)
    assert report["baseline"]["roc_auc"] == 0.5
    assert cli("eval", summary["run_dir"], "--checkpoint", "last").exit_code == 0


def test_eval_on_another_file_and_human_output(trained, cli, workdir):
    summary, _, _ = trained
    other = workdir / "other.csv"
    make_table(task="binary", n=50, seed=9).to_csv(other, index=False)
    r = cli("eval", summary["run_dir"], "--data", other)
    assert r.exit_code == 0, r.stderr
    assert "50 rows" in r.stdout and "accuracy" in r.stdout and "baseline" in r.stdout


def test_r2_of_a_constant_target_is_missing_with_a_note_in_fit_eval_cv_and_bag(workdir, cli):
    """r2 over rows whose target is one value is undefined: null in the JSON, n/a in the tables, a note naming
    the rows; rmse and mae stay (was: r2 -1.7e30 from a variance of rounding error, and no word)."""
    make_table(120, task="regression").to_csv(workdir / "t.csv", index=False)
    const = make_table(20, task="regression", seed=3).assign(y=10.1)
    const.to_csv(workdir / "const.csv", index=False)
    data = {"path": "t.csv", "test_path": "const.csv"}
    cfg = write_config(workdir / "c.yaml", "t.csv", data=data, train={"epochs": 3, "plots": False, "threads": 1})
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.output
    assert "r2                n/a   (baseline n/a)" in r.stdout
    assert "note: the target is constant over the 20 rows of the test split (every one 10.1): r2 is undefined" in (
        r.stdout
    )
    summary = json.loads((workdir / "runs" / "t" / "summary.json").read_text())
    assert summary["test"]["r2"] is None and summary["test_baseline"]["r2"] is None
    assert summary["test"]["rmse"] > 0 and summary["test"]["mae"] > 0
    r = cli("eval", "runs/t", "--json")
    report = json.loads(r.stdout)
    assert report["metrics"]["r2"] is None and report["metrics"]["rmse"] == pytest.approx(summary["test"]["rmse"])
    assert report["notes"] == [
        "the target is constant over the 20 rows of the test split (every one 10.1): r2 is undefined there, shown "
        "as n/a (null in JSON)"
    ]
    make_table(30, task="regression", seed=4).assign(y=-2.5).to_csv(workdir / "other.csv", index=False)
    r = cli("eval", "runs/t", "--data", "other.csv")
    assert r.exit_code == 0 and "r2                n/a" in r.stdout and "rmse" in r.stdout
    assert "warning: the target is constant over the 30 rows of other.csv (every one -2.5)" in r.stderr
    r = cli("cv", cfg, "--folds", "2")
    mean = next(line for line in r.stdout.splitlines() if line.startswith("│ mean"))
    assert r.exit_code == 0 and mean.split("│")[5].strip() == "-" and "e+" not in r.stdout  # test r2: missing
    cv = json.loads((workdir / "runs" / "t-cv" / "cv.json").read_text())
    assert cv["summary"]["test"]["r2"] == {"mean": None, "std": None} and cv["summary"]["val"]["r2"]["mean"] > 0
    r = cli("fit", cfg, "train.bag=2", "name=b")
    assert r.exit_code == 0 and "test r2 n/a, baseline n/a" in r.stdout and "note: the target is constant" in r.stdout
    bag = json.loads((workdir / "runs" / "b" / "summary.json").read_text())
    assert bag["test"]["r2"] is None and bag["val"]["r2"] > 0


def test_a_model_no_better_than_the_baseline_is_said_so_in_fit_eval_and_bag(workdir, cli):
    """A table of 5% 'fraud' whose features say nothing: every row predicted 'ok', test accuracy 0.95 beside a
    baseline of 0.95, and nothing said; an output that reads as a success. Fit, eval and a bag's line now say it."""
    from nntrain.metrics import no_better

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    table.assign(y=np.where(np.arange(200) % 20 == 0, "fraud", "ok")).to_csv(workdir / "t.csv", index=False)
    tiny = ("--target", "y", "train.epochs=2", "train.plots=false", "train.threads=1")
    said = "warning: accuracy 0.9500 is no better than the baseline's 0.9500 (always the training split's"
    r = cli("fit", "t.csv", "train.bag=1", *tiny)
    assert r.exit_code == 0, r.output
    assert said in r.stdout
    assert said in cli("eval", "runs/t").stdout
    r = cli("fit", "t.csv", "train.bag=2", "name=b", *tiny)
    assert r.exit_code == 0 and said in r.stdout
    assert no_better({"accuracy": 0.96}, {"accuracy": 0.95}) is None and no_better({"loss": 1.0}, {}) is None
    assert no_better({"r2": -0.01, "mse": 2.0}, {"r2": -0.002, "mse": 1.9}) == (
        "warning: r2 -0.0100 is no better than the baseline's -0.0020 (always the training split's mean): "
        "the model has learned nothing a constant prediction lacks"
    )


def test_a_score_short_of_perfect_never_reads_as_a_perfect_one():
    """An accuracy or roc_auc of 0.99997 (one error in 30,000 test rows) printed 1.0000 in fit and eval, and 1 in
    runs and compare: a perfect score it is not. Such a value gets the digits that show it short of 1."""
    from nntrain.metrics import shown
    from nntrain.runs.listing import _apart

    assert [shown(v) for v in (0.99997, 0.9999999, 1.0, 0.98765, 0.99994)] == [
        "0.99997",
        "0.9999999",
        "1.0000",
        "0.9877",
        "0.9999",
    ]
    assert _apart([0.99997, 1.0, 0.5]) == ["0.99997", "1", "0.5"]


def test_metrics_of_a_target_in_small_units_print_in_significant_digits(workdir, cli):
    """rmse 3e-10 is not 0.0000 (was: every error metric of fit, eval and the epoch lines printed 0.0000)."""
    from nntrain.metrics import shown

    assert [shown(v) for v in (3.14159e-10, -2.5e-4, 0.0, 0.01234, 12.5, float("nan"))] == [
        "3.142e-10",
        "-0.00025",
        "0.0000",
        "0.0123",
        "12.5000",
        "n/a",
    ]
    make_table(120, task="regression").assign(y=lambda d: d["y"] * 1e-9).to_csv(workdir / "t.csv", index=False)
    cfg = write_config(workdir / "c.yaml", "t.csv", train={"epochs": 2, "plots": False, "threads": 1})
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.output
    summary = json.loads((workdir / "runs" / "t" / "summary.json").read_text())
    rmse = summary["test"]["rmse"]
    assert 0 < rmse < 1e-7 and f"  rmse              {rmse:.4g}   (baseline " in r.stdout and "0.0000" not in r.stdout
    r = cli("eval", "runs/t")
    assert f"  rmse              {rmse:.4g}   (baseline " in r.stdout and "0.0000" not in r.stdout


def test_a_cv_mean_leaves_out_the_folds_where_a_metric_is_undefined():
    from nntrain.tools.crossval import _spread

    assert _spread(np.array([0.5, np.nan, 0.7])) == {
        "mean": pytest.approx(0.6),
        "std": pytest.approx(0.1414, abs=1e-4),
        "folds": 2,
    }
    assert _spread(np.array([0.5, 0.7]))["mean"] == pytest.approx(0.6) and "folds" not in _spread(np.array([0.5]))


def test_eval_refuses_a_changed_data_file(trained, cli):
    summary, _, data = trained
    data.write_text(data.read_text() + "0,0,0,yes\n")
    r = cli("eval", summary["run_dir"])
    assert r.exit_code == 2 and "changed since the run was trained" in r.stderr


def test_predict_gives_original_labels_and_probabilities(trained, cli, workdir):
    summary, _, data = trained
    rows = pd.read_csv(data).drop(columns="y").head(5)
    rows.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", summary["run_dir"], workdir / "in.csv", "-o", workdir / "out.csv")
    assert r.exit_code == 0, r.stderr
    out = pd.read_csv(workdir / "out.csv")
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    assert set(out["prediction"]) <= {"yes", "no"}
    assert np.allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    assert (out["prediction"] == np.where(out["proba_yes"] > 0.5, "yes", "no")).all()


def test_a_bad_value_at_predict_and_eval_is_named_by_its_file_column_and_row(trained, cli, workdir):
    summary, _, data = trained
    rows = pd.read_csv(data).head(5)
    rows["a"] = rows["a"].astype(object)
    rows.loc[2, "a"] = "abc"
    rows.to_csv(workdir / "bad.csv", index=False)
    said = f"{workdir / 'bad.csv'}: column 'a': 'abc' at row 3 (line 4) is not a number"
    r = cli("predict", summary["run_dir"], workdir / "bad.csv", "-o", workdir / "out.csv")
    assert r.exit_code == 2 and said in r.stderr and "Traceback" not in r.output
    assert not (workdir / "out.csv").exists()
    e = cli("eval", summary["run_dir"], "--data", workdir / "bad.csv")
    assert e.exit_code == 2 and said in e.stderr


def test_predict_regression_in_target_units(workdir, table_csv, cli):
    data = table_csv(task="regression", n=300)
    cfg = write_config(workdir / "c.yaml", data, train={"epochs": 40}, loss="mse")
    assert cli("fit", cfg).exit_code == 0
    df = pd.read_csv(data)
    df.head(50).to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv")
    assert r.exit_code == 0, r.stderr
    pred = pd.read_csv(pd.io.common.StringIO(r.stdout))["prediction"]
    assert np.corrcoef(pred, df["y"].head(50))[0, 1] > 0.95
    assert abs(pred.mean() - df["y"].head(50).mean()) < 2.0


def test_params_from_config_and_run(repo, trained, cli):
    r = cli("params", repo / "configs/seed_model.yaml", "--json")
    assert r.exit_code == 0, r.stderr
    table = json.loads(r.stdout)
    assert table["total"] == 26 and table["trainable"] == 26
    assert [row["total"] for row in table["layers"]] == [12, 8, 6]
    summary, _, _ = trained
    r = cli("params", summary["run_dir"])
    assert r.exit_code == 0 and "total" in r.stdout and "trainable" in r.stdout


def test_params_in_a_narrow_terminal_wraps_and_cuts_no_shape(workdir, table_csv, cli, monkeypatch):
    """Under COLUMNS=60 the table's cells were cut ('256x…', 'NumEm…'): the shapes could not be read."""
    cfg = write_config(workdir / "c.yaml", table_csv(), model={"hidden": [256, 256], "numeric_embedding": "periodic"})
    monkeypatch.setenv("COLUMNS", "60")
    r = cli("params", cfg)
    assert r.exit_code == 0, r.stderr
    table = [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert "…" not in r.stdout and max(len(line) for line in table) <= 60 and len(table) > 6


def test_params_counts_batch_norm_buffers_apart(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), model={"hidden": [8], "batch_norm": True})
    table = json.loads(cli("params", cfg, "--json").stdout)
    bn = [row for row in table["layers"] if row["type"] == "BatchNorm1d"][0]
    assert (bn["weights"], bn["biases"], bn["buffers"]) == (8, 8, 16)
    assert table["total"] == (3 * 8 + 8) + 16 + (8 * 3 + 3)


def test_params_from_a_config_imports_no_torch_and_equals_the_trained_runs(repo, trained, workdir):
    """What `params CONFIG` prints without torch is what the run folder's real model holds."""
    import subprocess
    import sys

    summary, _, _ = trained
    config = Path(summary["run_dir"]) / "config.yaml"
    code = (
        "import sys, json\nfrom nntrain.cli import app\ntry:\n    app(['params', sys.argv[1], '--json'], "
        "standalone_mode=False)\nfinally:\n    print(json.dumps({'torch': 'torch' in sys.modules}), file=sys.stderr)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(config)], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stderr.strip().splitlines()[-1]) == {"torch": False}
    from_run = subprocess.run(
        [sys.executable, "-m", "nntrain", "params", summary["run_dir"], "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(r.stdout) == json.loads(from_run.stdout)


def test_params_checks_names_from_a_config_and_leaves_argument_values_to_fit(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), model={"activation": "relux"})
    r = cli("params", cfg)
    assert r.exit_code == 2 and "model.activation.name=relux: unknown activation (did you mean 'relu'" in r.stderr
    cfg = write_config(workdir / "c.yaml", table_csv(), optimizer={"name": "sgd", "lr": 0.1, "nesterov": True})
    assert cli("params", cfg).exit_code == 0
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "optimizer: sgd(lr=0.1, nesterov=True) is invalid: Nesterov momentum" in r.stderr


def test_a_class_weight_per_class_is_checked_against_the_targets_classes_before_a_run_folder(workdir, cli):
    cfg = write_config(workdir / "c.yaml", "t.csv", loss={"name": "cross_entropy", "weight": [1, 2]})
    make_table(n=90, task="multiclass").to_csv(workdir / "t.csv", index=False)
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "loss.weight=[1, 2]: 2 weights for the target's 3 classes: give one a class" in r.stderr
    assert "Traceback" not in r.stderr and not (workdir / "runs").exists()


def test_phone_params_match_the_reference_network(repo, cli):
    table = json.loads(cli("params", repo / "configs/phone.yaml", "--json").stdout)
    assert table["total"] == (20 * 64 + 64) + (64 * 128 + 128) + (128 * 4 + 4)


def test_seed_model_trains_from_a_fresh_clone(repo, workdir, cli):
    r = cli("fit", repo / "configs/seed_model.yaml", "train.epochs=2", "--json")
    assert r.exit_code == 0, r.stderr


# ---------------------------------------------------------------- bad input


def no_traceback(r):
    return "Traceback" not in r.stdout + r.stderr and (r.exception is None or isinstance(r.exception, SystemExit))


BAD_FILES = {
    "missing": (None, "file not found"),
    "empty": ("", "the file is empty"),
    "header_only": ("a,b,c,y\n", "no data rows"),
    "ragged": ("a,b,c,y\n1,2,3,0\n4,5,0\n7,8,9,1\n", "line 3 has 3 fields, the header has 4"),
    "long_row": ("a,b,c,y\n1,2,3,0\n4,5,6,0,9\n7,8,9,1\n", "rows of unequal length"),
    # no delimiter splits every line alike: read with commas, one column holding semicolons
    "delimiter": ("a;b;c;y\n1;2;3;0\n4;5;6;1;\n", "seem separated by another delimiter than commas; set data.sep"),
    "duplicate_columns": ("a,b,a,y\n1,2,3,0\n4,5,6,1\n", "duplicate column name(s) 'a'"),
    "nan_target": (None, "column 'y' (the target): missing value at row 4 (line 5)"),
    "word_in_numbers": (None, "column 'b': 'abc' at row 6 (line 7) is not a number"),
    "inf": (None, "column 'c': infinite value inf at row 3 (line 4)"),
    "missing_feature": (None, "column 'a': missing value at row 2 (line 3)"),
    "single_row": ("a,b,c,y\n1,2,3,0\n", "only 1 row(s); the train, val and test splits need at least one row each"),
}


def bad_file(kind: str, workdir):
    path = workdir / f"{kind}.csv"
    text = BAD_FILES[kind][0]
    if kind == "missing":
        return path
    if text is None:
        df = make_table(n=60)
        df["b"] = df["b"].astype(object)
        if kind == "nan_target":
            df["y"] = df["y"].astype(float)
            df.loc[3, "y"] = np.nan
        elif kind == "word_in_numbers":
            df.loc[5, "b"] = "abc"
        elif kind == "inf":
            df.loc[2, "c"] = np.inf
        elif kind == "missing_feature":
            df.loc[1, "a"] = np.nan
        df.to_csv(path, index=False)
    else:
        path.write_text(text)
    return path


# the settings under which a missing value is an error (by default it is imputed, and a row without a target dropped)
STRICT_DATA = {"nan_target": {"missing_target": "error"}, "missing_feature": {"impute": "none"}}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_data_file_exits_2_naming_the_problem(workdir, cli, kind):
    cfg = write_config(workdir / "c.yaml", bad_file(kind, workdir), data=STRICT_DATA.get(kind, {}))
    r = cli("fit", cfg)
    assert r.exit_code == 2, (r.stdout, r.stderr, r.exception)
    assert BAD_FILES[kind][1] in r.stderr
    assert no_traceback(r)
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_missing_target_column_suggests_a_name(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), data={"target": "yy"})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "data.target=yy: no such column (did you mean 'y'?)" in r.stderr


def test_an_empty_target_or_one_of_ids_or_dates_is_refused_by_name(workdir, cli):
    df = make_table(n=60)
    df["order"] = [f"A{i:04d}" for i in range(60)]
    df["when"] = pd.date_range("2024-01-01", periods=60).strftime("%d/%m/%Y")
    df.to_csv(workdir / "sales.csv", index=False)
    r = cli("fit", workdir / "sales.csv", "--target", " ")
    assert r.exit_code == 2 and "--target is empty: name the column to predict" in r.stderr
    for col, what in (("order", "60 distinct values"), ("when", "60 distinct dates")):
        r = cli("fit", workdir / "sales.csv", "--target", col)
        assert r.exit_code == 2 and no_traceback(r)
        assert f"column '{col}' (the target) holds {what} in 60 rows" in r.stderr
        assert "An ID, a name or a date is no target" in r.stderr
    assert not (workdir / "runs").exists()


def test_messages_name_what_is_wrong_not_a_symptom(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), train={"epochs": 1})
    r = cli("runs", cfg)
    assert r.exit_code == 2 and "c.yaml is a file, not a runs folder" in r.stderr
    r = cli("fit", cfg, "data.path=")
    assert r.exit_code == 2 and "data.path='': String should have at least 1 character" in r.stderr
    r = cli("fit", cfg, "scheduler.nmae=cosine")
    assert r.exit_code == 2 and "got nmae (did you mean 'name'?)" in r.stderr
    assert cli("fit", cfg).exit_code == 0
    (workdir / "runs/t/split.json").unlink()
    for command in (("eval", "runs/t"), ("fit", "--resume", "runs/t")):
        r = cli(*command)
        assert r.exit_code == 2 and "split.json: not there; the run's rows are listed in it" in r.stderr, command


def test_a_file_of_no_table_format_given_as_a_table_is_refused_naming_the_formats_not_read_as_yaml(workdir, cli):
    make_table(n=30).to_csv(workdir / "housing.data", index=False)  # UCI's suffix
    (workdir / "sheet.ods").write_bytes(b"PK\x03\x04" + bytes(range(256)))  # LibreOffice's
    for name in ("housing.data", "sheet.ods"):
        r = cli("fit", name, "--target", "y")
        assert r.exit_code == 2 and no_traceback(r)
        suffix = name.partition(".")[2]
        assert f"data.path={name}: '.{suffix}' files are not read; nntrain reads CSV / TSV" in r.stderr
    r = cli("fit", "sheet.ods")  # no --target: a config? neither
    assert r.exit_code == 2 and no_traceback(r)
    assert "sheet.ods: not a YAML config (not UTF-8 text), nor a table by its suffix ('.ods')" in r.stderr
    assert cli("fit", "housing.data").exit_code == 2  # a config whose top level is no mapping, as before


def test_a_txt_file_is_a_table_where_it_is_no_config(workdir):
    from nntrain.cli.app import config_source

    for text in ("size\tprice\n1\t2\n", "# exported\nsize,price\n1,2\n"):
        Path("t.txt").write_text(text)
        assert config_source("t.txt", [], None)[0] == {"name": "t", "data": {"path": "t.txt"}}
    Path("t.txt").write_text("data:\n  path: x.csv\n")
    assert config_source("t.txt", [], None)[0] == "t.txt"
    assert config_source("t.txt", [], "price")[0] == {"name": "t", "data": {"path": "t.txt"}}


def test_contradiction_found_from_the_data_before_training(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), loss="bce")
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "bce is for two classes, the target has more (3 classes)" in r.stderr
    assert not (workdir / "runs").exists()


def test_bad_config_exits_2_with_every_problem(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), train={"epochs": 0}, optimizer={"name": "adamm", "lr": -1})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and r.stdout == ""
    assert "3 problem(s)" in r.stderr and "train.epochs=0" in r.stderr and "adamm" in r.stderr
    assert no_traceback(r)


def test_unseen_category_at_predict_is_an_error_under_strict(workdir, table_csv, cli):
    data = table_csv(cat=True)
    cfg = write_config(workdir / "c.yaml", data, train={"epochs": 1}, data={"impute": "none"})
    assert cli("fit", cfg).exit_code == 0
    df = pd.read_csv(data).head(3)
    df.loc[1, "color"] = "purple"
    df.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv", "--strict")
    assert r.exit_code == 2
    assert "column 'color': value 'purple' at row 2 (line 3): never seen in training (--strict)" in r.stderr
    df.loc[1, "color"] = None
    df.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv")
    assert r.exit_code == 2 and "column 'color': missing value at row 2 (line 3); fill it" in r.stderr


def test_unseen_label_at_eval_is_an_error(trained, cli, workdir):
    summary, _, data = trained
    df = pd.read_csv(data).head(5)
    df.loc[2, "y"] = "maybe"
    df.to_csv(workdir / "e.csv", index=False)
    r = cli("eval", summary["run_dir"], "--data", workdir / "e.csv")
    assert r.exit_code == 2 and "label 'maybe' at row 3 (line 4) was never seen" in r.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "checkpoint is empty"),
        (b"PK\x03\x04garbage", "corrupt or truncated"),
    ],
)
def test_corrupt_checkpoint_is_reported(trained, cli, workdir, content, message):
    summary, _, _ = trained
    (workdir / summary["run_dir"] / "best.pt").write_bytes(content)
    for args in (("eval", summary["run_dir"]), ("predict", summary["run_dir"], "x.csv")):
        r = cli(*args)
        assert r.exit_code == 2 and message in r.stderr and no_traceback(r)


class Payload:
    def __reduce__(self):
        return (open, ("PWNED", "w"))


def test_checkpoint_that_would_run_code_is_refused(trained, cli, workdir):
    summary, _, _ = trained
    torch.save({"format": 1, "model": Payload()}, workdir / summary["run_dir"] / "best.pt")
    r = cli("eval", summary["run_dir"])
    assert r.exit_code == 2 and "refused to load" in r.stderr
    assert not (workdir / "PWNED").exists()


def test_missing_run_and_unknown_checkpoint(trained, cli, workdir):
    r = cli("eval", "--checkpoint", "foo")
    assert r.exit_code == 2 and "--checkpoint=foo: choose best or last" in r.stderr
    r = cli("eval", "nope")
    assert r.exit_code == 2 and "run folder not found: nope" in r.stderr
    (workdir / "runs").rename(workdir / "old")
    r = cli("eval")
    assert r.exit_code == 2 and "no runs found under runs/" in r.stderr


def test_default_model_has_two_hidden_layers(workdir, table_csv, cli):
    (workdir / "c.yaml").write_text(f"data: {{path: {table_csv()}}}\nmodel: {{dropout: 0.1}}\n")
    table = json.loads(cli("params", workdir / "c.yaml", "--json").stdout)
    assert [row["shape"] for row in table["layers"]] == [[64, 3], [128, 64], [3, 128]]
    (workdir / "data.yaml").write_text(f"data: {{path: {table_csv()}}}\n")  # the tabular recipe's model
    table = json.loads(cli("params", workdir / "data.yaml", "--json").stdout)
    assert [row["shape"] for row in table["layers"]] == [[3, 32, 8], [256, 24], [256, 256], [256, 256], [3, 256]]
    (workdir / "lin.yaml").write_text(f"data: {{path: {table_csv()}}}\nmodel: {{hidden: []}}\n")
    assert json.loads(cli("params", workdir / "lin.yaml", "--json").stdout)["total"] == 3 * 3 + 3


def test_yaml_numbers_and_words_as_a_user_means_them(workdir, table_csv, cli):
    (workdir / "my config.yaml").write_text(
        f"data: {{path: {table_csv()}}}\noptimizer: {{name: adam, lr: 1e-3, weight_decay: 5e-4}}\n"
        f"train: {{epochs: 1}}\n"
    )
    r = cli("fit", workdir / "my config.yaml", "optimizer.lr=2e-3", "--name", "001", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["run_dir"] == "runs/001"
    import yaml

    saved = yaml.safe_load((workdir / "runs/001/config.yaml").read_text())
    assert saved["optimizer"] == {"name": "adam", "lr": 0.002, "weight_decay": 0.0005}
    r = cli("fit", workdir / "my config.yaml", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["run_dir"] == "runs/my_config"


def test_override_of_a_component_missing_from_the_file(workdir, table_csv, cli):
    (workdir / "c.yaml").write_text(f"data: {{path: {table_csv()}}}\ntrain: {{epochs: 2, bag: 1}}\n")
    r = cli("fit", workdir / "c.yaml", "optimizer.lr=0.01", "scheduler.name=exponential", "scheduler.gamma=0.5")
    assert r.exit_code == 0, r.stderr
    rows = metrics_rows(workdir / "runs/c")
    assert [float(r["lr"]) for r in rows] == [0.01, 0.005]


def test_config_and_data_problems_come_in_one_message(workdir, table_csv, cli):
    cfg = write_config(workdir / "c.yaml", table_csv(), loss="bce", train={"epochs": "ten"})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "2 problem(s) in the config and data" in r.stderr
    assert "train.epochs=ten" in r.stderr and "bce is for two classes" in r.stderr


def test_json_has_null_where_a_metric_is_undefined(workdir, cli):
    df = make_table(n=200, task="binary")
    df.to_csv(workdir / "d.csv", index=False)
    assert cli("fit", write_config(workdir / "c.yaml", workdir / "d.csv", train={"epochs": 1})).exit_code == 0
    df[df["y"] == "yes"].to_csv(workdir / "pos.csv", index=False)
    r = cli("eval", "runs/t", "--data", workdir / "pos.csv", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["metrics"]["roc_auc"] is None


def test_odd_but_valid_tables(workdir, cli):
    """Numbers stored as text, an index column saved by pandas, codes declared categorical, bool columns."""
    df = make_table(n=150)
    df["flag"] = df["a"] > 0
    df["zone"] = (np.arange(150) % 3) + 1
    df["a"] = df["a"].astype(str)
    df.to_parquet(workdir / "t.parquet")
    df.to_csv(workdir / "t.csv")  # with the index
    for data in ("t.parquet", "t.csv"):
        cfg = write_config(
            workdir / "c.yaml", workdir / data, data={"categorical": ["zone"], "target": "y"}, train={"epochs": 1}
        )
        r = cli("fit", cfg, "--json")
        assert r.exit_code == 0, r.stderr
        ckpt = torch.load(workdir / json.loads(r.stdout)["run_dir"] / "best.pt", weights_only=True)
        assert ckpt["prep"]["encoded"] == ["a", "b", "c", "flag", "zone=1", "zone=2", "zone=3"]
    assert "an index saved with the table" in cli("fit", cfg).stdout


def test_float_coded_labels_match_integer_classes(workdir, table_csv, cli):
    data = table_csv(n=150)
    assert cli("fit", write_config(workdir / "c.yaml", data, train={"epochs": 1})).exit_code == 0
    df = pd.read_csv(data)
    df["y"] = df["y"].astype(float)
    df.to_csv(workdir / "f.csv", index=False)
    r = cli("eval", "runs/t", "--data", workdir / "f.csv", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 150


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("utf16", ("fit",), "d.csv: not a text file (illegal UTF-16 surrogate"),
        ("xlsx", ("fit",), "cannot read it as an Excel workbook"),
        ("odt", ("fit",), "'.odt' files are not read; nntrain reads CSV / TSV (compressed too), Excel (.xlsx)"),
        ("constant", ("fit",), "every row has the same value 'same'"),
        ("word_in_target", ("fit",), "column 'y': 'oops' at row 5 (line 6) is not a number"),
        ("bn_batch_1", ("fit", "model.batch_norm=true", "train.batch_size=1"), "batch norm needs at least two rows"),
        ("ok", ("predict", "runs/none", "in.csv"), "run folder not found"),
    ],
)
def test_more_bad_input_exits_2(workdir, cli, setup, args, message):
    df = make_table(n=60)
    path = workdir / "d.csv"
    if setup == "utf16":  # a UTF-16 byte order mark, then a half of a character pair
        path.write_bytes(b"\xff\xfe" + "a,b,c,y\n".encode("utf-16-le") + b"\x00\xd8" + "1,2,3,4\n".encode("utf-16-le"))
    elif setup in ("xlsx", "odt"):
        path = workdir / f"d.{setup}"
        path.write_bytes(b"PK\x03\x04")
    elif setup == "constant":
        df["y"] = "same"
    elif setup == "word_in_target":
        df["y"] = (df["a"] * 100).round(3).astype(object)
        df.loc[4, "y"] = "oops"
    if not path.exists():
        df.to_csv(path, index=False)
    cfg = write_config(workdir / "c.yaml", path)
    r = cli(*args[:1], *([cfg] if args[0] == "fit" else []), *args[1:])
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in r.stderr and no_traceback(r)


def test_predict_output_folder_must_exist_and_params_refuses_overrides_on_a_run(trained, cli, workdir):
    summary, _, data = trained
    r = cli("predict", summary["run_dir"], data, "-o", workdir / "no/such/out.csv")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = cli("params", summary["run_dir"], "model.hidden=[3]")
    assert r.exit_code == 2 and "apply to a config, not to a trained run folder" in r.stderr


def test_integer_column_names_and_a_class_that_cannot_be_split(workdir, cli):
    df = make_table(n=60)
    df.columns = [0, 1, 2, 3]
    df.to_parquet(workdir / "ints.parquet")
    r = cli("fit", write_config(workdir / "c.yaml", workdir / "ints.parquet", train={"epochs": 1}), "--json")
    assert r.exit_code == 0, r.stderr
    tiny = pd.DataFrame({"a": [0.1, 0.5, 0.9], "y": ["x", "x", "z"]})
    tiny.to_csv(workdir / "tiny.csv", index=False)
    r = cli("fit", write_config(workdir / "t.yaml", workdir / "tiny.csv"), "data.test_size=0.3", "data.val_size=0.5")
    # every class keeps a training row, so the validation split has none to take
    assert r.exit_code == 2 and "the validation split is empty (3 rows)" in r.stderr


def test_schema_describes_every_key_and_forbids_unknown_ones(cli):
    from nntrain.config.schema import Config, DataConfig, TrainConfig

    r = cli("schema")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert set(doc["properties"]) == set(Config.model_fields) and doc["additionalProperties"] is False
    assert set(doc["$defs"]["DataConfig"]["properties"]) == set(DataConfig.model_fields)
    assert set(doc["$defs"]["TrainConfig"]["properties"]) == set(TrainConfig.model_fields)
    assert doc["required"] == ["data"]


def test_configs_lists_and_copies_without_overwriting(repo, cli, workdir):
    r = cli("configs")
    assert r.exit_code == 0
    for name in ("phone", "iris", "breast_cancer", "diabetes", "digits", "seed_model"):
        assert name in r.stdout
    assert "Phone price classes" in r.stdout
    from nntrain.cli.configs import first_sentence  # a sentence over two comment lines is shown whole

    assert first_sentence((repo / "configs/deep_sigmoid.yaml").read_text()).endswith("layers under plain SGD.")
    r = cli("configs", "copy", "phone", workdir)
    assert r.exit_code == 0 and (workdir / "phone.yaml").read_text() == (repo / "configs/phone.yaml").read_text()
    r = cli("configs", "copy", "phone", workdir / "my.yaml")  # named after its file: its runs go to runs/my
    shipped = (repo / "configs/phone.yaml").read_text()
    line = next(x for x in shipped.splitlines() if x.startswith("name: phone"))
    assert r.exit_code == 0 and (workdir / "my.yaml").read_text() == shipped.replace(line, line.replace("phone", "my"))
    r = cli("configs", "copy", "phone", workdir / "phone.yaml")
    assert r.exit_code == 2 and "exists" in r.stderr
    r = cli("configs", "copy", "irs", workdir)
    assert r.exit_code == 2 and "did you mean 'iris'?" in r.stderr
    r = cli("configs", "show", "phone")  # a shipped name, as copy takes it
    assert r.exit_code == 0 and r.stdout.splitlines()[1:3] == ["name: phone", "seed: 42"]
    r = cli("configs", "show", "phon")
    assert r.exit_code == 2 and "no shipped config 'phon' (did you mean 'phone'?)" in r.stderr


def test_a_non_editable_install_lists_and_copies_every_shipped_config(repo, tmp_path):
    """The wheel pip builds (what `pip install .` installs), installed away from the checkout."""
    import shutil
    import zipfile

    # built from a copy: setuptools packs whatever a build/ folder left from an earlier build holds
    source = tmp_path / "src"
    shutil.copytree(
        repo,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".*venv*", "venv", "build", "dist", "*.egg-info", "runs", "tests", "__pycache__", ".pytest_cache"
        ),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("nntrain-*.whl")
    shipped = sorted(p.name for p in (repo / "configs").glob("*.yaml"))
    packed = sorted(
        n.removeprefix("nntrain/configs/")
        for n in zipfile.ZipFile(wheel).namelist()
        if n.startswith("nntrain/configs/")
    )
    assert packed == shipped and len(shipped) >= 6
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = lambda *args: subprocess.run([*NNTRAIN, *args], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    where = subprocess.run(
        [sys.executable, "-c", "import nntrain; print(nntrain.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    listed = run("configs")
    assert listed.returncode == 0 and all(name.removesuffix(".yaml") in listed.stdout for name in shipped)
    copied = run("configs", "copy", "phone", "mine.yaml")
    assert copied.returncode == 0, copied.stderr
    got = (tmp_path / "mine.yaml").read_text()  # named after its file; the rest as shipped
    assert got.replace("mine", "phone") == (repo / "configs/phone.yaml").read_text() and "name: mine" in got


def test_resume_refuses_a_change_to_the_model_and_names_each_key(trained, cli):
    summary, _, _ = trained
    r = cli("fit", "--resume", summary["run_dir"], "model.hidden=[3]", "optimizer.lr=0.5", "train.epochs=9")
    assert r.exit_code == 2 and no_traceback(r)
    assert "these keys cannot change on resume" in r.stderr
    assert "model.hidden: [" in r.stderr and "-> [3]" in r.stderr and "optimizer.lr:" in r.stderr
    assert "train.epochs" not in r.stderr  # train.* may change


def test_sweep_without_optuna_says_how_to_install_it(workdir, table_csv):
    import subprocess
    import sys

    cfg = write_config(workdir / "c.yaml", table_csv())
    code = (
        "import sys\nsys.modules['optuna'] = None  # as if it were not installed\nfrom nntrain.cli import app\n"
        "app(['sweep', sys.argv[1]])"
    )
    r = subprocess.run([sys.executable, "-c", code, str(cfg)], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "nntrain sweep needs Optuna" in r.stderr and 'pip install -e ".[sweep]"' in r.stderr


def test_an_allocation_the_machine_cannot_hold_is_said_with_exit_2_not_a_traceback(capsys):
    import typer

    from nntrain.cli.app import _guard

    with pytest.raises(typer.Exit) as stop:
        _guard(lambda: np.empty(10**15, dtype=np.float32))  # 3.6 PiB: numpy refuses at once
    assert stop.value.exit_code == 2
    assert "Error: out of memory: Unable to allocate" in capsys.readouterr().err
