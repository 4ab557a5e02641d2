"""Tables whose values or columns differ in kind from row to row or from file to file: a target of false beside
"yes" trains on text labels and predicts them back; a folder of Parquet files of other columns is refused by
name, read into memory as when it streams."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

SMALL = ["train.bag=1", "train.epochs=3", "train.plots=false", "train.threads=1", "optimizer.lr=0.01", "-q"]
LABELS = (False, "no", "yes")


def clustered(labels: tuple = LABELS, n: int = 600, seed: int = 0) -> pd.DataFrame:
    """x in a cluster per label, 3 apart: learnt in three epochs."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(labels), n)
    x = (k - (len(labels) - 1) / 2) * 3.0 + rng.normal(0, 0.3, n)
    return pd.DataFrame({"x": x, "y": np.array(labels, dtype=object)[k]})


def predicted(cli, run, data) -> pd.DataFrame:
    r = cli("predict", run, data, "-o", "p.csv")
    assert r.exit_code == 0, r.output
    return pd.read_csv("p.csv", dtype=str, keep_default_na=False)


def test_a_target_of_false_beside_text_trains_on_text_labels(workdir, cli):
    table = clustered()
    with open("mixed.jsonl", "w") as f:
        for x, y in zip(table.x, table.y):
            f.write(json.dumps({"x": x, "y": y}) + "\n")
    r = cli("fit", "mixed.jsonl", "--target", "y", *SMALL)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert "column 'y' (the target) holds values of 2 kinds (bool, str): its labels read as text" in r.output
    out = predicted(cli, "runs/mixed", "mixed.jsonl")
    assert list(out.columns) == ["prediction", "proba_False", "proba_no", "proba_yes"]
    assert (out.prediction == table.y.map(str)).mean() > 0.9
    r = cli("eval", "runs/mixed", "--data", "mixed.jsonl", "--json")  # False read again is the label 'False'
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"]["accuracy"] > 0.9


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_parquet_folder_whose_target_is_bool_in_one_file_and_text_in_the_others(workdir, cli, stream):
    table = clustered((False, True, "no", "yes"), n=800)
    flags = table.y.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
    (workdir / "pq").mkdir()
    table[flags].astype({"y": bool}).to_parquet("pq/part0.parquet", index=False)  # a file of bools
    text = table[~flags].astype({"y": str})
    text.iloc[::2].to_parquet("pq/part1.parquet", index=False)
    text.iloc[1::2].to_parquet("pq/part2.parquet", index=False)
    assert pd.read_parquet("pq/part0.parquet").y.dtype == bool
    r = cli("fit", "data.path=pq/", "data.target=y", f"data.stream={stream}", *SMALL)
    assert r.exit_code == 0, r.output
    assert "holds values of 2 kinds (bool, str): its labels read as text" in r.output
    out = predicted(cli, "runs/pq", "pq/")
    assert list(out.columns) == ["prediction", "proba_False", "proba_True", "proba_no", "proba_yes"]
    truth = pd.concat([pd.read_parquet(f"pq/part{k}.parquet") for k in range(3)], ignore_index=True).y.map(str)
    assert (out.prediction == truth).mean() > 0.9
    r = cli("eval", "runs/pq", "--data", "pq/part0.parquet")  # a file of bools alone: read as 'True', 'False'
    assert r.exit_code == 0, r.output


