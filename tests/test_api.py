"""The Python API: nntrain.fit / resume / load and the Run they give, against what the CLI does with the same run."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

import nntrain
from nntrain.errors import ConfigError, UserError

from .conftest import NNTRAIN, make_table, write_config

SMALL = {"model": {"hidden": [8]}, "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 3, "batch_size": 16}}


def small(**data) -> dict:
    return {"name": "api", **SMALL, "data": {"target": "y", **data}}


def test_import_nntrain_imports_no_torch_and_fit_is_there():
    code = "import sys, nntrain; f = nntrain.fit; print('torch' in sys.modules, callable(f))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "True"], r.stderr


def test_fit_a_dataframe_returns_a_run_with_summary_metrics_evaluate_and_predict(workdir):
    df = make_table(150, cat=True)
    run = nntrain.fit(small(), data=df, log=None)
    assert run.run_dir.resolve() == workdir / "runs" / "api"
    assert run.summary["status"] == "completed" and run.summary["rows"]["test"] == 30
    assert list(run.metrics["epoch"]) == [1, 2, 3] and {"train_loss", "val_loss", "lr"} <= set(run.metrics)
    assert run.evaluate() == pytest.approx(run.summary["test"])  # the test split, from split.json
    # the frame was stored once as Parquet under runs/.data; the run folder names it
    stored = list((workdir / "runs" / ".data").glob("*.parquet"))
    assert len(stored) == 1 and run.summary["data"]["source"] == str(stored[0].resolve())
    out = run.predict(df.drop(columns="y").head(5))
    assert list(out.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
    assert np.allclose(out.filter(like="proba_").sum(axis=1), 1.0)


def test_load_gives_the_same_run_and_what_the_cli_prints(workdir, cli):
    df = make_table(150, task="binary")
    run = nntrain.fit(small(), data=df, log=None)
    again = nntrain.load(run.run_dir)
    assert again.summary == run.summary and again.metrics.equals(run.metrics)
    r = subprocess.run(
        [*NNTRAIN, "eval", str(run.run_dir), "--json"], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"] == pytest.approx(again.evaluate())
    df.head(7).to_csv(workdir / "rows.csv", index=False)
    r = subprocess.run(
        [*NNTRAIN, "predict", str(run.run_dir), "rows.csv"], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    cli_rows = pd.read_csv(pd.io.common.StringIO(r.stdout))
    api_rows = again.predict(df.head(7))
    assert list(cli_rows["prediction"]) == list(api_rows["prediction"])
    assert np.allclose(cli_rows["proba_yes"], api_rows["proba_yes"])
    assert json.loads(cli("params", run.run_dir, "--json").stdout) == again.params()
    assert again.params()["total"] == (3 * 8 + 8) + (8 * 2 + 2)  # 3 inputs -> 8 -> 2 classes


def test_a_config_file_with_overrides_as_a_dict_or_a_list(workdir, table_csv):
    path = write_config(workdir / "c.yaml", table_csv())
    by_dict = nntrain.fit(path, {"train.epochs": 2, "model.hidden": [4, 4]}, log=None)
    assert by_dict.summary["epochs_run"] == 2 and by_dict.config.model.hidden == [4, 4]
    by_list = nntrain.fit(str(path), ["train.epochs=2", "model.hidden=[4, 4]"], log=None)
    assert by_list.summary["config"] == {**by_dict.summary["config"], "name": by_list.config.name}
    assert by_list.run_dir.name == "t-2"  # the second run of the same name, as with the CLI


def test_errors_are_raised_with_the_cli_messages(workdir, table_csv, cli):
    path = write_config(workdir / "c.yaml", table_csv())
    with pytest.raises(ConfigError) as api_error:
        nntrain.fit(path, {"optimizer.lr": -1}, log=None)
    r = cli("fit", path, "optimizer.lr=-1")
    assert r.exit_code == 2 and str(api_error.value) in r.output
    with pytest.raises(UserError, match="data.target=nope: no such column"):
        nntrain.fit(small(target="nope"), data=make_table(), log=None)
    assert not (workdir / "runs" / "api").exists()
    assert list((workdir / "runs" / ".data").glob("*")) == []  # the frame stored for a fit that never started
    with pytest.raises(UserError, match="not a run folder"):
        nntrain.load(workdir)
    run = nntrain.fit(small(), data=make_table(), log=None)
    with pytest.raises(UserError, match="checkpoint=middle: choose best or last"):
        nntrain.load(run.run_dir, "middle")


def test_unknown_levels_at_predict_time_come_as_data_warnings(workdir):
    df = make_table(150, cat=True)
    run = nntrain.fit(small(), data=df, log=None)
    new = df.drop(columns="y").head(3).assign(color=["red", "purple", "green"])
    with pytest.warns(nntrain.DataWarning, match="purple"):
        out = run.predict(new)
    assert len(out) == 3
    with pytest.raises(UserError, match="purple"):
        run.predict(new, strict=True)


def test_a_run_pickles_with_its_model_and_predicts_the_same(workdir):
    df = make_table(120, task="regression")
    run = nntrain.fit(small(), data=df, log=None)
    back = pickle.loads(pickle.dumps(run))
    assert back.summary == run.summary
    assert np.array_equal(back.predict(df).to_numpy(), run.predict(df).to_numpy())


def test_resume_through_the_api_continues_the_run(workdir):
    df = make_table(120)
    run = nntrain.fit(small(), data=df, log=None)
    longer = nntrain.resume(run.run_dir, {"train.epochs": 5}, log=None)
    assert longer.run_dir == run.run_dir and list(longer.metrics["epoch"]) == [1, 2, 3, 4, 5]


def test_no_test_split_trains_on_the_rest_and_says_so(workdir, cli):
    lines = []
    run = nntrain.fit(small(test_size=0), data=make_table(100), log=lines.append)
    assert run.summary["rows"] == {"train": 90, "val": 10, "test": 0} and run.summary["test"] == {}
    assert any("no test split (data.test_size=0)" in line for line in lines)
    r = cli("eval", run.run_dir)
    assert r.exit_code == 2 and "has no test split (data.test_size=0)" in r.output
    assert run.evaluate(make_table(40, seed=1))["accuracy"] > 0.5


def test_bad_arguments_name_what_to_give(workdir):
    with pytest.raises(UserError, match="config: give a YAML path, a dict or a Config"):
        nntrain.fit(42, log=None)
    with pytest.raises(UserError, match="data: give a pandas DataFrame or a file path"):
        nntrain.fit(small(), data=[1, 2, 3], log=None)
    with pytest.raises(UserError, match="overrides: give a list"):
        nntrain.fit(small(), "optimizer.lr=0.1", data=make_table(), log=None)
    with pytest.raises(UserError, match="duplicate column names"):
        nntrain.fit(small(), data=pd.DataFrame([[1, 2, 3]], columns=["a", "a", "y"]), log=None)


def test_sweep_and_cv_name_the_argument_of_a_wrong_type(workdir, table_csv):
    """nntrain.sweep and nntrain.cv given an argument of the wrong type raised TypeError or AttributeError from
    deep inside ('<=' not supported between 'int' and 'str'; 'int' object has no attribute 'startswith'), or ran
    nothing (batch=-1). Each is refused as fit refuses its own, naming the argument; nothing is written."""
    path = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 1})
    refused = {
        "folds: give a whole number of folds, not str": lambda: nntrain.cv(path, folds="5", log=None),
        "folds: give a whole number of folds, not NoneType": lambda: nntrain.cv(path, folds=None, log=None),
        "folds: give a whole number of folds, not bool": lambda: nntrain.cv(path, folds=True, log=None),
        "resume: give a cv folder's path": lambda: nntrain.cv(None, resume=5, log=None),
        "overrides: give a list": lambda: nntrain.cv(path, "train.epochs=2", log=None),
        "config: give a YAML path with a sweep: section, not dict": lambda: nntrain.sweep({"a": 1}, log=None),
        "overrides: give a list ": lambda: nntrain.sweep(path, "train.epochs=2", log=None),
        "trials: give a whole number of at least 1": lambda: nntrain.sweep(path, trials="3", log=None),
        "trials: give a whole number of at least 1, or None (sweep.trials), not 0": lambda: nntrain.sweep(
            path, trials=0, log=None
        ),
        "storage: give a database URL": lambda: nntrain.sweep(path, storage=5, log=None),
        "study: give a name": lambda: nntrain.sweep(path, study=5, log=None),
        "batch: give a whole number of at least 1, or None (16), not str": lambda: nntrain.sweep(
            path, batch="2", log=None
        ),
        "batch: give a whole number of at least 1, or None (16), not -1": lambda: nntrain.sweep(
            path, batch=-1, log=None
        ),
        "grid: give True or False, not str": lambda: nntrain.sweep(path, grid="no", log=None),
    }
    for said, call in refused.items():
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value).startswith(said.strip()), (said, str(e.value))
    assert not (workdir / "runs").exists()


def test_seeds_sweeps_and_exports_are_functions_too(workdir, table_csv):
    path = write_config(workdir / "c.yaml", table_csv(n=120))
    runs = nntrain.fit_seeds(path, [0, 1], {"train.epochs": 2}, log=None)
    assert [r.run_dir.name for r in runs] == ["t-seed0", "t-seed1"]
    assert [r.config.seed for r in runs] == [0, 1] and runs[0].summary["test"] != runs[1].summary["test"]
    pytest.importorskip("optuna")
    sweep = write_config(workdir / "s.yaml", table_csv(n=120), sweep={"model.hidden": [[4], [8]], "pruner": "none"})
    result = nntrain.sweep(sweep, grid=True, study="g", log=None)
    assert result["trials"] == {"complete": 2} and result["best_params"]["model.hidden"] in ("[4]", "[8]")
    pytest.importorskip("onnxruntime")
    model = runs[0].export("onnx")
    assert (
        model == runs[0].run_dir / "model.onnx" and model.is_file() and (runs[0].run_dir / "model.onnx.json").is_file()
    )


def refused_frame_fit(df):
    """A fit refused once its data is read (a batch-norm model cannot take the fused engine)."""
    cfg = small()
    cfg["model"] = {"hidden": [8], "batch_norm": True}
    cfg["train"] = {**cfg["train"], "engine": "fused"}
    with pytest.raises(UserError):
        nntrain.fit(cfg, data=df, log=None)


def test_a_refused_fit_never_removes_a_stored_frame_another_fit_uses(workdir, cli):
    """Issue 26 (3): two fits of one DataFrame at once; the refused one removed the Parquet the other trained on."""
    import fcntl
    import os

    df = make_table(120)
    run = nntrain.fit(small(), data=df, log=None)
    (stored,) = (workdir / "runs" / ".data").glob("*.parquet")
    stored.unlink()  # as when both fits found no file: the refused one writes it, the other's run names it
    refused_frame_fit(df)
    assert stored.is_file() and cli("eval", run.run_dir).exit_code == 0
    other = make_table(120, seed=1)
    fd = os.open(workdir / "runs" / ".data", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # another fit of the same frame is starting
    try:
        refused_frame_fit(other)
    finally:
        os.close(fd)
    assert len(list((workdir / "runs" / ".data").glob("*.parquet"))) == 2
    run = nntrain.fit(small(), data=other, log=None)  # the file the refused fit left is the one it trains on
    assert cli("eval", run.run_dir).exit_code == 0
    refused_frame_fit(make_table(120, seed=2))  # no one else: removed
    assert len(list((workdir / "runs" / ".data").glob("*"))) == 2


def test_an_unreachable_mlflow_store_leaves_no_stored_frame(workdir, monkeypatch):
    """Issue 26 (28): the tracker is resolved before the frame is stored."""
    import nntrain.api

    def dead(*args):
        raise UserError("mlflow: cannot use the tracking store")

    monkeypatch.setattr(nntrain.api, "tracker_for", dead)
    with pytest.raises(UserError, match="tracking store"):
        nntrain.fit(small(), data=make_table(60), mlflow="http://127.0.0.1:9", log=None)
    assert list((workdir / "runs").rglob("*")) in ([], [workdir / "runs" / ".data"])


def test_a_complex_column_is_named_in_a_clear_error(workdir):
    """Issue 26 (A3): a complex128 column gave pyarrow's ArrowNotImplementedError."""
    df = make_table(60).assign(z=lambda d: d.a + 1j * d.b)
    with pytest.raises(UserError, match="column 'z' holds complex numbers"):
        nntrain.fit(small(), data=df, log=None)
    assert not (workdir / "runs").exists() or list((workdir / "runs").rglob("*.parquet")) == []


