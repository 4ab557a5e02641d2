"""Streamed runs (data.stream): a folder of Parquet files trained a chunk at a time, split by a hash of each
row's key, evaluated and predicted as any run; exact resume after kill -9 in the middle of an epoch; two ranks
sharing the lanes train as one process does; what a streamed run cannot do is refused by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import NNTRAIN, make_table, metrics_rows, write_config


def write_folder(folder, n=3000, files=3, group=400, seed=0):
    """`n` rows of make_table (with a category) in `files` Parquet files of `group`-row row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    table = make_table(n=n, task="binary", seed=seed, cat=True)
    table.insert(0, "key", [f"k{i}" for i in range(n)])
    for k, part in enumerate(np.array_split(np.arange(n), files)):
        pq.write_table(pa.Table.from_pandas(table.iloc[part], preserve_index=False), folder / f"p{k}.parquet",
                       row_group_size=group)  # fmt: skip
    return table


def streamed_config(workdir, folder, **train):
    return write_config(
        workdir / "s.yaml",
        str(folder),
        data={"target": "y", "drop": ["key"], "stream": True, "eval_rows": 5000},
        train={"epochs": 3, "batch_size": 32, **train},
    )


def test_a_parquet_folder_streams_and_eval_and_predict_agree_with_fit(workdir, cli):
    table = write_folder(workdir / "t")
    r = cli("fit", streamed_config(workdir, workdir / "t"))
    assert r.exit_code == 0, r.output
    assert "streamed: 3,000 rows in 3 Parquet file(s), 9 row group(s)" in r.output
    assert "split by a hash of each row's file and row number: train" in r.output
    run = workdir / "runs" / "t"
    split = json.loads((run / "split.json").read_text())
    assert "stream" in split and "test" not in split  # the rule, not the rows
    summary = json.loads((run / "summary.json").read_text())
    assert f"rows: train {summary['rows']['train']}, " in r.output and 1800 < summary["rows"]["train"] < 2400
    # how it was split and the notes fit printed (was: "at random, stratified by class", no notes)
    assert summary["data"]["split"] == "by a hash of each row's file and row number"
    assert any(n.startswith("streamed: 3,000 rows in 3 Parquet file(s)") for n in summary["data"]["notes"])
    report = json.loads(cli("eval", run, "--json").output)
    assert report["metrics"] == pytest.approx(summary["test"]) and 450 < report["rows"] < 750  # about 20%
    assert report["metrics"]["accuracy"] > 0.85  # it learned
    rows = metrics_rows(run)
    assert len(rows) == 3 and all(float(row["grad_norm.fc1"]) > 0 for row in rows)  # diagnostics see the steps
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", run, str(workdir / "t")).output))
    import nntrain

    whole = nntrain.load(run).predict(table.drop(columns="y"))
    assert len(out) == 3000 and np.allclose(out["proba_yes"], whole["proba_yes"], atol=1e-6)
    r = cli("predict", run, str(workdir / "t"), "-o", "p.csv", "--sets", "0.9")
    assert r.exit_code == 0 and "3000 predictions written to p.csv" in r.output
    assert set(pd.read_csv("p.csv").columns) == {"prediction", "proba_no", "proba_yes", "set", "set_size"}
    r = cli("explain", run, "--repeats", "1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == report["rows"]  # the same test rows eval scored


def test_the_hash_split_follows_the_id_not_where_a_row_is_stored(workdir):
    from nntrain.data.stream import Fragment, hash_split, row_keys, uniform

    frame = pd.DataFrame({"key": [f"k{i}" for i in range(5000)]})
    split = hash_split(5000, 3, 0.2, 0.1, 10_000, "key")
    here = split.part_of(uniform(row_keys(frame, "key", Fragment(0, 0, 5000), 0), 3))
    moved = frame.iloc[::-1].reset_index(drop=True)
    there = split.part_of(uniform(row_keys(moved, "key", Fragment(4, 2, 5000), 900), 3))
    assert (here == there[::-1]).all()
    assert abs((here == 2).mean() - 0.2) < 0.02 and abs((here == 1).mean() - 0.1) < 0.02


@pytest.mark.slow
def test_a_streamed_run_killed_mid_epoch_resumes_to_the_same_metrics(workdir):
    """The cut run reads its batches in a worker process (data.stream_workers=1), the full one in its own: the
    same batches and the same random draws, so the same metrics.csv."""
    write_folder(workdir / "t", n=6000)
    cfg = streamed_config(workdir, workdir / "t", epochs=3, checkpoint_every=0)
    full = subprocess.run([*NNTRAIN, "fit", str(cfg), "--name", "full"], cwd=workdir, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    cut = [*NNTRAIN, "fit", str(cfg), "--name", "cut", "data.stream_workers=1"]
    proc = subprocess.Popen(cut, cwd=workdir, stdout=subprocess.DEVNULL)
    import torch

    metrics, last = workdir / "runs" / "cut" / "metrics.csv", workdir / "runs" / "cut" / "last.pt"
    step = lambda: torch.load(last, weights_only=True)["step"]  # noqa: E731 (last.pt is replaced whole)
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    while time.time() < deadline and not 0 < step() < 40:  # early in epoch 2 or 3 (of 112 steps)
        time.sleep(0.03)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = step()
    assert step > 0  # killed in the middle of an epoch: the resume starts there
    r = subprocess.run([*NNTRAIN, "fit", "--resume", "runs/cut"], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f", step {step})" in r.stdout
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(metrics_rows(workdir / "runs" / "cut")) == drop(metrics_rows(workdir / "runs" / "full"))


@pytest.mark.slow
def test_two_ranks_sharing_the_lanes_train_as_one_process_does(workdir):
    write_folder(workdir / "t", n=4000, files=4)
    cfg = streamed_config(workdir, workdir / "t", epochs=2)
    lanes = "data.stream_lanes=2"
    one = subprocess.run(
        [*NNTRAIN, "fit", str(cfg), lanes, "--name", "one"], cwd=workdir, capture_output=True, text=True
    )
    two = subprocess.run(
        [*NNTRAIN, "fit", str(cfg), lanes, "--name", "two", "--nproc", "2"], cwd=workdir, capture_output=True, text=True
    )
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "data-parallel: 2 processes, weights identical on every rank" in two.stdout
    for a, b in zip(metrics_rows(workdir / "runs" / "one"), metrics_rows(workdir / "runs" / "two")):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-4)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (["data.split_column=color"], "data.split_column: a streamed run splits its rows by a hash"),
        (["train.bag=5"], "train.bag=5: a streamed run trains one model"),
        (["data.stream_lanes=3"], "train.batch_size=32: each of the 3 lanes"),
        (["data.id=nope"], "data.id=nope: no such column"),
        # checked against the task the sample shows, as an in-memory run's (was: KeyError 'r2', a run folder left)
        (["train.monitor=val_r2"], "train.monitor=val_r2: not measured for binary"),
        (["loss={name: cross_entropy, weight: [1, 2, 3]}"], "loss.weight"),
    ],
)
def test_what_a_streamed_run_cannot_do_is_refused_by_name(workdir, cli, setting, message):
    write_folder(workdir / "t")
    r = cli("fit", streamed_config(workdir, workdir / "t"), *setting)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output
    assert not (workdir / "runs" / "t").exists()


