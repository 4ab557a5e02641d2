"""train.bag: K members cross-fitted on the non-test rows, trained as one; out-of-fold predictions for every
non-test row; eval, predict and export average the members."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nntrain import metrics as M
from nntrain.model.calibration import calibrated

from .conftest import NNTRAIN, make_table, metrics_rows, write_config


def bag_config(workdir, task="multiclass", k=4, **train):
    make_table(n=160, task=task, cat=True).to_csv(workdir / "t.csv", index=False)
    return write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"bag": k, "epochs": 4, **train})


def test_a_bag_trains_a_member_per_fold_and_keeps_every_non_test_row_out_of_fold(workdir, cli):
    r = cli("fit", bag_config(workdir), "--json", "--quiet")
    assert r.exit_code == 0, r.output
    root = workdir / "runs" / "t"
    summary = json.loads((root / "summary.json").read_text())
    plan = json.loads((root / "bag.json").read_text())
    split = json.loads((root / "split.json").read_text())
    assert summary["bag"] == 4 and summary["status"] == "completed" and len(summary["members"]) == 4
    folds, test = [set(f) for f in plan["folds"]], set(plan["test"])
    rest = set(range(160)) - test
    assert set().union(*folds) == rest and sum(map(len, folds)) == len(rest) and set(split["test"]) == test
    for k, fold in enumerate(folds, start=1):  # member k validates on fold k and trains on the others
        member = json.loads((root / f"member{k}" / "split.json").read_text())
        assert set(member["val"]) == fold and set(member["train"]) <= rest - fold
        assert len(rest - fold) - len(member["train"]) <= 1  # cut to one length for the stack: a row at most
    oof = pd.read_csv(root / "oof.csv")
    assert sorted(oof["row"]) == sorted(rest) and all(oof["fold"].between(1, 4))
    y = make_table(n=160, task="multiclass", cat=True)["y"].to_numpy()
    assert (oof["target"].to_numpy() == y[oof["row"]]).all()
    proba = oof[[c for c in oof.columns if c.startswith("proba_")]].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1) and summary["val"]["accuracy"] == pytest.approx(
        M.classification(oof["target"].to_numpy(), proba)["accuracy"]
    )


def test_eval_predict_and_export_of_a_bag_average_its_members(workdir, cli):
    assert cli("fit", bag_config(workdir, k=3), "--quiet", "train.linear=false").exit_code == 0
    root = workdir / "runs" / "t"
    members = [
        pd.read_csv(pd.io.common.StringIO(cli("predict", root / f"member{k}", "t.csv").output)) for k in (1, 2, 3)
    ]
    bag = pd.read_csv(pd.io.common.StringIO(cli("predict", root, "t.csv").output))
    cols = [c for c in bag.columns if c.startswith("proba_")]
    mean = sum(m[cols] for m in members) / 3
    t = json.loads((root / "bag.json").read_text())["temperature"]  # the mean, calibrated (test_calibration.py)
    assert np.allclose(bag[cols], calibrated(mean.to_numpy(), t), atol=1e-6)
    assert (bag["prediction"].astype(str) == mean.to_numpy().argmax(axis=1).astype(str)).all()
    report = json.loads(cli("eval", root, "--json").output)
    summary = json.loads((root / "summary.json").read_text())
    assert report["rows"] == len(json.loads((root / "bag.json").read_text())["test"])
    assert report["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    epochs = [json.loads((root / f"member{k}" / "summary.json").read_text())["best_epoch"] for k in (1, 2, 3)]
    assert report["checkpoint_epoch"] == epochs
    span = f"{min(epochs)}-{max(epochs)}" if min(epochs) != max(epochs) else str(epochs[0])
    assert f"(best.pt of 3 members, epochs {span}) on test split" in cli("eval", root).output.splitlines()[0]
    r = cli("eval", root, "--checkpoint", "worst")  # a name no checkpoint has, not a member gone missing
    assert r.exit_code == 2 and "--checkpoint=worst: choose best or last" in r.output
    r = cli("compare", root, root / "member1", "-o", "cmp.png")  # a bag's curves are its members'
    assert r.exit_code == 0 and "bag of 3" in r.output and (workdir / "cmp.png").stat().st_size > 0
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    r = cli("export", root)
    assert r.exit_code == 0, r.output
    frame = pd.read_csv("t.csv")
    out = ort.InferenceSession(str(root / "model.onnx")).run(
        None,
        {"features": frame[["a", "b", "c"]].to_numpy(np.float64), "strings": frame[["color"]].to_numpy(object)},
    )[0]
    assert np.abs(out - bag[cols].to_numpy()).max() < 1e-5
    # the sidecar names what the graph is: the bag and its members' epochs, as eval does (was: member1's)
    side = json.loads((root / "model.onnx.json").read_text())
    assert Path(side["run_dir"]).resolve() == root.resolve() and side["epoch"] == epochs


def test_a_regression_bag_averages_values_in_the_target_units(workdir, cli):
    assert cli("fit", bag_config(workdir, task="regression", k=3), "--quiet").exit_code == 0
    root = workdir / "runs" / "t"
    oof = pd.read_csv(root / "oof.csv")
    summary = json.loads((root / "summary.json").read_text())
    assert summary["val"]["r2"] == pytest.approx(M.regression(oof["target"], oof["prediction"])["r2"])
    assert summary["val"]["r2"] > 0.5 and abs(oof["prediction"].mean() - oof["target"].mean()) < 3


def test_a_bag_refuses_a_fixed_validation_split_and_leaves_nothing(workdir, cli):
    cfg = bag_config(workdir)
    frame = pd.read_csv(workdir / "t.csv").assign(part=["train"] * 100 + ["val"] * 30 + ["test"] * 30)
    frame.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", cfg, "data.split_column=part")
    assert r.exit_code == 2 and "train.bag=4: data.split_column fixes the validation rows" in r.output
    assert not (workdir / "runs" / "t").exists()


def test_seeds_of_a_bag_config_train_one_model_each_and_say_so(workdir, cli):
    r = cli("fit", bag_config(workdir), "--seeds", "0,1")
    assert r.exit_code == 0, r.output
    assert "train.bag=4 left out: this trains one model" in r.output
    assert (workdir / "runs" / "t-seed0" / "best.pt").is_file() and not (
        workdir / "runs" / "t-seed0" / "bag.json"
    ).exists()


@pytest.mark.parametrize("scale", ["standard", "quantile"])
def test_a_linear_model_beside_the_bag_takes_the_share_the_out_of_fold_predictions_give_it(workdir, cli, scale):
    """y is linear in the numbers: the linear model's share is chosen high on the out-of-fold rows, and eval,
    predict, oof.csv and the ONNX export all give the mixture. Under data.scale: quantile the linear model reads
    the numbers back from their ranks (linear_path.linear_inputs), in the export too."""
    cfg = bag_config(workdir, task="regression", k=3)
    assert cli("fit", cfg, "--quiet", "train.linear=true", f"data.scale={scale}").exit_code == 0
    root = workdir / "runs" / "t"
    summary = json.loads((root / "summary.json").read_text())
    plan = json.loads((root / "bag.json").read_text())
    assert summary["linear_weight"] == plan["linear"]["weight"] >= 0.5 and len(plan["linear"]["models"]) == 3
    if scale == "quantile":  # a straight line in the numbers: unclipped, it fits the out-of-fold rows better
        assert plan["linear"]["clip"] is None
    oof = pd.read_csv(root / "oof.csv")
    assert summary["val"]["r2"] == pytest.approx(M.regression(oof["target"], oof["prediction"])["r2"])
    bag = pd.read_csv(pd.io.common.StringIO(cli("predict", root, "t.csv").output))
    report = json.loads(cli("eval", root, "--json").output)
    assert report["metrics"]["r2"] == pytest.approx(summary["test"]["r2"])
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    assert cli("export", root).exit_code == 0
    frame = pd.read_csv("t.csv")
    out = ort.InferenceSession(str(root / "model.onnx")).run(
        None,
        {"features": frame[["a", "b", "c"]].to_numpy(np.float64), "strings": frame[["color"]].to_numpy(object)},
    )[0]
    assert np.abs(out.reshape(-1) - bag["prediction"].to_numpy()).max() < 1e-3


@pytest.mark.slow
def test_a_bag_stopped_by_ctrl_c_resumes_to_the_same_out_of_fold_predictions(workdir):
    cfg = bag_config(workdir, k=3, epochs=60, checkpoint_every=0.0)
    whole = subprocess.run([*NNTRAIN, "fit", str(cfg), "--quiet", "--name", "whole"], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen([*NNTRAIN, "fit", str(cfg), "--quiet", "--name", "cut"], stderr=subprocess.PIPE, text=True)
    member = workdir / "runs" / "cut" / "member1" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not member.is_file() or len(member.read_text().splitlines()) < 10):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nntrain fit --resume runs/cut" in err and not (workdir / "runs" / "cut" / "oof.csv").exists()
    make_table(5).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    for command in (["eval", "runs/cut"], ["predict", "runs/cut", "rows.csv"], ["export", "runs/cut"]):
        r = subprocess.run([*NNTRAIN, *command], capture_output=True, text=True)  # not the half-trained members
        assert r.returncode == 2 and "the bag has not finished" in r.stderr, (command, r.stderr)
        assert "finish it with: nntrain fit --resume runs/cut" in r.stderr and "Traceback" not in r.stderr
    listed = subprocess.run([*NNTRAIN, "runs", "--json"], capture_output=True, text=True)
    rows = json.loads(listed.stdout)["runs"]
    assert [(r["epochs"], r["status"]) for r in rows if r["path"] == "runs/cut"] == [
        ("bag of 3, not finished", "stopped")
    ]
    r = subprocess.run([*NNTRAIN, "fit", "--resume", "runs/cut", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a = pd.read_csv(workdir / "runs" / "whole" / "oof.csv")
    b = pd.read_csv(workdir / "runs" / "cut" / "oof.csv")
    pd.testing.assert_frame_equal(a, b)
    shutil.rmtree(workdir / "runs" / "cut" / "member2")  # a bag without one of its members is no bag
    r = subprocess.run([*NNTRAIN, "eval", "runs/cut"], capture_output=True, text=True)
    assert r.returncode == 2 and "runs/cut/member2: not found: the bag's member member2 is missing" in r.stderr


def test_a_finished_bag_resumed_with_more_epochs_trains_on_as_its_members_would_alone(workdir, cli):
    """fit --resume BAG train.epochs=N: the members that ran their epochs train on (together), the one that
    early-stopped is left as a lone early-stopped run is, and the bag is finished again from the members' new
    best epochs; the bag's config.yaml, like a lone run's, says the new count."""
    cfg = bag_config(workdir, k=3, epochs=7, patience=2)
    assert cli("fit", cfg, "optimizer.lr=0.1", "train.threads=1", "train.plots=false", "--quiet").exit_code == 0
    root = workdir / "runs" / "t"

    def member(k: int) -> dict:
        return json.loads((root / f"member{k}" / "summary.json").read_text())

    assert [(member(k)["status"], member(k)["epochs_run"]) for k in (1, 2, 3)] == [
        ("completed", 7),
        ("completed", 7),
        ("early_stop", 6),
    ]
    stopped = {n: (root / "member3" / n).read_bytes() for n in ("summary.json", "metrics.csv", "config.yaml")}
    oof = (root / "oof.csv").read_text()
    r = cli("fit", "--resume", "runs/t", "train.epochs=9", "--quiet")
    assert r.exit_code == 0, r.output
    assert "bag runs/t: 2 of 3 members to resume (train.epochs=9)" in r.output
    assert "member3: ended at epoch 6 (early_stop: early stop: val_loss has not improved for 2 epochs)" in r.output
    for k in (1, 2):
        assert member(k)["epochs_run"] > 7 and len(metrics_rows(root / f"member{k}")) == member(k)["epochs_run"]
        assert "epochs: 9" in (root / f"member{k}" / "config.yaml").read_text()
    assert {n: (root / "member3" / n).read_bytes() for n in stopped} == stopped
    summary = json.loads((root / "summary.json").read_text())
    assert summary["best_epoch"] == [member(k)["best_epoch"] for k in (1, 2, 3)] and max(summary["best_epoch"]) > 7
    again = pd.read_csv(root / "oof.csv")
    proba = again[[c for c in again.columns if c.startswith("proba_")]].to_numpy()
    assert (root / "oof.csv").read_text() != oof
    assert summary["val"]["accuracy"] == pytest.approx(M.classification(again["target"].to_numpy(), proba)["accuracy"])
    assert "epochs: 9" in (root / "config.yaml").read_text()


def test_a_bag_resume_refuses_what_a_lone_one_refuses_and_a_plain_one_trains_nothing(workdir, cli):
    assert cli("fit", bag_config(workdir, k=3, epochs=2), "train.threads=1", "train.plots=false").exit_code == 0
    root = workdir / "runs" / "t"
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for given, named in (("model.hidden=[16]", "model.hidden: [8] -> [16]"), ("train.bag=4", "train.bag=4")):
        r = cli("fit", "--resume", "runs/t", given, "train.epochs=4")
        assert r.exit_code == 2 and named in r.output and "Traceback" not in r.output, r.output
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files  # nothing written
    r = cli("fit", "--resume", "runs/t", "train.epochs=1")  # was: each member 'nothing to train', exit 0
    assert r.exit_code == 2 and "train.epochs=1: the run runs/t/member1 has already trained 2 epochs" in r.stderr, (
        r.output
    )
    assert "runs/t/member1" in r.stderr and "Traceback" not in r.output
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files
    r = cli("fit", "--resume", "runs/t", "--quiet")
    assert r.exit_code == 0 and "bag runs/t: 0 of 3 members to resume" in r.output, r.output
    assert [len(metrics_rows(root / f"member{k}")) for k in (1, 2, 3)] == [2, 2, 2]


def test_a_bag_missing_a_members_checkpoint_or_its_bag_json_is_named_by_eval_and_predict(workdir, cli):
    """A bag without bag.json was read as a lone run: 'runs/t/best.pt: checkpoint not found'. Each missing file is
    named with the bag, exit 2."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2), "train.threads=1", "train.plots=false").exit_code == 0
    make_table(5, cat=True).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    root = workdir / "runs" / "t"
    for gone, said in (
        ("member2/best.pt", "runs/t/member2/best.pt: not found: the bag's member member2 is missing it"),
        ("bag.json", "runs/t is a bag of 2 members whose bag.json is missing; train the bag again"),
    ):
        kept = (root / gone).read_bytes()
        (root / gone).unlink()
        for command in (["eval", "runs/t"], ["predict", "runs/t", "rows.csv"]):
            r = cli(*command)
            assert r.exit_code == 2 and said in r.stderr and "Traceback" not in r.output, (command, r.output)
        (root / gone).write_bytes(kept)