def test_paths_and_names_outside_the_bmp_reach_the_config_as_given(workdir):
    """Issue 26 (22): an emoji in data=, in a dict override or a column name read as "file not found"."""
    make_table(120).to_csv(workdir / "t😀.csv", index=False)
    cfg = {"model": {"hidden": [8]}, "train": {"epochs": 1, "plots": False}}
    assert nntrain.fit(cfg, data="t😀.csv", log=None).config.data.path == "t😀.csv"
    assert nntrain.fit(cfg, {"data.path": "t😀.csv"}, log=None).config.data.path == "t😀.csv"
    frame = make_table(120).rename(columns={"y": "y\x80😀"})  # a C1 control character too
    assert nntrain.fit(cfg, {"data.target": "y\x80😀"}, data=frame, log=None).config.data.target == "y\x80😀"


def test_the_errors_the_api_raises_are_nntrain_names_without_torch():
    """Issue 26 (A2): nntrain.UserError (and ConfigError, Diverged, ...) were not exported."""
    code = (
        "import sys, nntrain, nntrain.errors as e, nntrain.engine.stopping as s\n"
        "ok = [nntrain.UserError is e.UserError, nntrain.ConfigError is e.ConfigError, nntrain.Stop is e.Stop,\n"
        "      nntrain.Diverged is s.Diverged, nntrain.Interrupted is s.Interrupted]\n"
        "print(all(ok), 'torch' in sys.modules, {'UserError', 'Diverged'} <= set(nntrain.__all__))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["True", "False", "True"], r.stderr


TINY = {"train.plots": False, "train.threads": 1}


def test_a_column_of_mixed_python_values_trains_as_its_csv_file_does(workdir, cli):
    """An object column of 1, "x", 2.5 and None (or a Timestamp, text, a number and a bool) was refused with
    pyarrow's "cannot be stored as Parquet"; it is read as the CSV file of the frame reads: as text (categories)."""
    df = make_table(120, task="binary")
    df["m"] = pd.Series([1, "x", 2.5, None] * 30, dtype=object)
    df["t"] = pd.Series([pd.Timestamp("2020-01-01"), "text", 3, True] * 30, dtype=object)
    run = nntrain.fit(small(), TINY, data=df, log=None)
    df.to_csv(workdir / "mixed.csv", index=False)
    cfg = write_config(workdir / "c.yaml", "mixed.csv", data={"target": "y"}, train={"plots": False, "threads": 1})
    assert cli("fit", cfg, "--quiet").exit_code == 0
    from_csv = nntrain.load(workdir / "runs" / "t")
    assert run._prep["kinds"] == from_csv._prep["kinds"] == {"a": "numeric", "b": "numeric", "c": "numeric",
                                                             "m": "categorical", "t": "categorical"}  # fmt: skip
    assert run._prep["categories"] == from_csv._prep["categories"]
    assert run._prep["categories"]["m"] == ["(missing)", "1", "2.5", "x"]
    (stored,) = (workdir / "runs" / ".data").glob("*.parquet")
    assert pd.read_parquet(stored).dtypes["a"] == np.float64  # a clean column stays as it is
    with warnings.catch_warnings():
        warnings.simplefilter("error", nntrain.DataWarning)  # the same mixed values, read as in training: known
        out = run.predict(df.drop(columns="y").head(8))
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"] and len(out) == 8


def test_an_empty_frame_is_refused_by_predict_and_evaluate_as_an_empty_file_is(workdir):
    df = make_table(120)
    run = nntrain.fit(small(), TINY, data=df, log=None)
    with pytest.raises(UserError, match="the DataFrame has no rows"):
        run.predict(df.drop(columns="y").iloc[:0])
    with pytest.raises(UserError, match="the DataFrame has no rows"):
        run.evaluate(df.iloc[:0])


def test_a_refused_frame_is_called_the_dataframe_never_by_the_file_it_is_stored_in(workdir):
    with pytest.raises(UserError, match=r"^data: the DataFrame has no rows") as empty:
        nntrain.fit(small(), TINY, data=make_table(60).iloc[:0], log=None)
    with pytest.raises(UserError, match=r"^the DataFrame: no feature columns besides the target 'y'") as bare:
        nntrain.fit(small(), TINY, data=make_table(60)[["y"]], log=None)
    said = str(empty.value) + str(bare.value)
    assert ".data" not in said and ".parquet" not in said and "data.path" not in said


def test_predictions_on_a_filtered_frame_keep_its_index_so_they_line_up_when_assigned(workdir):
    df = make_table(150, task="regression")
    for config in (small(), {**small(), "name": "bagged", "train": {**SMALL["train"], "bag": 3}}):
        run = nntrain.fit(config, data=df, log=None)
        new = df[df["a"] > 0].drop(columns="y")  # index 1, 4, 5, ...: not 0..n-1
        new["p"] = run.predict(new)["prediction"]  # the pandas idiom: aligned on the index
        whole = run.predict(df.drop(columns="y"))["prediction"]
        assert not new["p"].isna().any() and np.allclose(new["p"], whole.loc[new.index], atol=1e-5)
        assert run.config.data.target == "y" and run.config.train.epochs == 3  # a Bag's too (its config.yaml)


def test_a_bool_column_takes_true_and_false_as_text_at_predict_as_a_csv_gives_them(workdir):
    df = make_table(150).assign(flag=lambda d: d["a"] > 0)
    run = nntrain.fit(small(), data=df, log=None)
    new = df.drop(columns="y").head(20)
    as_text = new.assign(flag=new["flag"].map({True: "True", False: "false"}))
    pd.testing.assert_frame_equal(run.predict(as_text), run.predict(new))


def test_a_runs_repr_shows_its_metrics_as_fit_prints_them(workdir):
    """A target in small units: repr(run) in a notebook gave 'mse=0.0000 rmse=0.0000 mae=0.0000' where fit and
    eval print 8.649e-10 (the test metrics in 4 decimals, not metrics.shown)."""
    from nntrain.metrics import shown

    frame = make_table(120, task="regression").assign(y=lambda d: d["y"] * 1e-9)
    run = nntrain.fit({"data": {"target": "y"}, "train": {"epochs": 2, "threads": 1, "plots": False, "bag": 1}},
                      data=frame, log=None)  # fmt: skip
    text = repr(run)
    assert "0.0000" not in text and f"rmse={shown(run.summary['test']['rmse'])}" in text


def test_fit_seeds_takes_a_dataframe_as_fit_does(workdir):
    df = make_table(120, cat=True)
    runs = nntrain.fit_seeds(small(), [0, 1], data=df, log=None)
    assert [r.run_dir.name for r in runs] == ["api-seed0", "api-seed1"]
    assert [r.summary["rows"]["test"] for r in runs] == [24, 24] and runs[0].summary["test"] != runs[1].summary["test"]
    assert len(list((workdir / "runs" / ".data").glob("*.parquet"))) == 1  # stored once, named by both runs
    assert runs[1].predict(df.head(5)).shape == (5, 4)


def test_fit_seeds_names_seeds_that_are_no_list_of_distinct_whole_numbers(workdir):
    """nntrain.fit_seeds(config, []) raised IndexError, fit_seeds(config, 3) TypeError ('int' object is not
    iterable), and [0, 0] trained seed 0 twice (api-seed0-2, api-seed0-3), which `fit --seeds 0,0` refuses.
    Each is refused naming `seeds`, before a frame is stored or a run folder made."""
    df = make_table(60)
    for seeds, said in (([], "[]"), (3, "int"), ([0, 0], "[0, 0]"), ([0, "1"], "[0, '1']"), ([True], "[True]")):
        with pytest.raises(UserError, match=r"^seeds: give a list of distinct whole numbers") as e:
            nntrain.fit_seeds(small(), seeds, data=df, log=None)
        assert said in str(e.value)
    assert not (workdir / "runs").exists()


def test_a_run_whose_stored_dataframe_was_removed_says_so_and_how_to_score_other_rows(workdir, cli):
    """A run fitted on a DataFrame whose RUNS_DIR/.data file was removed (to free space) said "...parquet: the
    file the run was trained on is not there any more: put it back", a file the user never wrote and cannot put
    back. evaluate, explain, resume and `nntrain eval` now name the DataFrame and say what to do instead."""
    df = make_table(120)
    run = nntrain.fit(small(), {"train.epochs": 1}, data=df, log=None)
    for stored in (workdir / "runs" / ".data").glob("*.parquet"):
        stored.unlink()
    said = r"^the DataFrame the run was trained on \(stored as .*\.parquet\) is not there any more: "
    for call in (run.evaluate, run.explain, lambda: nntrain.resume(run.run_dir, {"train.epochs": 2}, log=None)):
        with pytest.raises(UserError, match=said) as e:
            call()
        assert "put it back" not in str(e.value) and "data=" in str(e.value)
    r = cli("eval", str(run.run_dir))
    assert r.exit_code == 2 and "the DataFrame the run was trained on" in r.output and "--data FILE" in r.output
    assert run.evaluate(df.head(40))["accuracy"] >= 0  # other rows still score


def test_a_table_file_as_config_trains_the_recipe_on_it_as_the_cli_does(workdir, table_csv, cli):
    """`nntrain fit t.csv --target y` trains the recipe on the table; nntrain.fit("t.csv", {"data.target": "y"})
    said "t.csv: the top level must be a mapping of keys, got str" (the CSV read as YAML). fit, cv and fit_seeds
    now take a table file as the commands do, the run named after it; a table and data= both is refused."""
    path = table_csv(n=120)
    fast = {"data.target": "y", "train.epochs": 1, "train.bag": 1, "train.plots": False}
    run = nntrain.fit(str(path), fast, log=None)
    assert run.run_dir.name == path.name.split(".")[0] and run.config.data.path == str(path)
    assert run.summary["test"] == nntrain.fit({"data": {"path": str(path)}}, fast, log=None).summary["test"]
    assert nntrain.cv(path, fast, folds=2, log=None).run_dir.name == f"{run.run_dir.name}-cv"
    assert len(nntrain.fit_seeds(path, [0, 1], fast, log=None)) == 2
    with pytest.raises(UserError, match="name the table once"):
        nntrain.fit(path, fast, data=make_table(), log=None)


def test_load_resume_and_export_take_the_run_fit_returned_and_name_a_wrong_argument(workdir):
    """nntrain.resume(run, ...) with the Run that fit returned raised "TypeError: expected str, bytes or os.PathLike
    object, not Run" (so did load, export and resume(None)), and resume_together("runs/x") read the string letter
    by letter ("run folder not found: r"). A Run (Bag, Folds) stands for its folder; anything else is refused
    naming the argument."""
    run = nntrain.fit(small(), {"train.epochs": 1}, data=make_table(120), log=None)
    assert nntrain.load(run).run_dir == run.run_dir
    assert nntrain.export(run).is_file()
    assert nntrain.resume(run, {"train.epochs": 2}, log=None).summary["best_epoch"] in (1, 2)
    assert [r.run_dir.resolve() for r in nntrain.resume_together([run], log=None)] == [run.run_dir.resolve()]
    refused = {
        "run_dir: give a run folder's path (or the Run that fit returned), not NoneType": lambda: nntrain.resume(
            None, log=None
        ),
        "run_dir: give a run folder's path (or the Run that fit returned), not int": lambda: nntrain.load(3),
        "run_dir: give a run folder's path (or the Run that fit returned), not list": lambda: nntrain.export([run]),
        "run_dirs: give a list of run folders (or Runs), not str": lambda: nntrain.resume_together(
            str(run.run_dir), log=None
        ),
        "run_dirs: give a run folder's path (or the Run that fit returned), not int": lambda: nntrain.resume_together(
            [run, 5], log=None
        ),
    }
    for said, call in refused.items():
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value) == said


