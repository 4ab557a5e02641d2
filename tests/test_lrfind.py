"""nntrain lr-find: the range test's curve, its files and nothing else, and a suggestion where the loss falls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nntrain.tools.lr_find import suggest

from .conftest import is_png, write_config


def test_the_suggestion_is_where_a_curve_falls_fastest():
    lr = np.geomspace(1e-7, 10, 200)
    x = np.log10(lr)
    falling = 2 - 1 / (1 + np.exp(-(x + 2) * 3))  # falls fastest at lr = 1e-2
    smoothed = falling + np.where(x > 0, (x * 3) ** 2, 0)  # and blows up past lr = 1
    suggested, lowest = suggest(pd.DataFrame({"lr": lr, "smoothed": smoothed}))
    assert 5e-3 < suggested < 2e-2 and 0.2 < lowest < 2


def test_lr_find_writes_its_curve_and_suggests_a_rate(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=300), optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9})
    r = cli("lr-find", config, "--steps", "120", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert 1e-4 < result["suggested"] < result["lowest"] < 10
    folder = workdir / "runs" / "t-lr-find"
    assert sorted(p.name for p in folder.iterdir()) == ["lr_find.csv", "lr_find.png"]  # no checkpoint, no run
    assert sorted(p.name for p in (workdir / "runs").iterdir() if not p.name.startswith(".")) == ["t-lr-find"]
    rows = pd.read_csv(folder / "lr_find.csv")
    assert list(rows.columns) == ["step", "lr", "loss", "smoothed"] and rows["lr"].is_monotonic_increasing
    assert is_png(folder / "lr_find.png")
    r = cli("lr-find", config, "--steps", "60")
    assert "suggested: optimizer.lr=" in r.stdout and f"nntrain fit {config} optimizer.lr=" in r.stdout


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_optimizer_takes_the_range_test(workdir, table_csv, cli, optimizer):
    config = write_config(workdir / "c.yaml", table_csv(n=200), optimizer={"name": optimizer, "lr": 0.01})
    r = cli("lr-find", config, "--steps", "60", "--json")
    assert r.exit_code == 0, r.output
    assert 1e-7 <= json.loads(r.stdout)["suggested"] <= 10


def test_bad_ranges_are_refused(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    r = cli("lr-find", config, "--start", "0")
    assert r.exit_code == 2 and "lr-find: give 0 < --start < --end" in r.stderr
    assert not (workdir / "runs" / "t-lr-find").exists()


@pytest.mark.parametrize(("option", "value"), [("--end", "inf"), ("--start", "inf"), ("--end", "nan")])
def test_a_rate_that_is_not_finite_is_refused_naming_its_option(workdir, table_csv, cli, option, value):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    r = cli("lr-find", config, option, value, "--steps", "20")
    assert r.exit_code == 2 and f"lr-find: {option} {value}: give a finite rate" in r.stderr, r.output
    assert not (workdir / "runs").exists()


def test_a_range_too_steep_says_to_lower_end_or_raise_steps_not_start(workdir, table_csv, cli):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    r = cli("lr-find", config, "--end", "1e300", "--steps", "20")
    assert r.exit_code == 2 and "lower --end (now 1e+300) or raise --steps (now 20)" in r.stderr, r.output
    assert "lower --start" not in r.stderr


def test_lr_find_through_the_api_names_an_argument_of_the_wrong_type(workdir, table_csv):
    """nntrain.lr_find(config, steps="100") raised "TypeError: '<=' not supported between instances of 'int' and
    'str'" (start="1e-7": "must be real number, not str"); each is refused naming the option, nothing written."""
    import nntrain
    from nntrain.errors import UserError

    cfg = write_config(workdir / "c.yaml", table_csv(n=120))
    for kw, said in (({"steps": "100"}, "--steps"), ({"steps": 50.5}, "--steps"), ({"start": "1e-7"}, "--start")):
        with pytest.raises(UserError, match=f"^lr-find: {said}: give a"):
            nntrain.lr_find(cfg, log=None, **kw)
    assert not (workdir / "runs").exists()