def test_a_member_resumed_alone_is_refused_and_points_to_the_bags_resume(workdir, cli):
    """fit --resume BAG/member1 trained that member alone: the bag's summary.json, oof.csv (its blend weight and
    intervals) and `runs` went stale while eval used the new weights. A member resumes with its bag."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2), "train.threads=1", "train.plots=false").exit_code == 0
    root = workdir / "runs" / "t"
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for given in (["runs/t/member1"], ["runs/t/member1", "--resume", "runs/t/member2"]):
        r = cli("fit", "--resume", *given, "train.epochs=4")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "runs/t/member1: a member of the bag runs/t" in r.stderr and "nntrain fit --resume runs/t" in r.stderr
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files  # nothing written


def test_a_lone_runs_resume_refuses_to_make_it_a_bag_or_give_it_a_linear_model(workdir, cli):
    """A lone run trained one model: a resume's train.bag=3, or a new train.linear (a bag's linear model), was
    written into its config.yaml, exit 0, and trained nothing of it. train.bag=1 is one model still."""
    make_table(n=160).to_csv(workdir / "t.csv", index=False)
    cfg = write_config(workdir / "c.yaml", "t.csv", train={"epochs": 2, "plots": False, "threads": 1})
    assert cli("fit", cfg, "--quiet").exit_code == 0
    root = workdir / "runs" / "t"
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for given in ("train.bag=3", "train.bag=auto", "train.linear=true"):
        r = cli("fit", "--resume", "runs/t", given, "train.epochs=3")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"{given}: the run trained one model" in r.stderr and "start a new run with train.bag=" in r.stderr
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files  # nothing written
    r = cli("fit", "--resume", "runs/t", "train.bag=1", "train.epochs=3", "--quiet")
    assert r.exit_code == 0 and len(metrics_rows(root)) == 3, r.output


@pytest.mark.slow
def test_a_bag_stopped_while_its_members_are_made_leaves_no_folder_or_one_that_resumes(workdir):
    """SIGINT as soon as bag.json is written, while the members' folders are being made (the signal lands there
    on most tries): no bag folder and "nothing to resume", or, where it lands later, a bag that resumes. A folder
    that says "Resume with" and cannot be resumed is the fault."""
    cfg = bag_config(workdir, k=5, epochs=30)
    for trial in range(3):
        name = f"cut{trial}"
        proc = subprocess.Popen(
            [*NNTRAIN, "fit", str(cfg), "--quiet", "--name", name], stderr=subprocess.PIPE, text=True
        )
        plan = workdir / "runs" / name / "bag.json"
        deadline = time.time() + 120
        while time.time() < deadline and not plan.is_file() and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err
        if "nothing to resume" in err:
            assert not (workdir / "runs" / name).exists(), err
        else:
            assert f"Resume with: nntrain fit --resume runs/{name}" in err
            r = subprocess.run([*NNTRAIN, "fit", "--resume", f"runs/{name}", "--quiet"], capture_output=True, text=True)
            assert r.returncode == 0 and (workdir / "runs" / name / "oof.csv").is_file(), r.stderr


def recipe_config(workdir, rows=200, task="multiclass", **sections):
    make_table(n=rows, task=task, cat=True).to_csv(workdir / "t.csv", index=False)
    import yaml

    cfg = {"name": "t", "seed": 0, "data": {"path": "t.csv", "target": "y"}, "train": {"epochs": 3}, **sections}
    (workdir / "c.yaml").write_text(yaml.safe_dump(cfg))
    return workdir / "c.yaml"


def test_the_recipe_bags_a_small_table_and_writes_the_bags_plots(workdir, cli):
    r = cli("fit", recipe_config(workdir), "train.threads=1")
    assert r.exit_code == 0, r.output
    root = workdir / "runs" / "t"
    assert "note: train.bag auto: a bag of 5 members (up to 10,000 non-test rows)" in r.output
    assert json.loads((root / "summary.json").read_text())["bag"] == 5
    assert {p.name for p in root.glob("*.png")} == {"curves.png", "confusion_matrix.png", "calibration.png"}
    assert not list(root.glob("member*/*.png"))  # a member's curves are its metrics.csv
    plan = json.loads((root / "bag.json").read_text())
    assert "linear" in plan  # the recipe's linear model beside the members
    lr = json.loads((root / "member1" / "summary.json").read_text())["config"]["optimizer"]["lr"]
    row = next(line for line in cli("runs").output.splitlines() if line.lstrip("│ ").startswith("t "))
    assert f"adamw lr={lr:g}" in row and "bag of 5, best " in row  # the lr the members trained with, not "auto"
    best = json.loads((root / "summary.json").read_text())["best_epoch"]
    assert f"best {min(best)}-{max(best)} " in row if min(best) != max(best) else f"best {best[0]} " in row


@pytest.mark.parametrize(
    ("rows", "extra", "why"),
    [
        (20, [], "one model: 16 non-test rows, too few for 5 folds (bags from 20)"),
        (300, ["model.ensemble=2"], "one model: model.ensemble=2 is an ensemble already (choose it or a bag)"),
        (300, ["data.val_path=v.csv"], "one model: data.val_path fixes the validation rows"),
    ],
)
def test_the_recipe_trains_one_model_where_a_bag_cannot_and_says_why(workdir, cli, rows, extra, why):
    path = recipe_config(workdir, rows=rows, task="regression" if rows < 100 else "multiclass")
    make_table(n=40, task="multiclass", cat=True, seed=5).to_csv(workdir / "v.csv", index=False)
    r = cli("fit", path, "train.threads=1", *extra)
    assert r.exit_code == 0, r.output
    assert f"note: train.bag auto: {why}" in r.output
    assert (workdir / "runs" / "t" / "best.pt").is_file() and not (workdir / "runs" / "t" / "bag.json").exists()


def test_the_recipe_trains_one_model_above_the_row_limit_and_for_a_rare_class(workdir, monkeypatch):
    import nntrain
    from nntrain.tools import bagging

    frame = make_table(n=300, task="multiclass", cat=True)
    config = {"data": {"target": "y"}, "runs_dir": "runs", "train": {"epochs": 2, "threads": 1}}
    monkeypatch.setattr(bagging, "AUTO_MAX_ROWS", 200)
    lines: list[str] = []
    run = nntrain.fit(config, data=frame, log=lines.append)
    assert isinstance(run, nntrain.Run)
    assert "note: train.bag auto: one model: 240 non-test rows (bags up to 200)" in lines
    monkeypatch.setattr(bagging, "AUTO_MAX_ROWS", 10_000)
    rare = frame.assign(y=np.where(np.arange(300) < 4, "rare", frame["y"].astype(str)))
    lines.clear()
    assert isinstance(nntrain.fit(config, data=rare, log=lines.append), nntrain.Run)
    assert "note: train.bag auto: one model: the rarest class of 'y' has 4 row(s), too few for 5 folds" in lines
    lines.clear()  # 5 rows: one a fold (stratified); the test split takes one, every member trains on the rest
    rare = frame.assign(y=np.where(np.arange(300) < 5, "rare", frame["y"].astype(str)))
    bag = nntrain.fit({**config, "name": "rare5"}, data=rare, log=lines.append)
    assert isinstance(bag, nntrain.Bag)
    assert "note: train.bag auto: a bag of 5 members (up to 10,000 non-test rows)" in lines
    oof = pd.read_csv(bag.run_dir / "oof.csv", dtype={"target": str})
    assert "rare" in bag.classes and oof.loc[oof["target"] == "rare", "fold"].nunique() == 4  # 4 folds, each trains it


def test_a_regression_target_whose_values_repeat_is_bagged_not_counted_as_classes(workdir):
    """A rating (4.3, 4.5, ...): 30 distinct numbers, most of them on a few rows, is a quantity; no class of it
    is too rare for the folds."""
    import nntrain

    frame = make_table(n=200, task="regression", seed=3)
    frame["y"] = np.round(np.clip(3.5 + frame["y"] / frame["y"].std() * 0.8, 1.0, 5.0), 1)
    assert frame["y"].nunique() >= 21 and frame["y"].value_counts().min() == 1
    lines: list[str] = []
    config = {"data": {"target": "y"}, "runs_dir": "runs", "train": {"epochs": 2, "threads": 1}}
    assert isinstance(nntrain.fit(config, data=frame, log=lines.append), nntrain.Bag)
    assert "note: train.bag auto: a bag of 5 members (up to 10,000 non-test rows)" in lines
    lines.clear()  # 40 rows: 32 non-test, a fold of 6-7 rows each
    assert isinstance(nntrain.fit({**config, "name": "small"}, data=frame[:40], log=lines.append), nntrain.Bag)
    assert "note: train.bag auto: a bag of 5 members (up to 10,000 non-test rows)" in lines
    counts = frame.assign(y=np.arange(200) % 12)  # 12 integer values: classes
    counts.loc[:3, "y"] = 99
    lines.clear()
    assert isinstance(nntrain.fit(config, data=counts, log=lines.append), nntrain.Run)
    assert "note: train.bag auto: one model: the rarest class of 'y' has 4 row(s), too few for 5 folds" in lines


def test_the_linear_models_strength_is_the_one_with_the_least_out_of_fold_loss(workdir, cli):
    from sklearn.linear_model import Ridge

    from nntrain.data.reread import load_encoded
    from nntrain.tools.bag_inference import load_members
    from nntrain.tools.linear_path import STRENGTHS, linear_columns

    assert cli("fit", bag_config(workdir, task="regression", k=3), "--quiet", "train.linear=true").exit_code == 0
    root = workdir / "runs" / "t"
    plan, loaded = load_members(root)
    prep = loaded[0].prep
    e, cols = load_encoded(prep), linear_columns(prep)
    folds = [np.asarray(f) for f in plan["folds"]]
    rest = np.concatenate(folds)

    def oof_loss(alpha):
        err = []
        for fold in folds:
            train = np.setdiff1d(rest, fold)
            m = Ridge(alpha=alpha).fit(e.X[np.ix_(train, cols)], e.y[train])
            err.append((m.predict(e.X[np.ix_(fold, cols)]) - e.y[fold]) * prep["target_scale"])
        return float(np.mean(np.concatenate(err) ** 2))

    losses = {a: oof_loss(a) for a in STRENGTHS}
    assert plan["linear"]["strength"] == min(losses, key=losses.get)


def test_a_bag_in_python_gives_its_members_curves_and_explains_its_mean(workdir, cli):
    import nntrain

    assert cli("fit", bag_config(workdir, k=3), "--quiet").exit_code == 0
    bag = nntrain.load("runs/t")
    assert sorted(bag.metrics["member"].unique()) == [1, 2, 3] and len(bag.metrics) == 12  # 4 epochs each
    result = bag.explain(repeats=2)
    assert set(result["table"]["column"]) == {"a", "b", "c", "color"}
    assert result["metric"] == "loss" and result["base"] == pytest.approx(bag.evaluate()["loss"])
    assert bag.params()["members"] == 3 and bag.params()["total"] == bag.params()["trainable"] > 0
    assert (workdir / "runs" / "t" / "importance.csv").is_file()


def test_a_rows_out_of_fold_prediction_mixes_only_models_that_left_it_out(workdir, cli):
    """oof.csv's value of a row in fold k: member k's prediction mixed with the linear model's fold-k model,
    never with the linear models that trained on the row."""
    from nntrain.data.reread import load_encoded
    from nntrain.tools.bag_inference import load_members, scores_of
    from nntrain.tools.linear_path import linear_scores

    assert cli("fit", bag_config(workdir, task="regression", k=3), "--quiet", "train.linear=true").exit_code == 0
    root = workdir / "runs" / "t"
    plan, loaded = load_members(root)
    share = plan["linear"]["weight"]
    assert share > 0  # the linear models count in oof.csv
    prep = loaded[0].prep
    e = load_encoded(prep)
    oof = pd.read_csv(root / "oof.csv")
    for k, run in enumerate(loaded):
        rows = oof.loc[oof["fold"] == k + 1, "row"].to_numpy()
        own = scores_of(run, e.X[rows])
        lin = linear_scores(plan["linear"], prep, e.X[rows], model=k)
        want = (1 - share) * own + share * lin
        assert np.allclose(oof.loc[oof["fold"] == k + 1, "prediction"].to_numpy(), want, rtol=1e-6)


def test_the_closing_line_says_when_the_linear_model_alone_predicts():
    from nntrain.tools.bagging import _share

    assert _share(0.6) == " (a linear model's share: 0.60)"
    assert _share(1.0) == (
        " (a linear model's share: 1.00: the linear model alone, the networks did not lower its out-of-fold loss)"
    )


@pytest.mark.parametrize(
    "written",
    ['{"members": ["member1", "member2"], "fol', "[1, 2]", '{"members": "member1", "folds": [], "test": []}'],
)
def test_a_bag_json_cut_short_or_edited_is_named_by_resume_eval_predict_and_export(workdir, cli, written):
    """A bag.json cut short (a disk full, a copy stopped) or edited was read with json.loads: a JSONDecodeError's
    or TypeError's traceback from fit --resume, eval, predict and export. Each names the file, exit 2."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2), "train.threads=1", "train.plots=false").exit_code == 0
    make_table(5, cat=True).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    (workdir / "runs" / "t" / "bag.json").write_text(written)
    commands = (
        ["fit", "--resume", "runs/t"],
        ["eval", "runs/t"],
        ["predict", "runs/t", "rows.csv"],
        ["export", "runs/t"],
    )
    for command in commands:
        r = cli(*command)
        assert r.exit_code == 2, (command, r.output)
        assert "runs/t/bag.json: not a bag's plan" in r.stderr and "train the bag again" in r.stderr, (
            command,
            r.output,
        )
    r = cli("fit", "--resume", "runs/t/member1", "train.epochs=3")  # a member alone: the plan is read there too
    assert r.exit_code == 2 and "runs/t/bag.json: not a bag's plan" in r.stderr, r.output


