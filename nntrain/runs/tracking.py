"""MLflow tracking (`fit --mlflow [URI]`, train.mlflow): a finished run folder logged as one MLflow run.

Logged once the run has ended, from its folder: the flattened config as params, every metrics.csv column per
epoch, the test metrics, tags (task, data sha256, status), and the folder's files as artifacts. A sweep's
trials are nested runs under one parent run per study. The default URI is ./mlruns beside the working
directory; a tracking server's http(s) URI sends it there.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntrain.errors import UserError, first_line

DEFAULT_URI = "mlruns"
EXPERIMENT = "nntrain"  # unless MLFLOW_EXPERIMENT_NAME names another
SKIPPED = (".lock",)  # files of a run folder that are not artifacts
STATUS = {"completed": "FINISHED", "early_stop": "FINISHED", "pruned": "KILLED", "interrupted": "KILLED"}


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise UserError('--mlflow needs the MLflow package: pip install "nntrain[mlflow]"') from None
    return mlflow


def store_of(uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment): a URI as given (http://..., sqlite:///...,
    file:...); a plain folder (./mlruns by default) holds an SQLite store, mlflow.db, and the artifacts
    (MLflow 3 refuses its old folder store unless MLFLOW_ALLOW_FILE_STORE is set)."""
    uri = uri or DEFAULT_URI
    if "://" in uri or uri.startswith("file:"):
        return uri, None
    if re.match(r"[^/\\]{2,}:", uri):  # HOST:PORT, http:host: a scheme forgotten, not a folder (C:\ is one)
        host = re.sub(r"^https?:/?", "", uri)
        raise UserError(
            f"mlflow URI {uri} looks like HOST:PORT with its scheme left out; give http://{host} "
            f"(or ./{uri} for a folder of that name)"
        )
    folder = Path(uri).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--mlflow {uri}: cannot create the folder: {e.strerror}") from None
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def tracker_for(mlflow: str | bool | None, cfg: Any, given: str | bool | None = None) -> Tracker | None:
    """A Tracker, or None. mlflow: a URI; True: on (the config's train.mlflow URI, else $MLFLOW_TRACKING_URI,
    else ./mlruns); False: off; None: as the config's train.mlflow (or, without a config, `given`) says."""
    import os

    given = cfg.train.mlflow if cfg is not None else given
    if mlflow is False or (mlflow is None and not given):
        return None
    uri = mlflow if isinstance(mlflow, str) else given if isinstance(given, str) else None
    return Tracker(uri or os.environ.get("MLFLOW_TRACKING_URI"))