def test_a_level_or_repeats_of_the_wrong_type_is_refused_naming_it(workdir):
    """run.predict(rows, interval="0.9") and run.explain(rows, repeats="3") raised TypeError ("'<' not supported
    between instances of 'int' and 'str'") from deep inside; the estimators' predict_interval(X, level="0.9")
    too. Each is refused naming the argument, as a level out of range already is."""
    from nntrain.sklearn import NNRegressor

    df = make_table(120, task="regression")
    run = nntrain.fit(small(), {"train.epochs": 1}, data=df, log=None)
    refused = {
        "interval: give the coverage as a number between 0 and 1 (0.9: nine in ten), not str": lambda: run.predict(
            df.head(3), interval="0.9"
        ),
        "--level: give the coverage as a number between 0 and 1 (0.9: nine in ten), not bool": lambda: run.report(
            level=True
        ),
        "--repeats: give a whole number from 1 to 100, not str": lambda: run.explain(df, repeats="3"),
        "--repeats: give a whole number from 1 to 100, not float": lambda: run.explain(df, repeats=2.5),
        "seed: give a whole number, not str": lambda: run.explain(df, seed="x"),
    }
    for said, call in refused.items():
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value) == said
    est = NNRegressor(train__epochs=1, train__threads=1, train__plots=False).fit(df[["a", "b"]], df["y"])
    with pytest.raises(ValueError, match=r"^level: give the coverage as a number between 0 and 1"):
        est.predict_interval(df[["a", "b"]], level="0.9")
    assert run.predict(df.head(3), interval=0.9).shape == (3, 3)