def test_a_bag_whose_member_folder_is_gone_is_named_by_resume(workdir, cli):
    """fit --resume of a bag whose member2 folder was deleted said the bag 'was stopped before its members began
    to train (member2 has no save)': the member is missing, and the message names it."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2), "train.threads=1", "train.plots=false").exit_code == 0
    shutil.rmtree(workdir / "runs" / "t" / "member2")
    r = cli("fit", "--resume", "runs/t")
    assert r.exit_code == 2 and "runs/t/member2: not found: the bag's member member2 is missing" in r.stderr, r.output
    assert "before its members began to train" not in r.stderr


@pytest.mark.slow
def test_a_bag_lengthened_and_stopped_says_it_has_not_finished_and_its_resume_finishes_it(workdir):
    """fit --resume BAG train.epochs=N stopped by a signal: its message said 'Resume with: nntrain fit --resume
    BAG/member1 --resume BAG/member2' (a member resumed alone is refused), and the bag's old summary.json, oof.csv
    and linear share stood beside its members' new weights, so eval and predict gave a mixture no bag trained
    and `runs` called it completed. Now the bag has not finished until its resume finishes it."""
    cfg = bag_config(workdir, k=2, epochs=2, threads=1, plots=False)
    assert subprocess.run([*NNTRAIN, "fit", str(cfg), "--quiet"], capture_output=True).returncode == 0
    root = workdir / "runs" / "t"
    resume = [*NNTRAIN, "fit", "--resume", "runs/t", "train.epochs=400", "train.patience=400", "--quiet"]
    proc = subprocess.Popen(resume, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(metrics_rows(root / "member1")) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Resume with: nntrain fit --resume runs/t" in err and "member1" not in err, err
    make_table(5, cat=True).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    for command in (["eval", "runs/t"], ["predict", "runs/t", "rows.csv"]):
        r = subprocess.run([*NNTRAIN, *command], capture_output=True, text=True)
        assert r.returncode == 2 and "the bag has not finished" in r.stderr, (command, r.stderr)
    r = subprocess.run([*NNTRAIN, "fit", "--resume", "runs/t", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads((root / "summary.json").read_text())
    members = [json.loads((root / f"member{k}" / "summary.json").read_text()) for k in (1, 2)]
    assert summary["best_epoch"] == [m["best_epoch"] for m in members] and (root / "oof.csv").is_file()
    assert all(m["epochs_run"] == 400 for m in members)


def test_a_finished_bag_resumed_with_another_train_linear_is_finished_with_it(workdir, cli):
    """fit --resume BAG train.linear=false (no member to train) exited 0 and kept the linear model: bag.json,
    summary.json and config.yaml as before, the override silently dropped (with train.epochs=N it took effect).
    The bag's own keys take effect when it is finished again, and its config.yaml says them."""
    cfg = bag_config(workdir, k=2, epochs=2, threads=1, plots=False, linear=True)
    assert cli("fit", cfg, "--quiet").exit_code == 0
    root = workdir / "runs" / "t"
    assert "linear" in json.loads((root / "bag.json").read_text())
    for linear in (False, True):
        r = cli("fit", "--resume", "runs/t", f"train.linear={str(linear).lower()}", "--quiet")
        assert r.exit_code == 0, r.output
        assert ("linear" in json.loads((root / "bag.json").read_text())) is linear
        assert ("linear_weight" in json.loads((root / "summary.json").read_text())) is linear
        assert f"linear: {str(linear).lower()}" in (root / "config.yaml").read_text()
    assert cli("fit", "--resume", "runs/t", "train.linear=false", "--quiet").exit_code == 0
    assert cli("fit", "--resume", "runs/t", "--quiet").exit_code == 0  # a plain resume keeps what was asked last
    assert "linear" not in json.loads((root / "bag.json").read_text())


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_a_bags_oof_in_python_holds_its_targets_as_its_predictions_are_held(workdir, cli, task):
    """Bag.oof read every target as text: with classes 0, 1, 2 (predictions the numbers 0, 1, 2) `target ==
    prediction` was never true (accuracy 0 against summary.json's), and a regression's `target - prediction`
    raised TypeError. Targets and predictions are now labels of one kind, or numbers."""
    import nntrain

    cfg = bag_config(workdir, task=task, k=2, epochs=2, threads=1, plots=False)
    assert cli("fit", cfg, "--quiet").exit_code == 0
    bag = nntrain.load("runs/t")
    oof, val = bag.oof, bag.summary["val"]
    assert oof.equals(bag.oof)
    if task == "regression":
        assert oof["target"].dtype == float
        assert ((oof["target"] - oof["prediction"]) ** 2).mean() == pytest.approx(val["mse"], rel=1e-5)
    else:
        assert (oof["target"] == oof["prediction"]).mean() == pytest.approx(val["accuracy"])
        assert set(oof["target"]) <= set(bag.classes) and set(oof["prediction"]) <= set(bag.classes)