class Tracker:
    """Logs run folders to one tracking URI, in the experiment EXPERIMENT (or MLFLOW_EXPERIMENT_NAME)."""

    def __init__(self, uri: str | None):
        import os

        mlflow = _mlflow()
        self.uri, artifacts = store_of(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        try:
            self.client = mlflow.MlflowClient(tracking_uri=self.uri)
            with _patient_for(PROBE_SECONDS):
                found = self.client.get_experiment_by_name(name)
            self.experiment = found.experiment_id if found else self.client.create_experiment(name, artifacts)
        except Exception as e:  # no server answering, a refused URI: mlflow raises several types
            shown = f"--mlflow {uri or DEFAULT_URI}"
            raise UserError(f"{shown}: cannot use the tracking store: {first_line(e, 300)}") from None

    def log_run(self, run_dir: Path, parent: str | None = None) -> str:
        """One run folder as an MLflow run (nested under `parent`); its id. A run that ended without a summary
        (a bad value met mid-run) is FAILED."""
        summary = _json(run_dir / "summary.json")
        config = summary.get("config") or _yaml(run_dir / "config.yaml")
        tags = {"mlflow.runName": run_dir.name, "nntrain.run_dir": str(run_dir.resolve())}
        tags |= {"task": summary.get("task", ""), "data_sha256": (summary.get("data") or {}).get("sha256", "")}
        tags |= {"status": summary.get("status", "failed")}
        if parent:
            tags["mlflow.parentRunId"] = parent
        try:
            rid = self.client.create_run(self.experiment, tags=tags).info.run_id
            try:
                self._params(rid, flatten(config))
                self._metrics(rid, run_dir, summary)
                for path in sorted(run_dir.iterdir()):
                    if path.is_file() and path.name not in SKIPPED:
                        self.client.log_artifact(rid, str(path))
            except BaseException:
                with contextlib.suppress(Exception):
                    self._terminated(rid, "FAILED")
                raise
            self._terminated(rid, STATUS.get(tags["status"], "FAILED"))
        except Exception as e:  # the store went away mid-way, say: the run folder itself is whole
            raise UserError(
                f"mlflow {self.uri}: logging {run_dir} failed ({first_line(e, 300)}); the run folder is complete"
            ) from None
        return rid

    def _terminated(self, rid: str, status: str) -> None:
        """set_terminated, without the links MLflow writes to stdout (where `fit --json` prints its object)."""
        with contextlib.redirect_stdout(io.StringIO()):
            self.client.set_terminated(rid, status)

    def _params(self, rid: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # a batch holds at most 100 params
            self.client.log_batch(rid, params=items[i : i + 100])

    def _metrics(self, rid: str, run_dir: Path, summary: dict) -> None:
        from mlflow.entities import Metric

        rows: list = []
        path = run_dir / "metrics.csv"
        frame = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
        stamp = int(pd.Timestamp.now().timestamp() * 1000)
        for _, row in frame.iterrows():
            epoch = int(row["epoch"])
            rows += [Metric(k, float(v), stamp, epoch) for k, v in row.items() if k != "epoch" and _number(v)]
        last = int(frame["epoch"].max()) if len(frame) else 0
        for key in ("test", "test_baseline"):
            values = summary.get(key) or {}
            rows += [Metric(f"{key}_{k}", float(v), stamp, last) for k, v in values.items() if _number(v)]
        for i in range(0, len(rows), 1000):  # a batch holds at most 1000 metrics
            self.client.log_batch(rid, metrics=rows[i : i + 1000])

    def log_group(self, name: str, run_dirs: list[Path], files: list[Path]) -> str:
        """Runs made together (a cross-validation's folds), each nested under one parent run NAME that keeps
        `files` as artifacts; the parent's id."""
        try:
            rid = self.client.create_run(self.experiment, tags={"mlflow.runName": name}).info.run_id
        except Exception as e:
            raise UserError(f"mlflow {self.uri}: logging {name} failed ({first_line(e, 300)})") from None
        for run_dir in run_dirs:
            self.log_run(run_dir, parent=rid)
        with contextlib.suppress(Exception):
            for path in files:
                self.client.log_artifact(rid, str(path))
            self._terminated(rid, "FINISHED")
        return rid

    def parent(self, study: str) -> str:
        """The study's parent run: the one already tagged with its name (another worker's), or a new one."""
        query = f"tags.`nntrain.study` = '{study}' and attributes.status = 'RUNNING'"
        found = self.client.search_runs([self.experiment], query, max_results=1)
        if found:
            return found[0].info.run_id
        tags = {"mlflow.runName": f"sweep {study}", "nntrain.study": study}
        return self.client.create_run(self.experiment, tags=tags).info.run_id

    def end_parent(self, rid: str, result: dict, root: Path, monitor: str) -> None:
        """The study's best trial as the parent's metric (best_MONITOR) and params, sweep.json and trials.csv as
        artifacts."""
        from mlflow.entities import Metric, Param

        if "best_value" in result:
            metric = Metric(f"best_{monitor}", float(result["best_value"]), 0, 0)
            params = [Param(f"best.{k}", str(v)[:6000]) for k, v in result["best_params"].items()]
            with contextlib.suppress(Exception):  # a second worker's params are the same: a conflict, not news
                self.client.log_batch(rid, metrics=[metric], params=params)
        for name in ("sweep.json", "trials.csv"):
            if (root / name).is_file():
                self.client.log_artifact(rid, str(root / name))
        self._terminated(rid, "FINISHED")


# The first request, before training: a server that does not answer is said in seconds, not after MLflow's own
# retries (7, backing off for minutes), unless MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT say otherwise.
PROBE_SECONDS = 10


@contextlib.contextmanager
def _patient_for(seconds: int):
    import os

    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(seconds)}
    unset = [k for k in keys if k not in os.environ]
    os.environ.update({k: keys[k] for k in unset})
    try:
        yield
    finally:
        for k in unset:
            os.environ.pop(k, None)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{"optimizer": {"lr": 0.01}} -> {"optimizer.lr": "0.01"}; lists as JSON."""
    out: dict[str, str] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten(v, key + ".")
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def stored_mlflow(run_dir: Path) -> str | bool | None:
    """The train.mlflow a run folder was trained with (its summary.json's config, else config.yaml)."""
    config = _json(run_dir / "summary.json").get("config") or _yaml(run_dir / "config.yaml")
    return ((config or {}).get("train") or {}).get("mlflow")


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else {}
