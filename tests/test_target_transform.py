"""data.target_transform: a regression trained on the log of its target predicts in the target's units, in every
face (fit's test metrics, eval, predict, a bag, the ONNX export); auto takes the log only of a skewed positive
target; a value the log cannot take is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nntrain import metrics as M

from .conftest import write_config


def skewed(n=300, seed=0) -> pd.DataFrame:
    """y = exp(a linear score): positive, right-skewed, linear in its log."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.exp(1.0 + x @ np.array([0.8, -0.5, 0.3]) + rng.normal(scale=0.1, size=n))
    return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y)


def test_a_log_target_predicts_in_the_targets_units_in_fit_eval_and_predict(workdir, cli):
    skewed().to_csv("t.csv", index=False)
    path = write_config(
        workdir / "c.yaml", "t.csv", data={"target": "y", "target_transform": "log"}, train={"epochs": 30}
    )
    assert cli("fit", path, "--quiet").exit_code == 0
    run = workdir / "runs" / "t"
    summary = json.loads((run / "summary.json").read_text())
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", run, "t.csv").output))
    split = json.loads((run / "split.json").read_text())
    truth = pd.read_csv("t.csv")["y"].to_numpy()
    assert (out["prediction"] > 0).all()  # exp of the output: never a negative price
    assert M.regression(truth[split["test"]], out["prediction"].to_numpy()[split["test"]])["r2"] == pytest.approx(
        summary["test"]["r2"], abs=1e-5
    )
    assert summary["test"]["r2"] > 0.8
    report = json.loads(cli("eval", run, "--json").output.strip().splitlines()[-1])
    assert report["metrics"]["r2"] == pytest.approx(summary["test"]["r2"], abs=1e-6)


def test_auto_takes_the_log_of_a_skewed_target_only_and_says_so(workdir, cli):
    frame = skewed()
    frame.to_csv("t.csv", index=False)
    frame.assign(y=np.log(frame["y"])).to_csv("flat.csv", index=False)  # symmetric already: no log
    base = {"data": {"target": "y", "target_transform": "auto"}, "train": {"epochs": 1}}
    r = cli("fit", write_config(workdir / "c.yaml", "t.csv", **base))
    assert "note: data.target_transform auto: log ('y' skewed" in r.output
    r = cli("fit", write_config(workdir / "d.yaml", "flat.csv", **base))
    assert r.exit_code == 0 and "target_transform auto" not in r.output
    saved = [json.loads(p.read_text()) for p in sorted((workdir / "runs").glob("*/summary.json"))]
    assert len(saved) == 2


def test_log_refuses_a_target_value_at_or_below_zero_by_row(workdir, cli):
    frame = skewed()
    frame.loc[7, "y"] = 0.0
    frame.to_csv("t.csv", index=False)
    r = cli("fit", write_config(workdir / "c.yaml", "t.csv", data={"target": "y", "target_transform": "log"}))
    assert r.exit_code == 2 and "column 'y' (the target) has 0 in row 8" in r.output
    assert "Traceback" not in r.output and not (workdir / "runs" / "t").exists()


def test_a_bag_on_a_log_target_exports_the_same_predictions(workdir, cli):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    skewed(200).to_csv("t.csv", index=False)
    data = {"target": "y", "target_transform": "log"}
    path = write_config(workdir / "c.yaml", "t.csv", data=data, train={"epochs": 5, "bag": 3, "linear": True})
    assert cli("fit", path, "--quiet").exit_code == 0
    root = workdir / "runs" / "t"
    bag = pd.read_csv(pd.io.common.StringIO(cli("predict", root, "t.csv").output))
    assert cli("export", root).exit_code == 0
    frame = pd.read_csv("t.csv")
    out = ort.InferenceSession(str(root / "model.onnx")).run(
        None, {"features": frame[["a", "b", "c"]].to_numpy(np.float64)}
    )
    got = out[0].reshape(-1)
    assert np.allclose(got, bag["prediction"].to_numpy(), rtol=1e-4)