def test_a_bag_among_several_resumes_is_refused_by_name(workdir, cli):
    """fit --resume BAG --resume OTHER: two bags raised ValueError (min() of an empty sequence) as a traceback,
    and a bag beside a lone run said 'BAG/last.pt: checkpoint not found: BAG is a bag of 2 members whose
    bag.json is missing' (it is there). A bag resumes alone, and the message says how."""
    cfg = bag_config(workdir, k=2, epochs=2, threads=1, plots=False)
    for name in ("b1", "b2"):
        assert cli("fit", cfg, "--name", name, "--quiet").exit_code == 0
    assert cli("fit", cfg, "--name", "lone", "train.bag=1", "--quiet").exit_code == 0
    files = {p: p.read_bytes() for p in (workdir / "runs").rglob("*") if p.is_file()}
    for other in ("runs/b2", "runs/lone"):
        r = cli("fit", "--resume", "runs/b1", "--resume", other, "train.epochs=3")
        assert r.exit_code == 2, r.output
        assert "--resume runs/b1: a bag resumes alone" in r.stderr and "nntrain fit --resume runs/b1" in r.stderr
    assert {p: p.read_bytes() for p in (workdir / "runs").rglob("*") if p.is_file()} == files


def test_a_bag_resumed_with_nproc_is_refused_before_any_process_starts(workdir, cli):
    """fit --resume BAG --nproc 2 started two processes that each resumed the whole bag: both refinished a
    finished one (its lines twice), and for a stopped one rank 1 died with a traceback while rank 0 trained a
    member (exit 1). A bag trains in one process, as fit --nproc with train.bag says."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2, threads=1, plots=False), "--quiet").exit_code == 0
    files = {p: p.read_bytes() for p in (workdir / "runs").rglob("*") if p.is_file()}
    r = cli("fit", "--resume", "runs/t", "--nproc", "2", "train.epochs=3")
    assert r.exit_code == 2 and "--nproc 2: runs/t is a bag" in r.stderr and "nntrain fit --resume runs/t" in r.stderr
    assert {p: p.read_bytes() for p in (workdir / "runs").rglob("*") if p.is_file()} == files


def test_a_bags_folder_is_a_run_folder_to_predicts_output_and_to_fit(workdir, cli):
    """A bag's folder (no best.pt of its own) was not a run folder to the guards: predict -o BAG/oof.csv --force
    wrote over the out-of-fold predictions (eval then died with KeyError 'target'), and fit BAG said 'the folder
    holds no Parquet file'."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2, threads=1, plots=False), "--quiet").exit_code == 0
    root = workdir / "runs" / "t"
    make_table(5, cat=True).drop(columns="y").to_csv(workdir / "rows.csv", index=False)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for name in ("oof.csv", "calibration.png", "curves.png"):
        command = (
            ("compare", "runs/t", "runs/t/member1") if name.endswith(".png") else ("predict", "runs/t", "rows.csv")
        )
        r = cli(*command, "-o", root / name, "--force")
        assert r.exit_code == 2 and f"{name} belongs to the run folder" in r.stderr, (name, r.output)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    r = cli("fit", "runs/t")
    assert r.exit_code == 2 and "runs/t is a run folder: nntrain fit --resume runs/t trains it on" in r.stderr, r.output


