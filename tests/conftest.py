from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nntrain.cli import app

REPO = Path(__file__).resolve().parents[1]
REAL_PHONE = REPO.parent / "shared" / "data" / "phone_price.csv"
NNTRAIN = [sys.executable, "-m", "nntrain"]  # the CLI in a real subprocess
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """A run folder's metrics.csv, one dict per epoch."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def is_png(path: Path) -> bool:
    return Path(path).read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Each test runs in its own folder, so runs/ is fresh."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_table(n: int = 120, task: str = "multiclass", seed: int = 0, cat: bool = False) -> pd.DataFrame:
    """A small learnable table: 3 numeric features (+ an optional category), a target per task."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"])
    score = x @ np.array([1.5, -1.0, 0.5])
    if cat:
        df["color"] = rng.choice(["red", "green", "blue"], n)
        score += (df["color"] == "red").to_numpy() * 1.0
    if task == "regression":
        df["y"] = 10 + 3 * score + rng.normal(0, 0.1, n)
    elif task == "binary":
        df["y"] = np.where(score > 0, "yes", "no")
    else:
        df["y"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return df


@pytest.fixture
def table_csv(workdir):
    def _make(name: str = "t.csv", **kw) -> Path:
        path = workdir / name
        make_table(**kw).to_csv(path, index=False)
        return path

    return _make


def write_config(path: Path, data_path: Path | str, **sections) -> Path:
    """A small config: tiny epochs so a fit takes well under a second."""
    import yaml

    cfg = {
        "name": "t",
        "seed": 0,
        "data": {"path": str(data_path)},
        "model": {"hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 3, "batch_size": 16},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def run_benchmark(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """benchmarks/SCRIPT ARGS in its own Python process, from the repository root, output captured."""
    cmd = [sys.executable, f"benchmarks/{script}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
