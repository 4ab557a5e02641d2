"""Calibration (model/calibration.py): a bag's probabilities carry a temperature fitted on its out-of-fold rows;
it agrees with scikit-learn's temperature scaling, never makes the held-out log loss worse, and reaches eval,
predict, the ONNX export and the bag's plots."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from nntrain.model.calibration import calibrated, ece, fit_temperature, log_loss

from .conftest import make_table, write_config


class Sharpened(ClassifierMixin, BaseEstimator):
    """A fitted classifier's probabilities raised to the third power: over-confident, by T = 3."""

    def __init__(self, model=None):
        self.model = model

    def fit(self, X, y):
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, X):
        return calibrated(self.model.predict_proba(X), 1 / 3)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_the_temperature_undoes_over_confidence_as_scikit_learns_does():
    import inspect

    from sklearn.calibration import CalibratedClassifierCV

    if "temperature" not in inspect.getsource(CalibratedClassifierCV):
        pytest.skip("scikit-learn's temperature scaling came in 1.8 (Python 3.11 and later)")
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3))
    y = (X[:, 0] + rng.normal(size=3000) > 0).astype(int) + (X[:, 1] + rng.normal(size=3000) > 0.5)
    sharp = Sharpened(LogisticRegression().fit(X[:1000], y[:1000])).fit(X, y)
    held = sharp.predict_proba(X[1000:2000])
    t = fit_temperature(held, y[1000:2000])
    assert 2.5 < t < 3.5 and log_loss(calibrated(held, t), y[1000:2000]) < log_loss(held, y[1000:2000])
    theirs = CalibratedClassifierCV(FrozenEstimator(sharp), method="temperature").fit(X[1000:2000], y[1000:2000])
    ours = calibrated(sharp.predict_proba(X[2000:]), t)
    assert np.abs(ours - theirs.predict_proba(X[2000:])).max() < 0.01
    assert ece(ours, y[2000:]) < ece(sharp.predict_proba(X[2000:]), y[2000:])


def test_log_losses_of_a_near_perfect_model_print_apart_in_fit_and_eval():
    """A near-perfect model's log losses before and after its temperature (0.00031 -> 0.00028) printed
    '0.0003 -> 0.0003' in fit's line and eval's: a change that read as none. They print as the metrics do."""
    from nntrain.cli.inspect import calibration_shown
    from nntrain.engine.finish import calibration_line

    said = {"temperature": 0.9, "rows": 500, "val_log_loss": [0.00031, 0.00028], "test_log_loss": [0.0412, 0.0398]}
    assert "log loss val 0.00031 -> 0.00028, test 0.0412 -> 0.0398;" in calibration_line(said)
    report = {"temperature": 0.9, "fitted_on": "the validation rows", "before": {}, "after": {}}
    for k, (a, b) in {"log_loss": (0.00031, 0.00028), "brier": (0.0001, 0.00009), "ece": (0.02, 0.01)}.items():
        report["before"][k], report["after"][k] = a, b
    assert calibration_shown(report) == (
        "calibration (temperature 0.9, fitted on the validation rows): log_loss 0.00031 -> 0.00028, "
        "brier 0.0001 -> 9e-05, ece 0.0200 -> 0.0100"
    )


def test_a_temperature_that_does_not_help_is_one():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), size=500)
    y = np.array([rng.choice(3, p=row) for row in p])  # calibrated by construction
    t = fit_temperature(p, y)
    assert 0.8 < t < 1.25 and log_loss(calibrated(p, t), y) <= log_loss(p, y)


def test_a_bags_temperature_reaches_eval_predict_oof_and_the_onnx_export(workdir, cli):
    make_table(n=300, task="multiclass", cat=True).to_csv("t.csv", index=False)
    path = write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"epochs": 40, "bag": 3})
    assert cli("fit", path, "--quiet", "train.plots=true").exit_code == 0
    root = workdir / "runs" / "t"
    plan = json.loads((root / "bag.json").read_text())
    t = plan["temperature"]
    assert t != 1.0 and (root / "calibration.png").is_file()
    report = json.loads(cli("eval", root, "--json").output)
    c = report["calibration"]
    assert c["temperature"] == t and c["after"]["log_loss"] == pytest.approx(report["metrics"]["loss"])
    assert "calibration (temperature" in cli("eval", root).output
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", root, "t.csv").output))
    proba = out[[c for c in out.columns if c.startswith("proba_")]].to_numpy()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["temperature"] == t
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    assert cli("export", root).exit_code == 0
    frame = pd.read_csv("t.csv")
    got = ort.InferenceSession(str(root / "model.onnx")).run(
        None, {"features": frame[["a", "b", "c"]].to_numpy(np.float64), "strings": frame[["color"]].to_numpy(object)}
    )[0]
    assert np.abs(got - proba).max() < 1e-4