def test_a_members_summary_cut_short_is_named_by_the_bags_resume(workdir, cli):
    """fit --resume BAG with a member's summary.json cut short (a full disk, a copy stopped) raised a
    JSONDecodeError's traceback; the file is named, exit 2."""
    assert cli("fit", bag_config(workdir, k=2, epochs=2, threads=1, plots=False), "--quiet").exit_code == 0
    summary = workdir / "runs" / "t" / "member2" / "summary.json"
    summary.write_text(summary.read_text()[:40])
    r = cli("fit", "--resume", "runs/t")
    assert r.exit_code == 2 and "runs/t/member2/summary.json: not JSON" in r.stderr, r.output


def test_a_regression_bags_oof_targets_are_the_tables_values(workdir, cli):
    """oof.csv's target column came back from the float32 standardized target: 1234567.89 written as
    1234567.8899..., off in the 8th digit (the file's value is not found when oof.csv is joined to it). It is
    the table's value, after a fit and after a resume that finishes the bag again."""
    table = make_table(n=160, task="regression")
    table["y"] = (table["y"] * 1e5).round(2)
    table.to_csv(workdir / "t.csv", index=False)
    cfg = write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"bag": 2, "epochs": 2})
    assert cli("fit", cfg, "train.threads=1", "train.plots=false", "--quiet").exit_code == 0
    oof = pd.read_csv(workdir / "runs" / "t" / "oof.csv")
    assert (oof["target"].to_numpy() == table["y"].to_numpy()[oof["row"]]).all()
    written = (workdir / "runs" / "t" / "oof.csv").read_bytes()
    (workdir / "runs" / "t" / "summary.json").unlink()
    assert cli("fit", "--resume", "runs/t", "--quiet").exit_code == 0
    assert (workdir / "runs" / "t" / "oof.csv").read_bytes() == written


