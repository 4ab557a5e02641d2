"""Intervals and sets from held-out rows (tools/conformal.py): CV+ for a bag's out-of-fold rows, split conformal
for a run's validation rows, LAC sets; checked against MAPIE on the same fold models, and through predict, eval
and the Python API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nntrain.tools.conformal import cv_plus, lac_sets, split_interval

from .conftest import make_table, write_config


def folds_of(n: int, k: int) -> list[np.ndarray]:
    return np.array_split(np.arange(n), k)


def test_cv_plus_agrees_with_mapies_cross_conformal_regressor_on_the_same_fold_models():
    mapie = pytest.importorskip("mapie.regression")
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(203, 3)), rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.standard_t(3, size=203)
    cv = KFold(n_splits=5)
    preds, residuals = [], []
    for train, fold in cv.split(X):
        m = LinearRegression().fit(X[train], y[train])
        residuals.append(np.abs(y[fold] - m.predict(X[fold])))
        preds.append(m.predict(Xt))
    lower, upper = cv_plus(preds, residuals, 0.9)
    theirs = mapie.CrossConformalRegressor(LinearRegression(), confidence_level=0.9, method="plus", cv=cv)
    _, bounds = theirs.fit_conformalize(X, y).predict_interval(Xt)
    assert np.allclose(lower, bounds[:, 0, 0]) and np.allclose(upper, bounds[:, 1, 0])


def test_lac_sets_agree_with_mapies_split_conformal_classifier():
    mapie = pytest.importorskip("mapie.classification")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 2))
    y = (X[:, 0] + rng.normal(scale=0.8, size=600) > 0).astype(int) + (X[:, 1] > 0.7)
    model = LogisticRegression().fit(X[:300], y[:300])
    calib, test = slice(300, 500), slice(500, 600)
    true = model.predict_proba(X[calib])[np.arange(200), y[calib]]
    ours = lac_sets(model.predict_proba(X[test]), true, 0.9)
    theirs = mapie.SplitConformalClassifier(model, confidence_level=0.9, prefit=True)
    _, sets = theirs.conformalize(X[calib], y[calib]).predict_set(X[test])
    assert (ours == sets[:, :, 0]).all()
    assert not sets[:, :, 0].all(axis=1).any()  # the sets differ in size: the check has something to compare


def test_split_interval_is_the_conformal_rank_of_the_residuals_and_refuses_too_few_rows():
    residuals = np.arange(1.0, 20.0)  # 19 rows: the 90% rank is ceil(20 * 0.9) = 18
    lower, upper = split_interval(np.array([100.0]), residuals, 0.9)
    assert lower[0] == 82.0 and upper[0] == 118.0
    from nntrain.errors import UserError

    with pytest.raises(UserError, match=r"19 held-out rows give no finite bound at that level \(at most 0.950\)"):
        split_interval(np.array([0.0]), residuals, 0.96)


def test_a_bags_intervals_come_from_its_members_and_eval_reports_their_coverage(workdir, cli):
    rng = np.random.default_rng(0)
    frame = make_table(n=400, task="regression")
    frame["y"] = frame["a"] * 3 + rng.normal(size=400)
    frame.to_csv("t.csv", index=False)
    path = write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"epochs": 15, "bag": 4})
    assert cli("fit", path, "--quiet").exit_code == 0
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", "runs/t", "t.csv", "--interval", "0.9").output))
    assert list(out.columns) == ["prediction", "lower", "upper"]
    assert (out["lower"] < out["prediction"]).all() and (out["prediction"] < out["upper"]).all()
    test = json.loads((workdir / "runs" / "t" / "split.json").read_text())["test"]
    inside = ((frame["y"] >= out["lower"]) & (frame["y"] <= out["upper"])).to_numpy()[test]
    report = json.loads(cli("eval", "runs/t", "--json").output)
    assert report["conformal"]["coverage"] == pytest.approx(inside.mean())
    assert 0.8 <= inside.mean() <= 0.98 and report["conformal"]["level"] == 0.9
    r = cli("eval", "runs/t")
    assert "90% intervals (predict --interval 0.9): coverage" in r.output and "CV+ on the out-of-fold rows" in r.output


def test_a_runs_sets_hold_its_prediction_and_come_through_the_python_api(workdir, cli):
    import nntrain

    make_table(n=300, task="multiclass").to_csv("t.csv", index=False)
    assert (
        cli("fit", write_config(workdir / "c.yaml", "t.csv", data={"target": "y"}, train={"epochs": 10})).exit_code == 0
    )
    run = nntrain.load("runs/t")
    out = run.predict("t.csv", sets=0.8)
    held = out[out["set_size"] >= 1]  # a non-empty set holds the top class; an empty one is written as ""
    assert len(held) > 200 and all(str(p) in s.split(" | ") for p, s in zip(held["prediction"], held["set"]))
    assert (out.loc[out["set_size"] == 0, "set"].fillna("") == "").all()
    assert run.report()["conformal"]["mean_set_size"] > 0.5
    wide = run.predict("t.csv", sets=0.95)
    assert (wide["set_size"] >= out["set_size"]).all()  # a higher level never gives a smaller set


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "1.5"], "--interval 1.5: give the coverage as a fraction between 0 and 1"),
        (["--interval", "0.05"], "--interval 0.05: the share of rows to hold the truth, from 0.5 up (for 95%, write"),
        (["--sets", "0.9"], "--sets is for a classifier; a regression's runs give intervals: --interval LEVEL"),
        (
            ["--interval", "0.999"],
            "--interval 0.999: 13 held-out rows give no finite bound at that level (at most 0.929)",
        ),
    ],
)
def test_bad_levels_are_refused_by_name(workdir, cli, args, message):
    make_table(n=160, task="regression").to_csv("t.csv", index=False)
    assert cli("fit", write_config(workdir / "c.yaml", "t.csv", data={"target": "y"})).exit_code == 0
    r = cli("predict", "runs/t", "t.csv", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_the_estimators_give_intervals_and_sets_after_their_temporary_folder_is_gone(workdir):
    import pickle

    from nntrain.sklearn import NNClassifier, NNRegressor

    df = make_table(n=300, task="regression")
    reg = NNRegressor(train__epochs=5, train__threads=1).fit(df[["a", "b", "c"]], df["y"])
    bounds = pickle.loads(pickle.dumps(reg)).predict_interval(df[["a", "b", "c"]], level=0.8)
    pred = reg.predict(df[["a", "b", "c"]])
    assert bounds.shape == (300, 2) and (bounds[:, 0] <= pred).all() and (pred <= bounds[:, 1]).all()
    df = make_table(n=300, task="multiclass")
    clf = NNClassifier(train__epochs=5, train__threads=1).fit(df[["a", "b", "c"]], df["y"])
    sets = clf.predict_set(df[["a", "b", "c"]], level=0.9)
    labels = clf.predict(df[["a", "b", "c"]])
    assert sets.shape == (300, len(clf.classes_))
    assert all(row[list(clf.classes_).index(p)] for row, p in zip(sets, labels))
