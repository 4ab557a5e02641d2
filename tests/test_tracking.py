"""MLflow tracking: a run (and a sweep's trials, nested) read back through mlflow.MlflowClient, from a local
store here and from a real `mlflow server` when NNTRAIN_TEST_MLFLOW names one (.ci/mlflow.sh starts it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from .conftest import NNTRAIN, write_config

mlflow = pytest.importorskip("mlflow")
SERVER = os.environ.get("NNTRAIN_TEST_MLFLOW")
SESSION = uuid.uuid4().hex[:8]
needs_server = pytest.mark.skipif(not SERVER, reason="NNTRAIN_TEST_MLFLOW is not set (.ci/mlflow.sh sets it)")


def experiment(workdir: Path) -> str:
    """Each test's own experiment, in this session's name: a server kept between sessions holds older ones."""
    return f"test-{SESSION}-{workdir.name}"


def fit(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NNTRAIN, "fit", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_EXPERIMENT_NAME": experiment(workdir), **(env or {})},
    )


def runs_of(client, workdir: Path) -> list:
    found = client.get_experiment_by_name(experiment(workdir))
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])


def assert_logged(client, run, run_dir: Path) -> None:
    """Params, every metrics.csv column per epoch, the test metrics, tags and artifacts: the run folder's."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.tags["task"] == summary["task"] and run.data.tags["data_sha256"] == summary["data"]["sha256"]
    params = run.data.params
    assert params["optimizer.lr"] == "0.01" and params["model.hidden"] == "[8]" and params["train.epochs"] == "3"
    frame = pd.read_csv(run_dir / "metrics.csv")
    for column in frame.columns.drop("epoch"):
        history = client.get_metric_history(run.info.run_id, column)
        assert [m.step for m in history] == list(frame["epoch"])
        assert [m.value for m in history] == pytest.approx(list(frame[column]))
    for name, value in summary["test"].items():
        assert run.data.metrics[f"test_{name}"] == pytest.approx(value)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"best.pt", "last.pt", "config.yaml", "metrics.csv", "summary.json", "curves.png"} <= artifacts
    assert ".lock" not in artifacts


def test_a_run_logged_to_a_local_store_reads_back(workdir, table_csv):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    r = fit(workdir, str(config), "--mlflow", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_dir"] == "runs/t"  # stdout holds only the JSON: MLflow's links are not there
    assert (workdir / "mlruns" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    (run,) = runs_of(client, workdir)
    assert_logged(client, run, workdir / "runs" / "t")


def test_the_config_key_and_the_tracking_uri_variable(workdir, table_csv):
    config = write_config(workdir / "c.yaml", table_csv(n=100), train={"epochs": 3, "batch_size": 16, "mlflow": True})
    store = f"sqlite:///{workdir / 'elsewhere.db'}"
    r = fit(workdir, str(config), env={"MLFLOW_TRACKING_URI": store})
    assert r.returncode == 0, r.stderr
    assert "mlflow: run " in r.stdout and store in r.stdout
    (run,) = runs_of(mlflow.MlflowClient(tracking_uri=store), workdir)
    assert run.info.status == "FINISHED" and not (workdir / "mlruns" / "mlflow.db").exists()


@pytest.mark.slow
def test_train_mlflow_is_honoured_by_cv_and_by_resuming_several_runs(workdir, table_csv):
    """cv: each fold nested under one run of the cross-validation; --resume A --resume B: a run each, as a lone
    resume logs one (the runs' own train.mlflow; no --mlflow given)."""
    store = f"sqlite:///{workdir / 'store.db'}"
    config = write_config(workdir / "c.yaml", table_csv(n=100), train={"epochs": 3, "batch_size": 16, "mlflow": store})
    env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": experiment(workdir)}

    def nntrain(*args: str) -> None:
        r = subprocess.run([*NNTRAIN, *args], cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr

    nntrain("cv", str(config), "--folds", "2")
    client = mlflow.MlflowClient(tracking_uri=store)
    found = {r.info.run_name: r for r in runs_of(client, workdir)}
    assert set(found) == {"cv t-cv", "fold1", "fold2"}
    parent = found["cv t-cv"].info.run_id
    assert all(found[f].data.tags["mlflow.parentRunId"] == parent for f in ("fold1", "fold2"))
    nntrain("fit", str(config), "--seeds", "0,1")
    nntrain("fit", "--resume", "runs/t-seed0", "--resume", "runs/t-seed1", "train.epochs=4")
    names = sorted(r.info.run_name for r in runs_of(client, workdir))
    assert names == sorted(["cv t-cv", "fold1", "fold2"] + ["t-seed0", "t-seed1"] * 2)


def test_without_the_package_the_install_hint_and_no_run_folder(workdir, table_csv):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    code = "import sys; sys.modules['mlflow'] = None; from nntrain.cli import main; sys.argv[0] = 'nntrain'; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, "fit", str(config), "--mlflow"], cwd=workdir, capture_output=True, text=True
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert 'Error: --mlflow needs the MLflow package: pip install "nntrain[mlflow]"' in r.stderr
    assert not (workdir / "runs" / "t").exists()


def test_an_unreachable_server_is_an_error_before_training(workdir, table_csv):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    r = fit(workdir, str(config), "--mlflow-uri", "http://127.0.0.1:9", env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--mlflow http://127.0.0.1:9: cannot use the tracking store" in r.stderr
    assert not (workdir / "runs" / "t").exists()


@needs_server
def test_a_run_and_a_sweep_on_a_real_tracking_server(workdir, table_csv):
    client = mlflow.MlflowClient(tracking_uri=SERVER)
    data = table_csv(n=100)
    config = write_config(workdir / "c.yaml", data)
    r = fit(workdir, str(config), "--mlflow-uri", SERVER)
    assert r.returncode == 0, r.stderr
    (run,) = runs_of(client, workdir)
    assert_logged(client, run, workdir / "runs" / "t")
    # a sweep: one parent run for the study, each trial a nested run under it
    sweep = write_config(workdir / "s.yaml", data, sweep={"model.hidden": [[8], [4]], "pruner": "none"})
    r = subprocess.run(
        [*NNTRAIN, "sweep", str(sweep), "--grid", "--study", "st", "--mlflow-uri", SERVER],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_EXPERIMENT_NAME": experiment(workdir)},
    )
    assert r.returncode == 0, r.stderr
    parent, *trials = [x for x in runs_of(client, workdir) if x.info.run_id != run.info.run_id]
    assert parent.data.tags["nntrain.study"] == "st" and parent.info.status == "FINISHED"
    assert sorted(t.info.run_name for t in trials) == ["trial-0000", "trial-0001"]
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials)
    assert sorted(t.data.params["model.hidden"] for t in trials) == ["[4]", "[8]"]
    assert "best_val_loss" in parent.data.metrics
    assert "sweep.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}


@pytest.mark.parametrize("how", ["--mlflow-uri", "train.mlflow"])
def test_host_port_without_a_scheme_is_refused_not_made_a_folder(workdir, table_csv, cli, how):
    config = write_config(workdir / "c.yaml", table_csv(n=100))
    args = ["--mlflow-uri", "127.0.0.1:5000"] if how == "--mlflow-uri" else ["train.mlflow=127.0.0.1:5000"]
    r = cli("fit", config, *args)
    assert r.exit_code == 2 and "give http://127.0.0.1:5000" in r.stderr and "Traceback" not in r.output
    assert not (workdir / "127.0.0.1:5000").exists() and not (workdir / "runs" / "t").exists()
