from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nntrain.config.schema import DataConfig
from nntrain.data.prepare import infer_task, prepare
from nntrain.data.tables import read_table
from nntrain.errors import UserError

from .conftest import REPO, make_table


def prep_of(df: pd.DataFrame, tmp_path, seed=0, **data):
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    return prepare(read_table(str(path)), DataConfig(path=str(path), **data), seed)


@pytest.mark.parametrize(
    "values, task",
    [
        ([0, 1, 2, 3] * 5, "multiclass"),
        (["yes", "no"] * 10, "binary"),
        ([0, 1] * 10, "binary"),
        (list(np.linspace(0, 1, 20)), "regression"),
        (list(range(40)), "regression"),
        (["a", "b", "c"] * 7, "multiclass"),
    ],
)
def test_task_is_inferred_from_the_target(values, task):
    assert infer_task(pd.Series(values, name="y"), "auto")[0] == task


def test_explicit_task_that_does_not_fit_is_an_error():
    with pytest.raises(UserError, match="binary needs 2"):
        infer_task(pd.Series([0, 1, 2], name="y"), "binary")
    with pytest.raises(UserError, match="non-numbers"):
        infer_task(pd.Series(["a", "b"], name="y"), "regression")


def test_phone_split_sizes_are_stratified_and_disjoint(tmp_path):
    d = prepare(read_table(str(REPO / "data/phone_price.csv")), DataConfig(path="x"), 42)
    assert (len(d.train), len(d.val), len(d.test)) == (1440, 160, 400)
    assert len(np.intersect1d(d.train, d.test)) == 0 and len(np.intersect1d(d.train, d.val)) == 0
    assert len(np.union1d(np.union1d(d.train, d.val), d.test)) == 2000
    for part in (d.train, d.val, d.test):
        counts = np.bincount(d.y[part])
        assert counts.max() - counts.min() <= 1  # 500 rows per class in the table


def test_scaling_is_fitted_on_training_rows_only(tmp_path):
    df = make_table(n=200)
    d = prep_of(df, tmp_path, scale="standard")
    a_train = df["a"].to_numpy()[d.train]
    assert d.prep["shift"][0] == pytest.approx(a_train.mean())
    assert d.prep["shift"][0] != pytest.approx(df["a"].mean())
    assert d.X[d.train, 0].mean() == pytest.approx(0, abs=1e-5) and d.X[d.train, 0].std() == pytest.approx(1, abs=1e-4)
    mm = prep_of(df, tmp_path, scale="minmax")
    assert mm.X[mm.train, 0].min() == pytest.approx(0) and mm.X[mm.train, 0].max() == pytest.approx(1)
    raw = prep_of(df, tmp_path, scale="none")
    assert np.allclose(raw.X[:, 0], df["a"].to_numpy(), atol=1e-6)


def test_string_columns_are_one_hot_encoded(tmp_path):
    d = prep_of(make_table(cat=True), tmp_path)
    assert d.prep["encoded"] == ["a", "b", "c", "color=blue", "color=green", "color=red"]
    assert np.array_equal(d.X[:, 3:].sum(axis=1), np.ones(len(d.X)))


def test_string_labels_become_classes(tmp_path):
    d = prep_of(make_table(task="binary"), tmp_path)
    assert d.prep["classes"] == ["no", "yes"] and d.task == "binary"


def test_regression_target_is_standardized_on_train(tmp_path):
    df = make_table(task="regression")
    d = prep_of(df, tmp_path)
    assert d.prep["target_shift"] == pytest.approx(df["y"].to_numpy()[d.train].mean())
    assert d.y[d.train].mean() == pytest.approx(0, abs=1e-5)


def test_missing_values_under_impute_none_are_an_error_and_impute_uses_train_mean(tmp_path):
    df = make_table(n=100)
    df.loc[7, "b"] = np.nan
    with pytest.raises(UserError, match=r"column 'b': missing value at row 8 \(line 9\).*data.impute"):
        prep_of(df, tmp_path, impute="none")
    d = prep_of(df, tmp_path, impute="mean")
    b_train = df["b"].to_numpy()[d.train]
    assert d.prep["impute"]["b"] == pytest.approx(np.nanmean(b_train))