def test_a_bags_rows_line_gives_each_members_validation_size(workdir, cli):
    """128 non-test rows in 5 folds of 25-26: the rows line gave the first member's alone ('val 26'), wrong for
    the members that validate on 25; it now spans them all."""
    r = cli("fit", bag_config(workdir, k=5, epochs=1), "train.plots=false", "train.threads=1", "train.linear=false")
    assert r.exit_code == 0, r.output
    sizes = [len(json.loads((workdir / f"runs/t/member{k}/split.json").read_text())["val"]) for k in range(1, 6)]
    assert min(sizes) < max(sizes)
    assert f"rows: train 102, val {min(sizes)}-{max(sizes)}, test 32;" in r.stdout


def test_the_linear_share_is_chosen_on_the_mixture_as_predict_gives_it_after_its_temperature():
    """Networks trained on smoothed labels are right more often and underconfident until their temperature; the
    share was chosen on the mixture's log loss before the temperature, which gave the linear model more of it
    (phone: the linear model alone). The share chosen now gives the least out-of-fold log loss after it."""
    from nntrain.model.calibration import calibrated, fit_temperature, log_loss
    from nntrain.tools.linear_path import blend_weight

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)

    def proba(p_right: float, right_share: float) -> np.ndarray:
        p = np.where(rng.random(len(y)) < right_share, p_right, 1 - p_right)
        return np.stack([np.where(y == 0, p, 1 - p), np.where(y == 1, p, 1 - p)], axis=1)

    net, lin = proba(0.75, 0.98), proba(0.95, 0.88)

    def served(share: float) -> float:  # the out-of-fold log loss of what predict gives at this share
        mix = (1 - share) * net + share * lin
        return log_loss(calibrated(mix, fit_temperature(mix, y)), y)

    share = blend_weight({"task": "binary"}, y, net, lin, None)
    assert share == pytest.approx(0.4)
    assert served(share) < served(0.65) - 0.02  # 0.65: the share the raw mixtures' log loss chose