def test_streaming_a_csv_or_cross_validating_a_stream_is_refused_and_a_small_folder_reads_whole(workdir, cli):
    table = write_folder(workdir / "t")
    table.to_csv("t.csv", index=False)
    r = cli("fit", write_config(workdir / "c.yaml", "t.csv", data={"target": "y", "stream": True}))
    assert r.exit_code == 2 and "data.stream=true streams Parquet" in r.stderr
    r = cli("cv", streamed_config(workdir, workdir / "t"), "--folds", "2")
    assert r.exit_code == 2 and "only `nntrain fit` of one model streams" in r.stderr
    # a sweep refuses it before its study or folder exists (was: after both, its trials failed)
    r = cli("sweep", streamed_config(workdir, workdir / "t"), "sweep={optimizer.lr: [0.01, 0.1]}", "--grid")
    assert r.exit_code == 2 and "only `nntrain fit` of one model streams" in r.stderr
    assert not (workdir / "runs" / "sweeps.db").exists() and not (workdir / "runs" / "t").exists()
    cfg = write_config(workdir / "f.yaml", str(workdir / "t"), data={"target": "y", "drop": ["key"]})
    r = cli("fit", cfg, "--name", "whole")
    assert r.exit_code == 0 and "streamed" not in r.output and "rows: train 2160, val 240, test 600" in r.output