def test_a_log_that_is_no_function_is_refused_before_a_run_folder_is_made(workdir, table_csv):
    """nntrain.fit(config, log="x") made the run folder, trained, then failed at the first line with "TypeError:
    'str' object is not callable", leaving config.yaml, split.json and last.pt without a summary. fit, resume,
    fit_seeds, resume_together, cv and lr_find refuse it naming log, before anything is written."""
    path = write_config(workdir / "c.yaml", table_csv(n=120), train={"epochs": 1})
    said = r"^log: give a function of one line \(print\), or None, not str$"
    calls = [
        lambda: nntrain.fit(small(), data=make_table(120), log="x"),
        lambda: nntrain.fit_seeds(path, [0, 1], log="x"),
        lambda: nntrain.cv(path, folds=2, log="x"),
        lambda: nntrain.lr_find(path, log="x"),
    ]
    for call in calls:
        with pytest.raises(UserError, match=said):
            call()
    assert not (workdir / "runs").exists()
    run = nntrain.fit(path, log=None)
    for call in (
        lambda: nntrain.resume(run, {"train.epochs": 2}, log="x"),
        lambda: nntrain.resume_together([run], log="x"),
    ):
        with pytest.raises(UserError, match=said):
            call()
    assert nntrain.load(run).metrics["epoch"].max() == 1