def test_split_seed_fixes_the_split_across_seeds(tmp_path):
    df = make_table(n=100)
    a = prep_of(df, tmp_path, seed=1, split_seed=5)
    b = prep_of(df, tmp_path, seed=2, split_seed=5)
    c = prep_of(df, tmp_path, seed=2)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_parquet_and_sklearn_sources(tmp_path):
    df = make_table()
    df.to_parquet(tmp_path / "t.parquet")
    t = read_table(str(tmp_path / "t.parquet"))
    assert t.frame.shape == df.shape and not t.header_line
    iris = read_table("sklearn:iris")
    assert iris.frame.shape == (150, 5) and set(iris.frame["target"]) == {"setosa", "versicolor", "virginica"}
    with pytest.raises(UserError, match="did you mean 'sklearn:iris'|did you mean 'iris'"):
        read_table("sklearn:irs")


def test_big_tables_encode_on_threads_to_the_same_matrix_and_name_the_first_bad_column(tmp_path, monkeypatch):
    import nntrain.data.columns as D

    n = D.PARALLEL_ROWS + 3_001  # over the threshold, and not a multiple of the row block
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(5, 2, n),
            "zone": rng.choice(["n", "s"], n),
            "b": rng.normal(-1, 9, n),
            "c": rng.integers(0, 1000, n),
            "y": rng.choice(["p", "q", "r"], n),
        }
    )
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    table = read_table(str(path))
    threaded = prepare(table, DataConfig(path="x"), 0)
    monkeypatch.setattr(D, "THREADS", 1)
    serial = prepare(table, DataConfig(path="x"), 0)
    assert np.array_equal(threaded.X, serial.X) and threaded.prep == serial.prep
    assert threaded.prep["encoded"] == ["a", "zone=n", "zone=s", "b", "c"]
    b = df["b"].to_numpy()[threaded.train]
    assert threaded.X[:, 3] == pytest.approx((df["b"].to_numpy() - b.mean()) / b.std(), abs=1e-5)

    monkeypatch.setattr(D, "THREADS", 2)
    df["c"] = df["c"].astype(float)
    df.loc[n - 5, "c"] = np.inf  # a later column, a later row
    df.loc[70_000, "b"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"column 'b': missing value at row 70001 \(line 70002\)"):
        prepare(read_table(str(path)), DataConfig(path="x", impute="none"), 0)


def test_the_recorded_sha256_is_the_files_and_follows_a_rewrite(tmp_path):
    import hashlib
    import os

    from nntrain.data.digests import sha256_soon
    from nntrain.data.table_source import hash_ahead

    path = tmp_path / "t.csv"
    make_table(n=40).to_csv(path, index=False)
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  path: t.csv\n")
    hash_ahead(config, [])  # what fit does before importing torch: the same file's digest is under way
    assert sha256_soon(path).result() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_table("t.csv", tmp_path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    stat = path.stat()
    text = path.read_text()
    path.write_text(text.replace("1", "2", 1))  # same size, other bytes
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read_table(str(path)).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_table(str(path)).sha256 != hashlib.sha256(text.encode()).hexdigest()


def damaged(folder, name: str):
    """A compressed CSV that cannot be read: cut off, not compressed at all, a zip of two files or none, garbage."""
    import gzip
    import zipfile

    text = make_table(120).to_csv(index=False).encode()
    path = folder / name
    if name == "cut.csv.gz":
        path.write_bytes(gzip.compress(text)[:600])
    elif name == "plain.csv.gz":
        path.write_bytes(text)
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as z:
            for member in ("a.csv", "b.csv")[: 2 if name == "two.csv.zip" else 0]:
                z.writestr(member, text)
    else:
        path.write_bytes((b"\xfd7zXZ\x00" if name.endswith(".xz") else b"BZh91AY&SY") + b"garbage" * 10)
    return path


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("cut.csv.gz", "gzip-compressed CSV: Compressed file ended"),
        ("plain.csv.gz", "gzip-compressed CSV: Not a gzipped file"),
        ("two.csv.zip", "zip holding one CSV: Multiple files found"),
        ("none.csv.zip", "zip holding one CSV: Zero files found"),
        ("bad.csv.xz", "xz-compressed CSV: Corrupt input data"),
        ("bad.csv.bz2", "bzip2-compressed CSV: Invalid data stream"),
    ],
)
def test_a_damaged_compressed_csv_is_named_with_what_is_wrong(tmp_path, name, said):
    path = damaged(tmp_path, name)
    with pytest.raises(UserError, match=f"data.path={path}: cannot read it as an? {said}"):
        read_table(str(path))