def test_a_folder_and_target_alone_stream_an_ensemble_with_weights_logged_to_mlflow(workdir, cli):
    """`nntrain fit FOLDER --target y`: the run is named after the folder; model.ensemble, the weight column and
    class weights train on the stream; MLflow holds what the run folder holds."""
    import mlflow

    table = write_folder(workdir / "clicks")
    table["w"] = np.random.default_rng(1).uniform(0.5, 2.0, len(table))
    for k, part in enumerate(np.array_split(np.arange(len(table)), 3)):  # the same files with a weight column
        table.iloc[part].to_parquet(workdir / "clicks" / f"p{k}.parquet", index=False, row_group_size=400)
    store = f"sqlite:///{workdir / 'ml.db'}"
    r = cli("fit", "clicks", "--target", "y", "data.stream=true", "data.drop=[key]", "data.weight=w",
            "data.class_weight=balanced", "model.ensemble=3", "train.epochs=2", "train.batch_size=64",
            f"train.mlflow={store}")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "train.bag auto: one model (a streamed run trains one, or a model.ensemble, not a bag)" in r.output
    assert "rows weighted by column 'w'" in r.output and "class weights (balanced) in the loss" in r.output
    assert "3 members stacked" in r.output
    run = workdir / "runs" / "clicks"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.85
    assert json.loads(cli("eval", run, "--json").output)["metrics"] == pytest.approx(summary["test"])
    client = mlflow.MlflowClient(tracking_uri=store)
    (logged,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert logged.data.params["model.ensemble"] == "3" and logged.data.params["data.weight"] == "w"
    for name, value in summary["test"].items():
        assert logged.data.metrics[f"test_{name}"] == pytest.approx(value)
    history = client.get_metric_history(logged.info.run_id, "train_loss")
    assert [m.value for m in history] == pytest.approx(list(pd.read_csv(run / "metrics.csv")["train_loss"]))


def test_a_class_rarer_than_the_sample_is_a_class_the_streamed_run_knows(workdir, cli):
    """6,000 rows, a preprocessing sample of 1,000: a class of two rows in the last file is drawn into the
    sample by its first row, not met in training later as a label never seen."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = workdir / "rare"
    folder.mkdir()
    table = make_table(n=6000, task="multiclass", seed=1)
    table["y"] = table["y"].astype(str)
    table.loc[[5990, 5995], "y"] = "rare"
    for k, part in enumerate(np.array_split(np.arange(6000), 3)):
        pq.write_table(pa.Table.from_pandas(table.iloc[part], preserve_index=False), folder / f"p{k}.parquet")
    cfg = write_config(
        workdir / "s.yaml", str(folder), data={"target": "y", "stream": True, "sample_rows": 1000}, train={"epochs": 1}
    )
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.output
    from nntrain.runs.checkpoints import load_checkpoint

    assert "rare" in load_checkpoint(workdir / "runs" / "t" / "best.pt")["prep"]["classes"]


def test_a_resume_after_a_file_changed_names_the_file(workdir, cli):
    write_folder(workdir / "t")
    assert cli("fit", streamed_config(workdir, workdir / "t", epochs=1)).exit_code == 0
    changed = workdir / "t" / "p1.parquet"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    r = cli("fit", "--resume", "runs/t", "train.epochs=2")
    assert r.exit_code == 2 and "its Parquet files changed since the run started" in r.output
    assert f"({changed}: size or modification time)" in r.output


def test_a_file_of_rows_without_a_target_streams_as_it_reads_whole_those_rows_left_out(workdir, cli):
    """One unlabeled file (or a row group with no target): each streamed chunk without one is empty, not an
    error; the same folder read whole leaves those rows out too."""
    import pyarrow.parquet as pq

    table = write_folder(workdir / "t", n=900, files=3, group=100)
    part = pq.read_table(workdir / "t" / "p1.parquet").to_pandas().assign(y=None)
    part.to_parquet(workdir / "t" / "p1.parquet", index=False, row_group_size=100)
    r = cli("fit", streamed_config(workdir, workdir / "t", epochs=1))
    assert r.exit_code == 0, r.output
    assert len(table) == 900 and "every row's target" not in r.output


def test_a_streamed_run_counts_only_the_rows_whose_target_encoding_keeps(workdir, cli):
    """'?' beside yes and no and blank or space-only cells are no target: the split's counts, the rows line,
    summary.json and the epoch's steps leave them out as the encoded chunks do (was: counted in: 815 rows of 618
    labelled)."""
    import pyarrow.parquet as pq

    write_folder(workdir / "t", n=900, files=3, group=100)
    for k in range(3):
        f = workdir / "t" / f"p{k}.parquet"
        part = pq.read_table(f).to_pandas()
        part.loc[part.index[::5], "y"], part.loc[part.index[1::7], "y"] = "?", "  "
        part.to_parquet(f, index=False, row_group_size=100 + 50 * k)
    labelled = sum((~pq.read_table(f).to_pandas()["y"].isin(["?", "  "])).sum() for f in (workdir / "t").iterdir())
    r = cli("fit", streamed_config(workdir, workdir / "t", epochs=1))
    assert r.exit_code == 0, r.output
    summary = json.loads((workdir / "runs" / "t" / "summary.json").read_text())
    assert sum(summary["rows"].values()) == labelled  # eval_rows holds every val and test row
    note = r.output.split("split by a hash of each row's file and row number: ")[1].split(";")[0]
    assert sum(int(n.split()[1].replace(",", "")) for n in note.split(", ")) == labelled
    assert f"rows: train {summary['rows']['train']}, val" in r.output


def test_a_bad_value_met_by_the_reader_process_is_a_plain_error_not_its_traceback(workdir, cli):
    """A number column holding 'abc' in a row the preprocessing sample did not draw: the reader process meets
    it mid-epoch; its message comes out as the training process's own would (was: "Caught UserError in
    DataLoader worker process 0. Original Traceback ...")."""
    import pyarrow.parquet as pq

    write_folder(workdir / "t", n=3000, files=3, group=500)
    f = workdir / "t" / "p2.parquet"
    part = pq.read_table(f).to_pandas()
    part["a"] = part["a"].astype(str)
    part.loc[part.index[-1], "a"] = "abc"
    part.to_parquet(f, index=False, row_group_size=500)
    r = cli("fit", streamed_config(workdir, workdir / "t", epochs=1), "data.sample_rows=1000", "data.stream_workers=1")
    assert r.exit_code == 2 and "Traceback" not in r.output and "DataLoader" not in r.output
    assert "column 'a': 'abc' at " in r.stderr and "is not a number" in r.stderr
    assert "no epoch had finished: the run folder runs/t was removed" in r.stderr
    assert not (workdir / "runs" / "t").exists()  # nothing left (was: a "stopped" run folder)