@pytest.mark.parametrize(("task", "extra"), [("multiclass", {}), ("binary", {"loss": {"name": "bce"}})])
def test_a_lone_runs_temperature_is_fitted_on_its_validation_rows_and_reaches_predict_eval_and_onnx(
    workdir, cli, task, extra
):
    from nntrain.data.reread import load_encoded
    from nntrain.model.calibration import fit_temperature
    from nntrain.runs.checkpoints import load_checkpoint
    from nntrain.tools.inference import load_run, raw_scores

    make_table(n=400, task=task).to_csv("t.csv", index=False)
    train = {"epochs": 60, "plots": True}
    data = {"target": "y", "val_size": 0.35}  # 112 validation rows: a temperature needs 100
    path = write_config(workdir / "c.yaml", "t.csv", data=data, train=train, **extra)
    r = cli("fit", path)
    assert r.exit_code == 0, r.output
    root = workdir / "runs" / "t"
    t = load_checkpoint(root / "best.pt")["temperature"]
    run = load_run(root)
    val = load_encoded(run.prep, rows=json.loads((root / "split.json").read_text())["val"])
    assert t == fit_temperature(raw_scores(run, val.X), val.y) != 1.0  # fitted on the validation rows
    assert f"calibration: temperature {t:g}, fitted on the {len(val.y)} validation rows" in r.output
    assert json.loads((root / "summary.json").read_text())["calibration"]["temperature"] == t
    assert (root / "calibration.png").is_file()
    frame = pd.read_csv("t.csv")
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", root, "t.csv").output))
    proba = out[[c for c in out.columns if c.startswith("proba_")]].to_numpy()
    expected = calibrated(raw_scores(run, load_encoded(run.prep).X), t)
    assert np.abs(proba - expected).max() < 1e-6
    report = json.loads(cli("eval", root, "--json").output)
    c = report["calibration"]
    assert c["temperature"] == t and c["after"]["log_loss"] == pytest.approx(report["metrics"]["loss"])
    assert "fitted on the validation rows" in cli("eval", root).output
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    assert cli("export", root).exit_code == 0
    got = ort.InferenceSession(str(root / "model.onnx")).run(
        None, {"features": frame[["a", "b", "c"]].to_numpy(np.float64)}
    )
    assert np.abs(got[0] - proba).max() < 1e-4


def test_a_few_validation_rows_fit_no_temperature_and_the_run_says_so(workdir, cli):
    from nntrain.runs.checkpoints import load_checkpoint

    make_table(n=300, task="multiclass").to_csv("t.csv", index=False)
    path = write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"epochs": 20})
    r = cli("fit", path)
    assert r.exit_code == 0, r.output
    root = workdir / "runs" / "t"
    val = len(json.loads((root / "split.json").read_text())["val"])
    assert f"calibration: none, {val} validation rows are fewer than the 100 a temperature needs" in r.output
    assert "temperature" not in load_checkpoint(root / "best.pt")
    assert "calibration" not in json.loads((root / "summary.json").read_text())


def test_a_bags_members_carry_no_temperature_of_their_own(workdir, cli):
    from nntrain.runs.checkpoints import load_checkpoint

    make_table(n=300, task="multiclass").to_csv("t.csv", index=False)
    path = write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"epochs": 40, "bag": 3})
    assert cli("fit", path, "--quiet").exit_code == 0
    members = sorted((workdir / "runs" / "t").glob("member*/best.pt"))
    assert len(members) == 3 and all("temperature" not in load_checkpoint(p) for p in members)


def test_the_brier_score_is_scikit_learns_for_two_classes_and_the_sum_over_classes_beyond():
    from sklearn.metrics import brier_score_loss

    from nntrain.model.calibration import brier

    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1], 200)
    y = rng.integers(0, 2, 200)
    assert brier(p, y) == pytest.approx(brier_score_loss(y, p[:, 1]))
    p3, y3 = rng.dirichlet([1, 1, 1], 200), rng.integers(0, 3, 200)
    assert brier(p3, y3) == pytest.approx(np.mean(np.sum((p3 - np.eye(3)[y3]) ** 2, axis=1)))
