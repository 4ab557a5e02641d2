"""The tables users have: one table written as a comma CSV, a semicolon CSV with decimal commas, a TSV, a gzip
CSV, Excel, JSON Lines, Feather and a comma CSV with quoted decimal commas trains to the same test metric; what
the reader found is said; what it cannot decide is refused naming the key that decides it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import make_table, write_config


def _table() -> pd.DataFrame:
    df = make_table(n=150, task="regression", cat=True)
    df["b"] = df["b"] * 1000  # thousands: a decimal-comma file groups them with points
    return df


WRITERS = {
    "comma.csv": lambda df, p: df.to_csv(p, index=False),
    "semicolon.csv": lambda df, p: df.to_csv(p, index=False, sep=";", decimal=","),
    "table.tsv": lambda df, p: df.to_csv(p, index=False, sep="\t"),
    "table.csv.gz": lambda df, p: df.to_csv(p, index=False),
    "table.xlsx": lambda df, p: df.to_excel(p, index=False),
    "table.jsonl": lambda df, p: df.to_json(p, orient="records", lines=True, double_precision=15),
    "table.feather": lambda df, p: df.to_feather(p),
    "quoted.csv": lambda df, p: df.map(lambda v: repr(v).replace(".", ",") if isinstance(v, float) else v).to_csv(
        p, index=False
    ),
}


def _test_r2(cli, workdir, path, *overrides):
    cfg = write_config(workdir / f"{path.name}.yaml", path, name=path.name.replace(".", "_"))
    r = cli("fit", cfg, *overrides, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["test"]["r2"], r


def test_one_table_in_every_format_trains_to_the_same_test_metric(workdir, cli):
    pytest.importorskip("openpyxl")
    df = _table()
    results = {}
    for name, write in WRITERS.items():
        write(df, workdir / name)
        results[name] = _test_r2(cli, workdir, workdir / name)
    results["told"] = _test_r2(
        cli, workdir, workdir / "semicolon.csv", "data.decimal=,", "data.sep=semicolon", "name=told"
    )
    reference = results["comma.csv"][0]
    for name, (r2, _) in results.items():
        assert r2 == pytest.approx(reference, abs=1e-6), name
    said = results["semicolon.csv"][1].stderr + results["semicolon.csv"][1].stdout
    assert "semicolon.csv: fields separated by semicolons" in said
    assert "'a', 'b', 'c', 'y' read as numbers written with a decimal comma" in said
    quoted = results["quoted.csv"][1]
    assert "decimal comma" in quoted.stderr + quoted.stdout and "separated by" not in quoted.stderr + quoted.stdout


def test_a_bag_says_what_reading_its_table_found_and_reads_it_so_again(workdir, cli):
    df = make_table(n=150, task="regression")
    df.to_csv(workdir / "semi.csv", index=False, sep=";", decimal=",")
    cfg = write_config(workdir / "c.yaml", workdir / "semi.csv", data={"target": "y", "sep": ";"}, train={"bag": 3})
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.stderr
    assert "semi.csv: 'a', 'b', 'c', 'y' read as numbers written with a decimal comma" in r.stdout
    r = cli("eval", "runs/t", "--json")  # the bag's test rows read again, as the fit read them
    assert r.exit_code == 0, r.stderr


def test_a_comma_that_may_group_thousands_is_refused_naming_the_keys_then_read_as_told(workdir, cli):
    df = make_table(n=150, task="regression")
    df["price"] = [f"{v:,}" for v in (df["a"].abs() * 5000 + 1000).round().astype(int)]  # 1,299 or 1.299?
    df.loc[0, "price"] = "1,299"
    path = workdir / "prices.csv"
    df.to_csv(path, index=False)
    cfg = write_config(workdir / "c.yaml", path, data={"target": "y"})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "Traceback" not in r.stderr + r.stdout
    assert "column 'price' holds numbers such as '" in r.stderr
    assert "set data.decimal=',' (decimal) or data.thousands=',' (thousands)" in r.stderr
    assert not (workdir / "runs").exists()
    r = cli("fit", cfg, "data.thousands=,", "--json")
    assert r.exit_code == 0, r.stderr
    run = json.loads(r.stdout)["run_dir"]
    prep = __import__("torch").load(f"{run}/best.pt", weights_only=False)["prep"]
    assert prep["kinds"]["price"] == "numeric" and prep["read"] == {"thousands": ","}
    r = cli("eval", run, "--data", path, "--json")  # eval reads a file as the run's were read
    assert r.exit_code == 0, r.stderr


def test_data_sep_names_a_delimiter_and_refuses_what_is_not_one(workdir, cli):
    df = make_table(n=120)
    path = workdir / "pipes.txt"
    df.to_csv(path, index=False, sep="|")
    cfg = write_config(workdir / "c.yaml", path)
    r = cli("fit", cfg, "data.sep=pipe", "--json")
    assert r.exit_code == 0, r.stderr
    assert "separated by" not in r.stderr  # given, not found
    r = cli("fit", cfg, "data.sep=ab")
    assert r.exit_code == 2 and "data.sep" in r.stderr and "one character or comma, semicolon, tab, pipe" in r.stderr
    r = cli("fit", cfg, "data.sep=;")
    assert r.exit_code == 2 and "only one column" in r.stderr and "set data.sep" in r.stderr


def test_predict_reads_a_semicolon_file_for_a_run_trained_on_a_comma_csv(workdir, cli):
    df = make_table(n=120, task="regression")
    df.to_csv(workdir / "train.csv", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.csv")
    assert cli("fit", cfg).exit_code == 0
    df.drop(columns="y").head(5).to_csv(workdir / "new.csv", index=False, sep=";", decimal=",")
    df.drop(columns="y").head(5).to_csv(workdir / "same.csv", index=False)
    out = {}
    for name in ("new.csv", "same.csv"):
        r = cli("predict", "runs/t", workdir / name, "-o", workdir / f"{name}.out.csv")
        assert r.exit_code == 0, r.stderr
        out[name] = pd.read_csv(workdir / f"{name}.out.csv")["prediction"]
    assert out["new.csv"].tolist() == pytest.approx(out["same.csv"].tolist(), rel=1e-6)