@pytest.mark.parametrize("sample", [1000, 10_000])
def test_missing_target_error_names_the_file_and_row_of_a_streamed_row_without_one(workdir, cli, sample):
    """data.missing_target: error, one blank target in the last file: refused before a run folder exists,
    naming the file and its row, whether the sample drew the row or not (was: its row in the sample, or a
    chunk's "missing value at row 73" mid-epoch with a run folder left)."""
    import pyarrow.parquet as pq

    write_folder(workdir / "t", n=6000, files=3, group=500)
    f = workdir / "t" / "p2.parquet"
    part = pq.read_table(f).to_pandas()
    part.loc[part.index[700], "y"] = " "
    part.to_parquet(f, index=False, row_group_size=500)
    r = cli("fit", streamed_config(workdir, workdir / "t", epochs=1), f"data.sample_rows={sample}",
            "data.missing_target=error")  # fmt: skip
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"column 'y' (the target): missing value at {f}, row 701; drop or fill" in r.stderr
    assert not (workdir / "runs" / "t").exists()


def test_predict_of_a_parquet_folder_counts_unseen_values_over_every_chunk(workdir, cli, monkeypatch):
    """Two files, each with 5 rows of a color never seen in training (each file a chunk): the warning counts 10
    rows, as eval --data of the folder does (was: each chunk's '5 row(s)' said once, the same words)."""
    import nntrain.data.stream as stream

    write_folder(workdir / "t", n=600, files=2, group=100)
    assert cli("fit", streamed_config(workdir, workdir / "t", epochs=1)).exit_code == 0
    new = workdir / "new"
    new.mkdir()
    for k in range(2):
        part = pd.read_parquet(workdir / "t" / f"p{k}.parquet")
        part.loc[part.index[:5], "color"] = "purple"
        part.to_parquet(new / f"p{k}.parquet", index=False)
    monkeypatch.setattr(stream, "CHUNK_ROWS", 100)  # several chunks a file, too
    r = cli("predict", "runs/t", str(new), "-o", "p.csv")
    assert r.exit_code == 0, r.output
    assert "column 'color': 10 row(s) with a value never seen in training, such as 'purple'" in r.stderr
    assert r.stderr.count("never seen in training") == 1


