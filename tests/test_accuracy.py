"""The figures the shipped configs must reach (mean test metric over seeds 0, 1, 2; the seed moves the split too)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import REAL_PHONE, REPO

pytestmark = pytest.mark.slow


def mean_test(cli, config: str, metric: str, *overrides: str) -> float:
    values = []
    for seed in (0, 1, 2):
        r = cli("fit", REPO / "configs" / config, f"seed={seed}", *overrides, "--json")
        assert r.exit_code == 0, r.stderr
        values.append(json.loads(r.stdout.strip().splitlines()[-1])["test"][metric])
    print(config, metric, [round(v, 4) for v in values], round(float(np.mean(values)), 4))
    return float(np.mean(values))


@pytest.mark.skipif(not REAL_PHONE.is_file(), reason="the real phone table is not at ../shared/data/")
def test_phone_on_the_real_table(workdir, cli):
    assert mean_test(cli, "phone.yaml", "accuracy", f"data.path={REAL_PHONE}") >= 0.96


def test_phone_on_the_synthetic_table(workdir, cli):
    assert mean_test(cli, "phone.yaml", "accuracy") >= 0.90


@pytest.mark.parametrize(
    "config, metric, goal",
    [
        ("digits.yaml", "accuracy", 0.95),
        ("breast_cancer.yaml", "accuracy", 0.95),
        ("diabetes.yaml", "r2", 0.38),
        ("iris.yaml", "accuracy", 0.90),
    ],
)
def test_sklearn_datasets(workdir, cli, config, metric, goal):
    assert mean_test(cli, config, metric) >= goal
