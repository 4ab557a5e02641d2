"""nntrain.sklearn: the estimators pass scikit-learn's own checks and work in its pipelines, searches and pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from nntrain.errors import UserError
from nntrain.sklearn import NNClassifier, NNRegressor

from .conftest import make_table

FAST = {"train__epochs": 15}


@pytest.mark.slow
@parametrize_with_checks([NNClassifier(), NNRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    """Every check of sklearn.utils.estimator_checks, on the estimators as constructed by default (the tabular
    recipe); README lists the outcome. No expected failures."""
    check(estimator)


def test_a_dataframe_with_text_columns_and_labels_and_missing_values(workdir):
    df = make_table(200, task="binary", cat=True)
    df.loc[::7, "b"] = np.nan
    X, y = df.drop(columns="y"), df["y"]
    clf = NNClassifier(**FAST).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"] and clf.n_features_in_ == 4
    assert list(clf.feature_names_in_) == ["a", "b", "c", "color"]
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="X has 3 features, but NNClassifier is expecting 4"):
        clf.predict(X.to_numpy()[:, :3])


def test_no_run_folder_unless_asked_and_one_where_asked(workdir, tmp_path, monkeypatch):
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    df = make_table(100, task="regression")
    NNRegressor(**FAST).fit(df[["a", "b", "c"]], df["y"])
    left = [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor")]  # torch's cache, not ours
    assert left == [] and not (workdir / "runs").exists()
    kept = NNRegressor(run_dir=str(workdir / "keep"), **FAST).fit(df[["a", "b", "c"]], df["y"])
    assert kept.run_.run_dir.name == "NNRegressor" and (workdir / "keep" / "NNRegressor" / "best.pt").is_file()
    assert kept.run_.summary["rows"] == {"train": 90, "val": 10, "test": 0}  # fit(X, y) trains on every row but val


def test_overrides_are_parameters_for_clone_set_params_and_a_search(workdir):
    df = make_table(150)
    X, y = df[["a", "b", "c"]].to_numpy(), df["y"].to_numpy()
    clf = NNClassifier(optimizer__lr=0.01, **FAST)
    assert clf.get_params() == {"config": None, "run_dir": None, "verbose": False, "optimizer__lr": 0.01, **FAST}
    assert clone(clf).get_params() == clf.get_params()
    assert clf.set_params(model__hidden=[16]).model__hidden == [16]
    search = GridSearchCV(clf, {"optimizer__lr": [0.003, 0.03]}, cv=2).fit(X, y)
    assert search.best_params_["optimizer__lr"] in (0.003, 0.03)
    trained = search.best_estimator_.run_.summary["config"]
    assert trained["optimizer"]["lr"] == search.best_params_["optimizer__lr"] and trained["model"]["hidden"] == [16]
    scores = cross_val_score(NNClassifier(**FAST), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7


def test_a_fitted_estimator_pickles_and_predicts_the_same(workdir):
    df = make_table(120, task="regression")
    reg = NNRegressor(**FAST).fit(df[["a", "b", "c"]], df["y"])
    back = pickle.loads(pickle.dumps(reg))
    assert np.array_equal(back.predict(df[["a", "b", "c"]]), reg.predict(df[["a", "b", "c"]]))
    assert reg.score(df[["a", "b", "c"]], df["y"]) > 0.8


def test_a_config_file_and_its_errors_as_value_errors(workdir):
    import yaml

    (workdir / "c.yaml").write_text(yaml.safe_dump({"model": {"hidden": [8]}, "train": {"epochs": 3}}))
    df = make_table(100)
    clf = NNClassifier(str(workdir / "c.yaml")).fit(df[["a", "b"]], df["y"])
    assert clf.run_.config.model.hidden == [8] and clf.run_.config.train.epochs == 3
    with pytest.raises(ValueError, match=r"optimizer\.lrr"):
        NNClassifier(optimizer__lrr=0.1).fit(df[["a", "b"]], df["y"])
    with pytest.raises(ValueError, match="y has one class"):
        NNClassifier().fit(df[["a", "b"]], np.zeros(100))
    with pytest.raises(ValueError, match="requires y"):
        NNRegressor().fit(df[["a", "b"]], None)
    X = df[["a", "b"]].rename(columns={"a": "target"})  # a feature may bear the name the target column would
    assert pd.api.types.is_float_dtype(NNRegressor(**FAST).fit(X, df["b"]).predict(X))


def test_a_run_fitted_without_run_dir_explains_from_memory_and_says_what_export_needs(workdir):
    """Issue 26 (23): run_.export() and run_.explain() named the removed temporary folder."""
    from nntrain.errors import UserError

    df = make_table(120, task="binary")
    X, y = df[["a", "b", "c"]], df["y"]
    clf = NNClassifier(**FAST).fit(X, y)
    with pytest.raises(UserError, match="an estimator fitted without run_dir .* give output=FILE"):
        clf.run_.export()
    with pytest.raises(UserError, match="give data="):
        clf.run_.explain()
    result = clf.run_.explain(X.assign(target=(y == "yes").astype(int)), repeats=2)
    assert sorted(result["table"]["column"]) == ["a", "b", "c"] and result["files"] == []
    assert list(workdir.iterdir()) == []


@pytest.mark.slow  # the ONNX export's first import
def test_a_run_fitted_without_run_dir_exports_from_memory_to_a_named_file(workdir):
    import onnxruntime as ort

    df = make_table(120, task="binary")
    X, y = df[["a", "b", "c"]], df["y"]
    clf = NNClassifier(**FAST).fit(X, y)
    clf.predict_proba(X)  # the model in memory is now float64: the export is built from its float32 weights
    out = clf.run_.export(output=workdir / "m.onnx")
    assert out == workdir / "m.onnx" and (workdir / "m.onnx.json").is_file()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (proba,) = session.run(None, {"features": X.to_numpy(np.float64)})
    assert np.allclose(proba, clf.predict_proba(X), atol=1e-4)


def test_an_interrupt_during_fit_stops_a_search_and_names_no_removed_folder(workdir, monkeypatch):
    """Issue 26 (8): Ctrl-C became a ValueError that GridSearchCV recorded as one failed fit and went on."""
    import signal
    import tempfile
    from pathlib import Path

    import nntrain.api
    from nntrain.engine.stopping import Interrupted

    def interrupted(config, overrides, **kw):
        raise Interrupted(signal.SIGINT, Path(overrides["runs_dir"]) / "NNClassifier", epoch=4)

    df = make_table(120)
    X, y = df[["a", "b", "c"]], df["y"]
    monkeypatch.setattr(nntrain.api, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt) as e:
        GridSearchCV(NNClassifier(**FAST), {"optimizer__lr": [0.01, 0.02]}, cv=2).fit(X, y)
    assert "SIGINT at epoch 5" in str(e.value) and "run_dir=" in str(e.value)
    assert tempfile.gettempdir() not in str(e.value)
    with pytest.raises(KeyboardInterrupt, match="nntrain fit --resume .*keep/NNClassifier"):
        NNClassifier(run_dir=str(workdir / "keep"), **FAST).fit(X, y)


def test_a_bag_asked_of_an_estimator_predicts_the_members_mean_and_pickles(workdir):
    import nntrain

    df = make_table(200)
    X, y = df[["a", "b", "c"]], df["y"]
    clf = NNClassifier(train__bag=3, train__epochs=3, train__threads=1).fit(X, y)
    assert isinstance(clf.run_, nntrain.Bag) and len(clf.run_.metrics["member"].unique()) == 3
    proba = clf.predict_proba(X)
    assert proba.shape == (200, len(clf.classes_)) and np.allclose(proba.sum(axis=1), 1)
    assert np.allclose(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba)
    assert isinstance(NNClassifier(train__epochs=1).fit(X, y).run_, nntrain.Run)  # the recipe alone: one model


TINY = {"train__epochs": 3, "train__plots": False, "train__threads": 1}


def test_x_and_y_of_different_lengths_or_x_without_columns_are_value_errors_naming_them(workdir):
    df = make_table(120, task="binary")
    with pytest.raises(ValueError, match=r"X has 110 rows but y has 120 values"):
        NNClassifier(**TINY).fit(df[["a", "b"]].iloc[:110], df["y"])
    with pytest.raises(ValueError, match=r"X has 120 rows but y has 100 values"):
        NNRegressor(**TINY).fit(df[["a", "b"]].to_numpy(), df["a"].to_numpy()[:100])
    with pytest.raises(ValueError, match=r"X has no columns \(shape=\(120, 0\)\)") as bare:
        NNClassifier(**TINY).fit(pd.DataFrame(index=range(120)), df["y"])
    assert ".parquet" not in str(bare.value) and "data.path" not in str(bare.value)


def test_a_column_of_mixed_python_values_is_read_as_text(workdir):
    """pyarrow refused it ("cannot be stored as Parquet"); a CSV file of it reads as text, and so does X."""
    df = make_table(120, task="binary")
    X = df[["a", "b"]].assign(m=pd.Series([1, "x", 2.5, None] * 30, dtype=object))
    clf = NNClassifier(**TINY).fit(X, df["y"])
    assert clf.run_._prep["kinds"]["m"] == "categorical" and clf.predict_proba(X).shape == (120, 2)


def test_set_params_refuses_a_key_the_config_has_not_as_scikit_learn_does():
    clf = NNClassifier()
    with pytest.raises(ValueError, match=r"Invalid parameter 'model__hiddne' .*model\.hiddne is no config key"):
        clf.set_params(model__hiddne=[8])
    with pytest.raises(ValueError, match=r"train\.epochs is a value, not a section"):
        clf.set_params(train__epochs__x=1)
    assert "model__hiddne" not in clf.get_params()
    assert clf.set_params(model__activation__negative_slope=0.1).get_params()["model__activation__negative_slope"]


def test_labels_with_a_missing_one_are_a_value_error_naming_the_row(workdir):
    df = make_table(60, task="binary")
    y = df["y"].astype(object)
    y.iloc[7] = None
    with pytest.raises(ValueError, match=r"y is missing at 1 row\(s\) \(first: row 7\)"):
        NNClassifier(**TINY).fit(df[["a", "b"]], y)


def test_an_interval_level_out_of_range_names_the_argument_not_a_flag(workdir):
    df = make_table(120)
    reg = NNRegressor(**TINY).fit(df[["a", "b"]], df["a"] * 2)
    with pytest.raises(ValueError, match=r"^level 1.5: give the coverage as a fraction between 0 and 1"):
        reg.predict_interval(df[["a", "b"]], 1.5)
    with pytest.raises(UserError, match=r"^sets is for a classifier; a regression's runs give intervals: interval="):
        reg.run_.predict(df[["a", "b"]], sets=0.9)


@pytest.mark.parametrize(("dtype", "classes"), [("Int64", [0, 1]), ("boolean", [False, True])])
def test_a_nullable_y_gives_its_own_classes_not_floats(workdir, dtype, classes):
    df = make_table(80, task="binary")
    y = pd.Series((df["a"] > 0).astype(int), dtype=dtype)
    clf = NNClassifier(**TINY).fit(df[["a", "b"]], y)
    assert clf.classes_.tolist() == classes and clf.classes_.dtype.kind in "ib"
    assert set(clf.predict(df[["a", "b"]]).tolist()) <= set(classes) and clf.predict(df[["a", "b"]]).dtype.kind in "ib"


def test_an_array_after_a_frame_and_a_frame_after_an_array_predict_by_position_as_scikit_learn_does(workdir):
    """Fitted on an array, predict(a DataFrame) said "input lacks column(s) 'x0', 'x1'", names the user never
    gave; fitted on a DataFrame, predict(its array) said the columns were missing. scikit-learn's estimators
    warn that the feature names differ and predict by position: so do these, with the same predictions."""
    df = make_table(120, task="binary", cat=True)
    X = df[["a", "b", "color"]]
    on_frame = NNClassifier(**TINY).fit(X, df["y"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        by_position = on_frame.predict_proba(X.to_numpy())
    np.testing.assert_allclose(by_position, on_frame.predict_proba(X), rtol=0, atol=1e-12)
    on_array = NNRegressor(**TINY).fit(X[["a", "b"]].to_numpy(), df["a"].to_numpy())
    with pytest.warns(UserWarning, match="X has feature names, but NNRegressor was fitted without"):
        named = on_array.predict(X[["a", "b"]])
    np.testing.assert_allclose(named, on_array.predict(X[["a", "b"]].to_numpy()), rtol=0, atol=1e-12)


def test_an_object_array_of_a_frame_with_nullable_columns_reads_pd_na_as_missing(workdir):
    """A frame with Int64 / string columns given as its array (X.to_numpy()) holds pd.NA where a value is missing:
    it was refused ("argument must be a string or a real number, not 'NAType'"), while None and NaN were read as
    missing and the frame itself trained."""
    df = make_table(120, task="binary")
    X = df[["a"]].assign(n=pd.Series(np.arange(120) % 5, dtype="Int64"), t=pd.Series(["u", "v"] * 60, dtype="string"))
    X.loc[3, "n"], X.loc[4, "t"] = pd.NA, pd.NA
    array = X.to_numpy()
    assert array.dtype == object and array[3, 1] is pd.NA
    clf = NNClassifier(**TINY).fit(array, df["y"])
    assert clf.run_._prep["kinds"] == {"x0": "numeric", "x1": "numeric", "x2": "categorical"}
    proba = clf.predict_proba(array)
    assert proba.shape == (120, 2) and np.isfinite(proba).all()
    with pytest.raises(TypeError, match="not 'dict'"):  # what is no value at all is still refused
        clf.predict(np.array([[0.5, 1, {}]], dtype=object))


def test_labels_of_mixed_types_are_a_value_error_naming_the_types(workdir):
    """y of 1s and 'a's: np.unique raised TypeError "'<' not supported between instances of 'int' and 'str'";
    scikit-learn's own classifiers raise a ValueError for such labels, and so does this one, naming the types."""
    df = make_table(60, task="binary")
    y = np.array([1 if v == "yes" else "a" for v in df["y"]], dtype=object)
    for first in ("a", 1):  # a str first reached np.unique; an int first, scikit-learn's "Unknown label type"
        y[0] = first
        with pytest.raises(ValueError, match=r"^y mixes labels of types int and str, which cannot be ordered: "):
            NNClassifier(**TINY).fit(df[["a", "b"]], y)


def test_verbose_says_the_run_folder_it_printed_is_removed_unless_run_dir_keeps_it(workdir, capsys):
    """verbose=True printed 'run folder: /tmp/nntrain-.../NNClassifier' and nothing more of it: that folder is gone
    once fit returns. The output now ends by saying so; with run_dir the folder printed is kept."""
    df = make_table(60, task="binary")
    NNClassifier(**TINY, verbose=True).fit(df[["a", "b"]], df["y"])
    out = capsys.readouterr().out
    shown = next(line for line in out.splitlines() if line.startswith("run folder: ")).removeprefix("run folder: ")
    assert not Path(shown).exists()
    assert out.rstrip().endswith(
        f"{shown}: removed, it was a temporary one; fit with run_dir=... to keep a resumable run"
    )
    NNClassifier(**TINY, verbose=True, run_dir=str(workdir / "kept")).fit(df[["a", "b"]], df["y"])
    out = capsys.readouterr().out
    assert "removed" not in out and (workdir / "kept" / "NNClassifier" / "config.yaml").is_file()