def _fitted_with_a_empty_in_one_file(workdir, cli) -> Path:
    """A streamed run fitted on two Parquet files; new/ holds them again, column 'a' empty in the first."""
    write_folder(workdir / "t", n=600, files=2, group=100)
    assert cli("fit", streamed_config(workdir, workdir / "t", epochs=1)).exit_code == 0
    new = workdir / "new"
    new.mkdir()
    for k in range(2):
        pd.read_parquet(workdir / "t" / f"p{k}.parquet").assign(a=np.nan if k == 0 else 1.0).to_parquet(
            new / f"p{k}.parquet", index=False
        )
    return new


def test_predict_of_a_parquet_folder_says_a_column_is_missing_in_every_row_only_when_it_is(workdir, cli):
    """Column 'a' empty in one file of two: not "missing in every one of the 300 row(s)" (was: said of the one
    chunk); empty in both: said once, of all 600 rows."""
    new = _fitted_with_a_empty_in_one_file(workdir, cli)
    r = cli("predict", "runs/t", str(new), "-o", "some.csv")
    assert r.exit_code == 0 and "missing in every one" not in r.stderr, r.output
    (new / "p1.parquet").write_bytes((new / "p0.parquet").read_bytes())
    r = cli("predict", "runs/t", str(new), "-o", "all.csv")
    assert r.exit_code == 0 and r.stderr.count("column(s) 'a': missing in every one of the 600 row(s)") == 1


def test_predict_strict_of_a_parquet_folder_refuses_a_column_missing_in_every_row_only_when_it_is(workdir, cli):
    """--strict judges the whole input, as the warning does: column 'a' empty in one file of two predicts (was:
    refused, "missing in every one of the 300 row(s) (--strict)", though the other file held its values); empty
    in both, it is refused of all 600 rows, exit 2, no file written. A value never seen in training is still
    refused at once."""
    new = _fitted_with_a_empty_in_one_file(workdir, cli)
    r = cli("predict", "runs/t", str(new), "-o", "some.csv", "--strict")
    assert r.exit_code == 0 and "missing in every one" not in r.stderr, r.output
    assert len(pd.read_csv("some.csv")) == 600
    (new / "p1.parquet").write_bytes((new / "p0.parquet").read_bytes())
    r = cli("predict", "runs/t", str(new), "-o", "all.csv", "--strict")
    assert r.exit_code == 2 and "Traceback" not in r.output and not os.path.exists("all.csv")
    assert "column(s) 'a': missing in every one of the 600 row(s) (--strict)" in r.stderr
    part = pd.read_parquet(workdir / "t" / "p1.parquet")
    part.loc[part.index[255], "color"] = "purple"
    part.to_parquet(new / "p1.parquet", index=False, row_group_size=100)
    r = cli("predict", "runs/t", str(new), "-o", "unseen.csv", "--strict")
    assert r.exit_code == 2 and "never seen in training (--strict)" in r.stderr
    assert "Error: column 'color': value 'purple' at p1.parquet, row 256:" in r.stderr.replace(f"{new}{os.sep}", "")


@pytest.mark.parametrize("last", [True, False])
def test_a_bad_value_in_a_streamed_chunk_is_named_by_its_file_and_row(workdir, cli, last):
    """'abc' in a number column, in the last row of p2.parquet (or its 300th), where the sample did not draw it:
    the error names the file and the row there, wherever the row's split is (was: its place among one chunk's
    rows of one split, "at row 412", no file)."""
    import pyarrow.parquet as pq

    write_folder(workdir / "t", n=3000, files=3, group=500)
    f = workdir / "t" / "p2.parquet"
    part = pq.read_table(f).to_pandas()
    part["a"] = part["a"].astype(str)
    part.loc[part.index[-1 if last else 299], "a"] = "abc"
    part.to_parquet(f, index=False, row_group_size=500)
    r = cli("fit", streamed_config(workdir, workdir / "t", epochs=1), "data.sample_rows=1000", "data.stream_workers=0")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"column 'a': 'abc' at {f}, row {1000 if last else 300:,} is not a number" in r.stderr
    assert not (workdir / "runs" / "t").exists()  # met before or in the first epoch: no run folder left