@pytest.mark.slow
def test_a_bag_killed_while_lengthened_goes_on_to_its_new_epochs_on_a_plain_resume(workdir):
    """kill -9 during fit --resume BAG train.epochs=N left each member's summary.json of the fit before it
    ('completed' after 4 epochs) beside a last.pt some epochs on and a config.yaml asking N: the plain resume said
    '0 of 2 members to resume' and finished the bag where the kill left it. The members go on to N, as a lone run
    killed while lengthened does."""
    cfg = bag_config(workdir, k=2, epochs=4, threads=1, plots=False, patience=1000)
    assert subprocess.run([*NNTRAIN, "fit", str(cfg), "--quiet"], capture_output=True).returncode == 0
    root = workdir / "runs" / "t"
    proc = subprocess.Popen([*NNTRAIN, "fit", "--resume", "runs/t", "train.epochs=300", "--quiet"])
    deadline = time.time() + 120
    while time.time() < deadline and len(metrics_rows(root / "member1")) < 30:
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    assert len(metrics_rows(root / "member1")) < 300
    r = subprocess.run([*NNTRAIN, "fit", "--resume", "runs/t", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and "2 of 2 members to resume" in r.stderr + r.stdout, r.stderr
    members = [json.loads((root / f"member{k}" / "summary.json").read_text()) for k in (1, 2)]
    assert [m["epochs_run"] for m in members] == [300, 300]
    assert json.loads((root / "summary.json").read_text())["status"] == "completed"