def test_fit_and_predict_on_a_damaged_compressed_csv_exit_2_without_a_traceback(workdir, cli):
    from .conftest import write_config

    make_table(120).to_csv(workdir / "t.csv", index=False)
    config = write_config(workdir / "c.yaml", workdir / "t.csv", train={"epochs": 1, "plots": False})
    path = damaged(workdir, "cut.csv.gz")
    r = cli("fit", config, f"data.path={path}", "--name", "cut")
    assert r.exit_code == 2 and "cannot read it as a gzip-compressed CSV" in r.stderr and "Traceback" not in r.output
    assert not (workdir / "runs" / "cut").exists() and cli("fit", config, "--quiet").exit_code == 0
    r = cli("predict", "runs/t", path)
    assert r.exit_code == 2 and f"INPUT={path}: cannot read it as a gzip-compressed CSV" in r.stderr, r.output


def test_a_cell_over_128_kib_with_a_missing_last_value_reads_and_a_short_row_names_its_physical_line(tmp_path):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "note": ["z" * (200 * 1024), "x", "x", "x"], "y": [1, None, 0, 1]})
    df.to_csv(tmp_path / "big.csv", index=False)
    assert read_table(str(tmp_path / "big.csv")).frame.shape == (4, 3)
    with open(tmp_path / "big.csv", "a") as f:
        f.write("5,x\n")
    with pytest.raises(UserError, match="big.csv: line 6 has 2 fields, the header has 3"):
        read_table(str(tmp_path / "big.csv"))
    (tmp_path / "r.csv").write_text('a,note,y\n1,"two\nlines",1\n2,x,0\n3,x\n4,x,1\n')
    with pytest.raises(UserError, match="r.csv: line 5 has 2 fields"):
        read_table(str(tmp_path / "r.csv"))


def nested_table() -> pd.DataFrame:
    df = make_table(60)
    df["tags"] = [[1, 2]] * 60
    return df


def test_a_parquet_list_or_struct_column_is_refused_naming_it_by_fit_predict_and_the_api(workdir, cli):
    import nntrain

    from .conftest import write_config

    nested_table().to_parquet(workdir / "t.parquet", index=False)
    make_table(60).assign(s=[{"k": 1}] * 60).to_parquet(workdir / "s.parquet", index=False)
    config = write_config(workdir / "c.yaml", workdir / "t.parquet", data={"target": "y"}, train={"epochs": 1})
    r = cli("fit", config)
    assert r.exit_code == 2 and "column 'tags': row 1 holds a list" in r.stderr and "Traceback" not in r.output
    r = cli("fit", config, f"data.path={workdir / 's.parquet'}")
    assert r.exit_code == 2 and "column 's': row 1 holds a mapping (struct)" in r.stderr
    assert not (workdir / "runs").exists()
    with pytest.raises(UserError, match="data: column 'tags': row 1 holds a list"):
        nntrain.fit({"model": {"hidden": [8]}, "data": {"target": "y"}}, data=nested_table(), log=None)
    complex_frame = make_table(60).assign(z=lambda d: d.a + 1j * d.b)
    with pytest.raises(UserError, match="data: column 'z' holds complex"):
        nntrain.fit({"model": {"hidden": [8]}, "data": {"target": "y"}}, data=complex_frame, log=None)
    assert not list((workdir / "runs").glob(".data/*"))
    r = cli("fit", config, "data.drop=[tags]", "--quiet")  # a column left out is not read
    assert r.exit_code == 0, r.output
    assert cli("predict", "runs/t", workdir / "t.parquet").exit_code == 0
    make_table(60).assign(tags=lambda d: d.a).to_parquet(workdir / "flat.parquet", index=False)
    assert cli("fit", config, f"data.path={workdir / 'flat.parquet'}", "--name", "flat", "--quiet").exit_code == 0
    r = cli("predict", "runs/flat", workdir / "t.parquet")
    assert r.exit_code == 2 and f"column 'tags': {workdir / 't.parquet'}, row 1 holds a list" in r.stderr, r.output