def test_a_bad_value_met_after_an_epoch_leaves_a_failed_run_that_a_resume_refuses(workdir, cli, monkeypatch):
    """'abc' written into p2.parquet's last row (a training row) once the first epoch has ended: the second
    epoch meets it. The run folder keeps its checkpoints of epoch 1 and says it failed on that value: `runs`
    lists it as failed, and `fit --resume` refuses it saying why (was: no summary.json, listed as "1/3
    stopped" as if a resume could help, though the file must change and a changed file is refused)."""
    import pyarrow.parquet as pq

    import nntrain.engine.loop as loop

    write_folder(workdir / "t", n=3000, files=3, group=500)
    f, ended = workdir / "t" / "p2.parquet", loop.end_of_epoch

    def then_spoiled(run, *args):
        part = pq.read_table(f).to_pandas()
        part["a"] = part["a"].astype(str)
        part.loc[part.index[-1], "a"] = "abc"
        part.to_parquet(f, index=False, row_group_size=500)
        return ended(run, *args)

    monkeypatch.setattr(loop, "end_of_epoch", then_spoiled)
    r = cli("fit", streamed_config(workdir, workdir / "t"), "data.sample_rows=1000", "data.stream_workers=0")
    monkeypatch.setattr(loop, "end_of_epoch", ended)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"column 'a': 'abc' at {f}, row 1,000 is not a number" in r.stderr
    assert "runs/t keeps best.pt (epoch 1), its status failed: it cannot be resumed" in r.stderr
    run = workdir / "runs" / "t"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] == 1 and "'abc'" in summary["stopped"]
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and len(metrics_rows(run)) == 1
    (row,) = json.loads(cli("runs", "--json").stdout)["runs"]
    assert row["status"] == "failed" and row["epochs"] == "1/3"
    r = cli("fit", "--resume", str(run))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"{run}: cannot be resumed: it failed at epoch 2 on a data error (column 'a': 'abc' at {f}" in r.stderr
    assert json.loads((run / "summary.json").read_text()) == summary  # the refusal leaves it as it was


def folder_state(run):
    """Each file of a run folder: its bytes' size and modification time (what a refused command must leave)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run.rglob("*")) if p.is_file()}


def test_eval_and_explain_of_a_streamed_run_refuse_a_changed_or_removed_file_by_name(workdir, cli):
    """As an in-memory run's eval refuses a changed table: the stored hash split would score other rows."""
    write_folder(workdir / "t")
    assert cli("fit", streamed_config(workdir, workdir / "t", epochs=1)).exit_code == 0
    assert cli("eval", "runs/t").exit_code == 0
    changed = workdir / "t" / "p1.parquet"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    for command in ("eval", "explain"):
        r = cli(command, "runs/t")
        assert r.exit_code == 2, r.output
        assert f"data.path={workdir / 't'}: its Parquet files changed since the run was trained" in r.stderr
        assert f"({changed}: size or modification time)" in r.stderr and "Traceback" not in r.output
    changed.unlink()
    r = cli("eval", "runs/t")
    assert r.exit_code == 2 and f"(removed: {changed})" in r.stderr and "Traceback" not in r.output


