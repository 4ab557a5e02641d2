"""What the API gives back: a Run (one trained run, its model in memory) and Folds (a cross-validation
folder), and how they read data given as a DataFrame or a file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nntrain import metrics as M
from nntrain.config.schema import Config
from nntrain.data.frames import indexed_like, table_or_path
from nntrain.errors import UserError

Data = str | Path | pd.DataFrame
Level = float | None  # a probability asked (eval's level, predict's interval and sets), or none


class DataWarning(UserWarning):
    """The data read at eval or predict time holds what training never saw (read as unknown)."""


class _Evaluated:
    """What a Run and a Bag share: eval's report (with the coverage of predict's intervals or sets) and evaluate;
    each gives its _prep, _metrics_report, _test_encoded and _scores (the mean, and a bag's members for CV+)."""

    def report(
        self, data: Data | None = None, strict: bool = False, level: Level = 0.9, sheet: str | None = None
    ) -> dict:
        """What `nntrain eval --json` prints: metrics, baselines, rows and where they come from (`sheet`: as
        predict's); with `level`, "conformal": the coverage and width (or set size) of predict's intervals there."""
        from nntrain.tools.conformal import eval_coverage
        from nntrain.tools.inference import rows_of

        report = self._metrics_report(rows := rows_of(data, "--data", self._prep, sheet), strict)
        _warn(report["notes"])
        if level is not None:
            report["conformal"] = eval_coverage(
                self._prep, self._test_encoded, rows, level, self.held_out, self._scores
            )
        return report

    def evaluate(self, data: Data | None = None, strict: bool = False) -> dict:
        """Metrics on the test split, or on `data` (a file or a DataFrame)."""
        return self.report(data, strict, level=None)["metrics"]


class Run(_Evaluated):
    """A trained run: its folder, summary, metrics per epoch, and the model (in memory) to evaluate and predict.

    The model is kept in memory, so a Run still predicts when its folder was a temporary one (the estimators')."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        from nntrain.runs.folders import resolve_run_dir
        from nntrain.tools.inference import load_run

        self.run_dir = resolve_run_dir(str(run_dir))
        self.checkpoint = checkpoint
        self._loaded = load_run(self.run_dir, checkpoint)
        summary = self.run_dir / "summary.json"
        self.summary: dict = json.loads(summary.read_text()) if summary.is_file() else {}
        metrics = self.run_dir / "metrics.csv"
        has_rows = metrics.is_file() and metrics.stat().st_size
        self.metrics: pd.DataFrame = pd.read_csv(metrics) if has_rows else pd.DataFrame()

    def __getstate__(self) -> dict:
        """Pickled without the model object (its class is made at run time): the weights, rebuilt on load."""
        loaded = self._loaded
        return {**vars(self), "_loaded": (loaded.run_dir, loaded.ckpt, loaded.split)}

    def __setstate__(self, state: dict) -> None:
        from nntrain.tools.inference import from_checkpoint

        run_dir, ckpt, split = state["_loaded"]
        vars(self).update(state, _loaded=from_checkpoint(run_dir, ckpt, split, run_dir / "(pickled)"))

    @property
    def config(self) -> Config:
        return self._loaded.cfg

    @property
    def task(self) -> str:
        return self._loaded.prep["task"]

    @property
    def classes(self) -> list | None:
        return self._loaded.prep.get("classes")

    def in_float64(self) -> Run:
        """Predict in float64 from here on: a row's prediction no longer moves (by 1e-7) with the number of rows
        predicted beside it, as float32 matrix products do; what scikit-learn's checks ask of an estimator."""
        self._loaded.model.double()
        return self

    def params(self) -> dict:
        """The parameter table `nntrain params RUN_DIR --json` prints: per layer, and the totals."""
        from nntrain.model.mlp import param_table

        return param_table(self._loaded.model)

    @property
    def _prep(self) -> dict:
        return self._loaded.prep

    def _metrics_report(self, rows: Any, strict: bool) -> dict:
        from nntrain.tools.inference import evaluate_run

        return evaluate_run(self._loaded, rows, strict)

    def _test_encoded(self) -> Any:
        from nntrain.data.reread import split_encoded

        return split_encoded(self._loaded.prep, self._loaded.split, self.run_dir, "test")

    def _scores(self, X: Any) -> tuple:
        from nntrain.tools.inference import scores_of

        return scores_of(self._loaded, X), None

    def predict(
        self, data: Data, strict: bool = False, interval: Level = None, sets: Level = None, sheet: str | None = None
    ) -> pd.DataFrame:
        """Raw rows in (a DataFrame or a file with the training columns; `sheet`: a workbook's sheet to read, default
        the one named as the run's or its only one): `prediction`, and `proba_<class>` for a classifier; labels as
        in the training data. interval=0.9 adds `lower` and `upper` (a regression), sets=0.9 `set` and `set_size`
        (a classifier): split conformal on the validation rows, holding the truth with that probability."""
        from nntrain.data.columns import Report
        from nntrain.tools.conformal import with_bounds
        from nntrain.tools.inference import predict_frame, rows_of

        report = Report(strict)
        frame = indexed_like(
            predict_frame(self._loaded, rows_of(data, "INPUT", self._prep, sheet, report.notes), report), data
        )
        _warn(report.notes)
        if interval is None and sets is None:
            return frame
        return with_bounds(frame, self._loaded.prep, self.held_out(), interval, sets)

    def held_out(self) -> dict:
        """The validation rows' residuals or true-class probabilities (what intervals and sets are calibrated
        on), computed once and kept: an estimator's run keeps them when its folder goes."""
        from nntrain.tools.conformal import run_held_out

        if getattr(self, "_held", None) is None:
            self._held = run_held_out(self._loaded)
        return self._held

    def explain(self, data: Data | None = None, repeats: int = 5, seed: int = 0) -> dict:
        """Permutation importance on the test split (or `data`), one row per original column, as `nntrain
        explain` prints it; also written to RUN_DIR/importance.csv and importance.png while the run folder is
        there (an estimator's temporary one is not: then "files" is empty). {"metric", "base", "rows", "data",
        "table" (a DataFrame, most important first), "files"}."""
        from nntrain.tools.explain import explained, importance

        if data is None and not self.run_dir.is_dir():
            raise UserError(f"explain: {self._gone()}; give data= (rows with the target column) to explain it on")
        return explained(self.run_dir, importance(self._loaded, table_or_path(data), repeats, seed))

    def export(self, fmt: str = "onnx", output: str | Path | None = None, force: bool = False) -> Path:
        """The model with its preprocessing folded in, as ONNX or TorchScript, as `nntrain export`; its path.
        Without `output` it goes into the run folder; a run whose folder is gone (an estimator's temporary one)
        is exported from memory to `output`."""
        from nntrain.tools.export import export_loaded, export_run
        from nntrain.tools.inference import from_checkpoint

        if self.run_dir.is_dir():
            return export_run(self.run_dir, fmt, None if output is None else Path(output), self.checkpoint, force)
        if output is None:
            raise UserError(f"export: {self._gone()}; give output=FILE to write the model there")
        loaded = self._loaded  # its model may be in float64 (in_float64): a float32 one built from its weights
        loaded = from_checkpoint(loaded.run_dir, loaded.ckpt, loaded.split, loaded.run_dir / "(in memory)")
        return export_loaded(loaded, fmt, Path(output), self.checkpoint, force)

    def _gone(self) -> str:
        return (
            f"this run's folder {self.run_dir} is not there any more (an estimator fitted without run_dir "
            f"removes its temporary folder and keeps the model in memory; fit with run_dir=... to keep it)"
        )

    def __repr__(self) -> str:
        test = self.summary.get("test") or {}
        shown = " ".join(f"{k}={M.shown(v)}" for k, v in test.items() if isinstance(v, float))  # as fit prints them
        status = self.summary.get("status", "unfinished")
        return f"Run({str(self.run_dir)!r}, {self.task}, {status}, test {shown or '-'})"


class Folds:
    """A cross-validation folder (RUNS_DIR/NAME-cv): each fold's Run, cv.json, and predictions averaged over
    the folds' models (class probabilities, or values)."""

    def __init__(self, folder: str | Path, checkpoint: str = "best"):
        from nntrain.tools.crossval import cv_config, read_cv

        self.run_dir = Path(folder)
        self.summary = read_cv(self.run_dir)
        self.config: Config = cv_config(self.run_dir, self.summary)  # as Run.config: what the folds trained with
        # a fold's folder is found in the cv folder, wherever that was made or moved, from whatever working folder
        folders = [self.run_dir / Path(f["run_dir"]).name for f in self.summary["folds"] if "diverged" not in f]
        self.runs = [Run(d, checkpoint) for d in folders]
        self.task = self.runs[0].task if self.runs else self.summary.get("task")

    def predict(
        self, data: Data, strict: bool = False, interval: Level = None, sets: Level = None, sheet: str | None = None
    ) -> pd.DataFrame:
        """The folds' models averaged; interval=0.9 adds `lower` and `upper` (CV+: fold k's prediction with the
        residuals of the rows fold k held out), sets=0.9 `set` and `set_size` (LAC on every fold's held-out rows)."""
        import numpy as np

        from nntrain.tools.conformal import with_bounds

        if not self.runs:
            raise UserError(
                f"{self.run_dir}: every fold diverged (cv.json says how), so no fold has a model to predict with; "
                f"run the cross-validation again with a lower optimizer.lr"
            )
        frames = [run.predict(data, strict, sheet=sheet) for run in self.runs]
        mean = sum(f.drop(columns="prediction") for f in frames) / len(frames) if frames[0].shape[1] > 1 else None
        if mean is None:  # regression: the folds' values averaged
            frame = frames[0].assign(prediction=sum(f["prediction"] for f in frames) / len(frames))
        else:
            labels = np.asarray(self.runs[0].classes, dtype=object)
            frame = mean.assign(prediction=labels[mean.to_numpy().argmax(axis=1)])[["prediction", *mean.columns]]
        if interval is None and sets is None:
            return frame
        members = [(k, f["prediction"].to_numpy()) for k, f in enumerate(frames, start=1)] if mean is None else None
        return with_bounds(frame, self.runs[0]._prep, self.held_out(), interval, sets, members)

    def in_float64(self) -> Folds:
        """Predict in float64 from here on (Run.in_float64), every fold."""
        for run in self.runs:
            run.in_float64()
        return self

    def held_out(self) -> dict:
        """What the folder's intervals and sets are calibrated on: each fold's held-out rows through its model (its
        validation rows), residuals per fold, or every such row's probability of its true class."""
        import numpy as np

        held = [run.held_out() for run in self.runs]
        if "residuals" in held[0]:
            return {"residuals": {k: h["residuals"] for k, h in enumerate(held, start=1)}}
        return {"true_proba": np.concatenate([h["true_proba"] for h in held])}

    def __getattr__(self, name: str) -> Any:
        if name in ("report", "evaluate", "explain", "params", "export", "metrics"):
            raise UserError(
                f"{self.run_dir} is a cross-validation folder: {name} works on one fold's run ({self.run_dir}/fold1); "
                f"cv.json holds every fold's metrics"
            )
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Folds({str(self.run_dir)!r}, {len(self.runs)} folds)"


class Bag(_Evaluated):
    """A cross-fitted bag (train.bag): its members' Runs, summary.json (the out-of-fold metrics as `val`), and
    predictions and metrics of the members averaged (class probabilities, or values)."""

    def __init__(self, folder: str | Path, checkpoint: str = "best"):
        from nntrain.tools.bag_inference import load_members, read_oof

        self.run_dir = Path(folder)
        self.checkpoint = checkpoint
        summary = self.run_dir / "summary.json"
        self.summary: dict = json.loads(summary.read_text()) if summary.is_file() else {}
        self.plan, self._members = load_members(self.run_dir, checkpoint)
        frames = [pd.read_csv(m.run_dir / "metrics.csv").assign(member=k) for k, m in enumerate(self._members, 1)]
        self.metrics: pd.DataFrame = pd.concat(frames, ignore_index=True)  # every member's metrics.csv, `member` k
        oof = self.run_dir / "oof.csv"
        self._oof = read_oof(oof, self._members[0].prep) if oof.is_file() else None  # intervals and sets use it

    @property
    def task(self) -> str:
        return self._members[0].prep["task"]

    @property
    def classes(self) -> list | None:
        return self._members[0].prep.get("classes")

    @property
    def config(self) -> Config:
        """The bag's config.yaml, as fit wrote it (each member's own is in its folder)."""
        from nntrain.config.loading import load_config

        return load_config(self.run_dir / "config.yaml")

    def __getstate__(self) -> dict:
        """Pickled as a Run is: each member's weights, rebuilt on load."""
        return {**vars(self), "_members": [(m.run_dir, m.ckpt, m.split) for m in self._members]}

    def __setstate__(self, state: dict) -> None:
        from nntrain.tools.inference import from_checkpoint

        members = [from_checkpoint(d, ckpt, split, d / "(pickled)") for d, ckpt, split in state["_members"]]
        vars(self).update(state, _members=members)

    def in_float64(self) -> Bag:
        """Predict in float64 from here on (Run.in_float64), every member."""
        for member in self._members:
            member.model.double()
        return self

    @property
    def oof(self) -> pd.DataFrame:
        """Every non-test row's out-of-fold prediction (oof.csv): its row in the file, fold, target, prediction."""
        if self._oof is None:
            raise UserError(f"{self.run_dir} has no oof.csv: the bag has not finished (nntrain fit --resume)")
        return self._oof.copy()

    @property
    def _prep(self) -> dict:
        return self._members[0].prep

    def _metrics_report(self, rows: Any, strict: bool) -> dict:
        from nntrain.tools.bag_inference import bag_report

        return bag_report(self.run_dir, self.plan, self._members, rows, strict)

    def _test_encoded(self) -> Any:
        from nntrain.data.reread import load_encoded

        return load_encoded(self._prep, rows=self.plan["test"]) if self.plan["test"] else None

    def _scores(self, X: Any) -> tuple:
        from nntrain.tools.bag_inference import bag_scores

        return bag_scores(self.plan, self._members, X, self.task == "regression")

    def predict(
        self, data: Data, strict: bool = False, interval: Level = None, sets: Level = None, sheet: str | None = None
    ) -> pd.DataFrame:
        """As Run.predict, the members' mean; interval: CV+ from the out-of-fold rows, sets: LAC from them."""
        from nntrain.data.columns import Report
        from nntrain.tools.bag_inference import bag_predict
        from nntrain.tools.conformal import with_bounds
        from nntrain.tools.inference import rows_of

        report = Report(strict)
        wanted = interval is not None and self.task == "regression"
        got = bag_predict(
            self.plan, self._members, rows_of(data, "INPUT", self._prep, sheet, report.notes), report, members=wanted
        )
        frame, members = got if wanted else (got, None)
        frame = indexed_like(frame, data)
        _warn(report.notes)
        if interval is None and sets is None:
            return frame
        return with_bounds(frame, self._members[0].prep, self.held_out(), interval, sets, members)

    def held_out(self) -> dict:
        """The out-of-fold residuals (per fold) or true-class probabilities, from oof.csv when the bag loaded."""
        from nntrain.tools.conformal import bag_held_out

        if getattr(self, "_held", None) is None:
            self._held = bag_held_out(self.oof, self._members[0].prep)
        return self._held

    def explain(self, data: Data | None = None, repeats: int = 5, seed: int = 0) -> dict:
        """Permutation importance of the members' mean, as Run.explain gives it (importance.csv, .png in the bag's
        folder)."""
        from nntrain.tools.explain import explained, importance

        if data is None and not self.run_dir.is_dir():
            raise UserError(
                f"explain: {self.run_dir} is gone; give data= (rows with the target column) to explain it on"
            )
        bag = (self.run_dir, self.plan, self._members)
        return explained(self.run_dir, importance(self._members[0], table_or_path(data), repeats, seed, bag))

    def export(self, fmt: str = "onnx", output: str | Path | None = None, force: bool = False) -> Path:
        """The members' mean with the bag's preprocessing folded in, as `nntrain export RUN_DIR`; its path."""
        from nntrain.tools.export import export_run

        if not self.run_dir.is_dir():
            raise UserError(f"export: the bag's folder {self.run_dir} is not there any more; fit with run_dir=...")
        return export_run(self.run_dir, fmt, None if output is None else Path(output), self.checkpoint, force)

    def params(self) -> dict:
        """One member's parameter table (every member has the same layers), with `members`: their number."""
        from nntrain.model.mlp import param_table

        return {**param_table(self._members[0].model), "members": len(self._members)}

    def __repr__(self) -> str:
        return f"Bag({str(self.run_dir)!r}, {len(self._members)} members)"


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=3)