def write_parts(folder, columns: list[list[str]]) -> None:
    """A Parquet file per list of columns, of 100 rows of x, x2 and a 0/1 target y."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for k, names in enumerate(columns):
        x = rng.normal(size=(100, 2))
        frame = pd.DataFrame({"x": x[:, 0], "x2": x[:, 1], "y": (x[:, 0] > 0).astype(int)})
        frame[names].to_parquet(folder / f"part{k}.parquet", index=False)


OTHER = "cols/part1.parquet has other columns than cols/part0.parquet: ['x2']"


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "data.path=cols/", "data.target=y", "data.stream=false", *SMALL],
        ["fit", "data.path=cols/", "data.target=y", "data.stream=true", *SMALL],
        ["cv", "cols/", "--target", "y", "train.epochs=2", "train.threads=1", "train.plots=false"],
        ["lr-find", "cols/", "--target", "y", "train.threads=1"],
    ],
    ids=["fit", "fit-streamed", "cv", "lr-find"],
)
def test_parquet_files_of_other_columns_are_refused_read_whole_as_streamed(workdir, cli, command):
    write_parts(workdir / "cols", [["x", "y"], ["x", "x2", "y"]])
    r = cli(*command)
    assert r.exit_code == 2, r.output
    assert f"data.path=cols/: {OTHER}" in r.stderr and "Traceback" not in r.output
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_eval_and_explain_refuse_parquet_files_of_other_columns_and_accept_reordered_ones(workdir, cli):
    write_parts(workdir / "ok", [["x", "x2", "y"], ["y", "x2", "x"]])  # reordered: the same columns
    r = cli("fit", "data.path=ok/", "data.target=y", "data.stream=false", *SMALL)
    assert r.exit_code == 0, r.output
    assert "labels read as text" not in r.output  # a target of one kind of value stays as it is
    write_parts(workdir / "cols", [["x", "y"], ["x", "x2", "y"]])
    for command in ("eval", "explain"):
        r = cli(command, "runs/ok", "--data", "cols/")
        assert r.exit_code == 2, r.output
        assert f"--data=cols/: {OTHER}" in r.stderr and "Traceback" not in r.output
    assert cli("eval", "runs/ok", "--data", "ok/").exit_code == 0


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_folder_holding_a_table_beside_its_parquet_files_is_refused_by_name(workdir, cli, stream):
    """Its rows would be left out without a word; Spark's _SUCCESS and checksums are no tables."""
    folder = workdir / "parts"
    folder.mkdir()
    frame = clustered(("a", "b", "c"))
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(folder / f"p{k}.parquet")
    (folder / "_SUCCESS").touch()
    (folder / ".p0.parquet.crc").write_bytes(b"\0")
    frame.head(50).to_csv(folder / "p3.csv", index=False)
    r = cli("fit", f"data.path={folder}/", "data.target=y", f"data.stream={stream}", "train.epochs=1")
    assert r.exit_code == 2 and "the folder holds p3.csv beside its Parquet files" in r.output
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())
    (folder / "p3.csv").unlink()
    r = cli("fit", f"data.path={folder}/", "data.target=y", f"data.stream={stream}", "train.epochs=1")
    assert r.exit_code == 0, r.output


def test_predict_on_a_folder_whose_files_differ_names_the_input_not_data_path(workdir, cli):
    frame = clustered(("a", "b", "c"))
    frame.to_csv(workdir / "t.csv", index=False)
    assert cli("fit", "t.csv", "--target", "y", *SMALL).exit_code == 0
    folder = workdir / "new"
    folder.mkdir()
    frame.drop(columns="y").head(20).to_parquet(folder / "p0.parquet")
    frame.drop(columns="y").head(20).assign(extra=1.0).to_parquet(folder / "p1.parquet")
    r = cli("predict", "runs/t", "new/")
    assert r.exit_code == 2 and r.output.startswith("Error: new/: new/p1.parquet has other columns than new/p0.parquet")
    assert "data.path" not in r.output


@pytest.mark.parametrize("rows", ["in order", "shuffled"])
def test_a_saved_row_index_is_no_feature_in_order_or_shuffled(workdir, cli, rows):
    """DataFrame.to_csv's index ('Unnamed: 0') and R's row names: a sample or shuffle of a sorted table keeps
    row numbers that follow its sort, here the target itself."""
    frame = clustered(("a", "b", "c")).sort_values("y", ignore_index=True)
    if rows == "shuffled":
        frame = frame.sample(frac=0.8, random_state=0)
    frame.to_csv(workdir / "t.csv")  # index=True: a first column with an empty header
    frame.rename_axis("rownames").to_csv(workdir / "r.csv")
    for name, column in (("t.csv", "Unnamed: 0"), ("r.csv", "rownames")):
        r = cli("fit", name, "--target", "y", *SMALL[:-1])
        assert r.exit_code == 0 and f"column '{column}' holds the row numbers" in r.output, r.output