def test_a_file_added_to_a_streamed_folder_stops_a_resume_and_is_noted_by_eval(workdir, cli, monkeypatch):
    """The run reads the files it started with; a resume would leave the new one out without a word. data.path
    is relative: eval and a resume list it, and read the run's files, from another working directory."""
    write_folder(workdir / "t")
    assert cli("fit", streamed_config(workdir, "t", epochs=1)).exit_code == 0
    scored = json.loads(cli("eval", "runs/t", "--json").output)
    added = workdir / "t" / "p3.parquet"
    added.write_bytes((workdir / "t" / "p0.parquet").read_bytes())
    before = folder_state(workdir / "runs" / "t")
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    r = cli("fit", "--resume", "../runs/t", "train.epochs=2")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"data.path=t: its Parquet files changed since the run started (added: {added}); a resume reads" in r.stderr
    assert folder_state(workdir / "runs" / "t") == before  # nothing written
    r = cli("eval", "../runs/t", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == scored["rows"]  # the rows the run was split on, as before
    assert f"1 Parquet file added since the run was trained ({added})" in r.stderr
    added.unlink()
    assert cli("fit", "--resume", "../runs/t", "train.epochs=2").exit_code == 0


def in_memory(workdir, path, **train):
    """A config reading the folder or glob `path` of write_folder's files into memory (data.stream=false)."""
    return write_config(
        workdir / "f.yaml",
        path,
        data={"target": "y", "drop": ["key"], "stream": False},
        train={"epochs": 1, "plots": False, "threads": 1, **train},
    )


@pytest.mark.parametrize("path, bag", [("t/", 0), ("t/*.parquet", 3)], ids=["folder", "glob-bag"])
def test_a_parquet_folder_or_glob_read_into_memory_is_read_again_from_elsewhere(workdir, cli, monkeypatch, path, bag):
    """eval, explain and a resume of an in-memory run (one model, or a bag) read a folder's or a glob's files
    again, from another working directory too (data.path relative), as a single file's run is read again; they
    said the file the run was trained on is not there any more."""
    write_folder(workdir / "t", n=300, files=3, group=100)
    r = cli("fit", in_memory(workdir, path, bag=bag), "--json", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    r = cli("eval", "../runs/t", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"] == pytest.approx(summary["test"])
    r = cli("explain", "../runs/t", "--repeats", "1", "--json")
    assert r.exit_code == 0, r.output
    assert cli("predict", "../runs/t", "../t/p0.parquet", "-o", "p.csv").exit_code == 0
    r = cli("fit", "--resume", "../runs/t", "train.epochs=2", "-q")
    assert r.exit_code == 0, r.output
    assert len(metrics_rows(workdir / "runs" / "t" / ("member1" if bag else ""))) == 2


def test_an_in_memory_parquet_folder_changed_removed_or_added_to_is_refused_by_name(workdir, cli):
    """As a single file's run refuses its changed file (and a streamed run its changed files): the rows split.json
    lists would be other rows. A resume refused writes nothing."""
    write_folder(workdir / "t", n=300, files=3, group=100)
    assert cli("fit", in_memory(workdir, "t/"), "-q").exit_code == 0
    run, folder = workdir / "runs" / "t", workdir / "t"
    before = folder_state(run)
    shown = f"data.path={folder}: its Parquet files changed since the run was trained"
    commands = (("eval", "runs/t"), ("explain", "runs/t"), ("fit", "--resume", "runs/t", "train.epochs=2"))
    added = folder / "p3.parquet"
    added.write_bytes((folder / "p0.parquet").read_bytes())
    for command in commands:
        r = cli(*command)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"{shown} (added: {added})" in r.stderr
    added.unlink()
    assert cli("eval", "runs/t").exit_code == 0
    changed = folder / "p1.parquet"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    for command in commands:
        r = cli(*command)
        assert r.exit_code == 2 and f"{shown} ({changed}: size or modification time)" in r.stderr, r.output
    changed.unlink()
    r = cli("eval", "runs/t")
    assert r.exit_code == 2 and f"{shown} (removed: {changed})" in r.stderr
    assert folder_state(run) == before  # nothing written by the resumes refused


def test_an_in_memory_parquet_folder_run_from_before_its_files_were_kept_is_read_again(workdir, cli):
    """A run whose checkpoints hold only the digest of the folder's files (names as listed, sizes, times): read
    again from the working directory of its fit; a changed file is refused, though not by name."""
    import torch

    from nntrain.data.readers import parts_digest
    from nntrain.runs.files import atomic_save

    write_folder(workdir / "t", n=300, files=3, group=100)
    assert cli("fit", in_memory(workdir, "t"), "-q").exit_code == 0
    run = workdir / "runs" / "t"
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        ckpt["prep"].pop("parts", None)
        ckpt["prep"]["sha256"] = parts_digest([f"t/p{k}.parquet" for k in range(3)])
        atomic_save(ckpt, run / name)
    assert cli("eval", "runs/t").exit_code == 0
    changed = workdir / "t" / "p1.parquet"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    r = cli("eval", "runs/t")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"data.path={workdir / 't'}: its Parquet files changed since the run was trained (names, sizes" in r.stderr