def test_rows_of_the_wrong_kind_name_the_argument_data_as_fit_does(workdir):
    """run.predict(a Series) said "INPUT: give a pandas DataFrame ...", run.evaluate(an empty frame) "--data: the
    DataFrame has no rows": the command line's names, for what only Python can pass; fit says "data: ...". Each
    now names the argument, data."""
    df = make_table(120)
    run = nntrain.fit(small(), TINY, data=df, log=None)
    calls = {
        "data: give a pandas DataFrame or a file path, not Series": lambda: run.predict(df.iloc[0]),
        "data: give a pandas DataFrame or a file path, not int": lambda: run.explain(5),
        "data: the DataFrame has no rows": lambda: run.predict(df.iloc[:0]),
        "data: the DataFrame has no rows ": lambda: run.evaluate(df.iloc[:0]),
        "data: the DataFrame has no rows  ": lambda: run.report(df.iloc[:0]),
    }
    for said, call in calls.items():
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value).startswith(said.strip()), str(e.value)


def test_a_run_fitted_on_a_dataframe_fits_again_from_its_config_yaml_in_another_folder(tmp_path, monkeypatch, cli):
    """config.yaml of a run fitted on a DataFrame named the stored frame as runs/.data/SHA.parquet, relative to
    the folder of that fit, so `nntrain fit RUN/config.yaml` from any other folder failed: file not found. It
    names the stored file absolutely (as the run's summary and checkpoints do): the same rows train again."""
    df = make_table(120, cat=True)
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(project)
    nntrain.fit(small(), TINY, data=df, log=None)
    nntrain.fit({**small(), "name": "bag"}, {**TINY, "train.bag": 2}, data=df, log=None)
    monkeypatch.chdir(elsewhere)
    r = cli("fit", project / "runs" / "api" / "config.yaml", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["run_dir"] == "runs/api"  # runs_dir: runs, as it was given, here
    run, again = nntrain.load(project / "runs" / "api"), nntrain.load(elsewhere / "runs" / "api")
    assert again.summary["data"]["source"] == run.summary["data"]["source"]
    assert again.summary["rows"] == run.summary["rows"] and again.summary["test"] == run.summary["test"]
    split = [json.loads((x.run_dir / "split.json").read_text()) for x in (run, again)]
    assert [split[1][k] for k in ("train", "val", "test")] == [split[0][k] for k in ("train", "val", "test")]
    bag_again = nntrain.fit(project / "runs" / "bag" / "config.yaml", log=None)
    assert bag_again.run_dir.resolve() == elsewhere / "runs" / "bag"
    assert bag_again.summary["test"] == nntrain.load(project / "runs" / "bag").summary["test"]


def test_a_run_whose_config_names_its_tables_relatively_fits_again_from_another_folder(tmp_path, monkeypatch, cli):
    """configs/x.yaml names data/t.csv (found a folder up from the config) and a validation file beside it: the
    run's and the bag's config.yaml named them as written, so `nntrain fit RUN/config.yaml` from another folder
    said "file not found". They keep the paths where the tables were found: the same rows train again."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    for folder in (project / "configs", project / "data", elsewhere):
        folder.mkdir(parents=True)
    df = make_table(150, cat=True)
    df.iloc[:120].to_csv(project / "data" / "t.csv", index=False)
    df.iloc[120:].to_csv(project / "data" / "v.csv", index=False)
    cfg = {**small(), "data": {"path": "data/t.csv", "val_path": "data/v.csv", "target": "y"}}
    (project / "configs" / "x.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(project)
    nntrain.fit("configs/x.yaml", TINY, log=None)
    nntrain.fit("configs/x.yaml", {**TINY, "name": "bag", "train.bag": 2, "data.val_path": None}, log=None)
    monkeypatch.chdir(elsewhere)
    for name in ("api", "bag"):
        r = cli("fit", project / "runs" / name / "config.yaml", "--json")
        assert r.exit_code == 0, r.output
        run, again = nntrain.load(project / "runs" / name), nntrain.load(elsewhere / "runs" / name)
        assert again.summary["test"] == run.summary["test"] and again.summary["best_value"] == run.summary["best_value"]
    written = yaml.safe_load((project / "runs" / "api" / "config.yaml").read_text())["data"]
    assert (written["path"], written["val_path"]) == (str(project / "data" / "t.csv"), str(project / "data" / "v.csv"))
