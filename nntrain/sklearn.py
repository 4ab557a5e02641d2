"""scikit-learn estimators: NNClassifier and NNRegressor train an nntrain config on (X, y).

The constructor takes the config (a YAML path or a dict; None: the tabular recipe) and dotted overrides as
keyword arguments with `__` for the dot (optimizer__lr=0.01 is optimizer.lr=0.01), which get_params and
set_params expose, so GridSearchCV(param_grid={"nn__optimizer__lr": [...]}) works through a Pipeline.

fit(X, y) trains on every row but a validation split (data.val_size, 10%) that picks the best epoch: there is
no test split (data.test_size=0); score on your own held-out rows. With config=None the recipe trains one model
(scikit-learn's searches cross-validate around it already); train__bag=5 (or "auto") makes it the recipe's bag,
which `run_` then holds (a Bag: it predicts, pickles and explains given rows as a Run does).

Without `run_dir` the run folder is a temporary one, removed after fit: the model lives in the estimator
(`run_`), which pickles, predicts, explains given rows and exports to a file named with output=. A signal
(Ctrl-C) during fit is a KeyboardInterrupt, which scikit-learn's searches let through, never a failed fit.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from nntrain import api
from nntrain.config.schema import Config
from nntrain.config.strict import unknown_key
from nntrain.engine.stopping import Interrupted
from nntrain.errors import Stop

FIXED = ("config", "run_dir", "verbose")  # the arguments that are not config overrides
TEMPORARY = "the run folder was a temporary one and is removed; fit with run_dir=... to keep a resumable run"


class _NNEstimator(BaseEstimator):
    """What the two estimators share: parameters, input checks, fit through nntrain.fit, prediction."""

    def __init__(self, config: str | dict | None = None, *, run_dir: str | None = None, verbose: bool = False,
                 **overrides: Any):  # fmt: skip
        self.config = config
        self.run_dir = run_dir
        self.verbose = verbose
        self._overrides = dict(overrides)  # the config keys, as given (optimizer__lr)

    def __getattr__(self, name: str) -> Any:  # an override reads as the attribute it is to scikit-learn
        overrides = self.__dict__.get("_overrides", {})
        if name in overrides:
            return overrides[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in FIXED}, **self._overrides}

    def set_params(self, **params: Any) -> _NNEstimator:
        """Sets parameters; refuses a key that is neither a config key nor one __init__ was given (get_params'
        keys, as scikit-learn's own estimators do; __init__ checks nothing, fit checks every key)."""
        for key, value in params.items():
            if key in FIXED:
                setattr(self, key, value)
            elif key.startswith("_") or key.endswith("_"):
                raise ValueError(f"{key}: not a parameter of {type(self).__name__} (a config key, or one of {FIXED})")
            elif key not in self._overrides and (why := unknown_key(Config, key.replace("__", "."))) is not None:
                raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}: {why}")
            else:
                self._overrides[key] = value
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed, as in a table
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """X as the DataFrame nntrain reads: a DataFrame's own columns, or x0, x1, ... for an array. At predict
        the columns go by position, named as at fit: an array after a frame (or a frame after an array) is
        predicted as scikit-learn's estimators predict it, once validate_data has warned that the names differ."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if len(X) == 0:
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
            if X.shape[1] == 0:
                raise ValueError(f"X has no columns (shape={X.shape}): a minimum of 1 feature column is required.")
            names, frame = [str(c) for c in X.columns], X.reset_index(drop=True)
        else:
            X = check_array(X, dtype=None, ensure_all_finite="allow-nan")
            if X.dtype.kind == "O":
                _only_plain_values(X)
            validate_data(self, X, reset=reset, skip_check_array=True)
            names, frame = [f"x{i}" for i in range(X.shape[1])], pd.DataFrame(X).infer_objects()
        if reset:
            self._columns = names
        return frame.set_axis(names if reset else getattr(self, "_columns", names), axis=1)

    def _fit(self, X: Any, y: np.ndarray, task: str) -> _NNEstimator:
        frame = self._frame(X, reset=True)
        if len(frame) < 2:
            raise ValueError(f"{len(frame)} sample(s): fit needs 2 or more, rows to train on and to validate on")
        if len(y) != len(frame):
            raise ValueError(
                f"X has {len(frame)} rows but y has {len(y)} values: give one y per row of X (found input variables "
                f"with inconsistent numbers of samples: [{len(frame)}, {len(y)}])"
            )
        target = next(n for n in ("target", *(f"target_{k}" for k in range(frame.shape[1] + 1))) if n not in frame)
        frame[target] = y
        base = self.config if self.config is not None else {"data": {}}
        extra = {k.replace("__", "."): v for k, v in self._overrides.items()}
        if self.config is None:  # the recipe's one model: a search cross-validates around it already
            extra = {"train.bag": 1, **extra}
        fixed = {"data.target": target, "data.task": task, "data.test_size": 0, "data.cache": False}
        temp = None if self.run_dir else tempfile.mkdtemp(prefix="nntrain-")
        fixed |= {"runs_dir": self.run_dir or temp, "train.plots": self.run_dir is not None}
        try:
            self.run_ = api.fit(base, {**extra, **fixed}, data=frame, name=type(self).__name__,
                                log=print if self.verbose else None)  # fmt: skip
        except Interrupted as e:  # a signal stops a search too: never a failed fit that scikit-learn passes over
            kept = str(e) if self.run_dir else f"{str(e).split(';')[0]}; {TEMPORARY}"
            raise KeyboardInterrupt(kept) from None
        except Stop as e:  # a bad value or config, said as nntrain says it, as the ValueError scikit-learn expects
            raise ValueError(str(e)) from None
        else:
            with contextlib.suppress(Stop):  # kept before a temporary folder goes: what intervals and sets need
                self.run_.held_out()
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)
        if temp is not None and self.verbose:  # the output named the folder: it must not send the user looking for it
            print(f"{self.run_.run_dir}: removed, it was a temporary one; fit with run_dir=... to keep a resumable run")
        return self

    def _predicted(self, X: Any, **bounds: float) -> pd.DataFrame:
        check_is_fitted(self, "run_")
        try:
            return self.run_.in_float64().predict(self._frame(X, reset=False), **bounds)
        except Stop as e:
            raise ValueError(str(e)) from None


class NNClassifier(ClassifierMixin, _NNEstimator):
    """An nntrain classifier: labels of any type (text, numbers, booleans); predict_proba in classes_ order."""

    def fit(self, X: Any, y: Any) -> NNClassifier:
        y = column_or_1d(_nullable_as_numpy(_given(self, y)), warn=True)
        if (missing := pd.isna(y)).any():  # np.unique would fail on None among text with a TypeError
            raise ValueError(f"y is missing at {missing.sum()} row(s) (first: row {np.flatnonzero(missing)[0]}): "
                             "give every row of X a label, or leave those rows out")  # fmt: skip
        try:  # before scikit-learn's check, which calls mixed labels "unknown" or lets np.unique's TypeError out
            classes, codes = np.unique(y, return_inverse=True)
        except TypeError:
            kinds = " and ".join(sorted({type(v).__name__ for v in y}))
            raise ValueError(f"y mixes labels of types {kinds}, which cannot be ordered: give labels of one type "
                             "(y.astype(str) makes them all text)") from None  # fmt: skip
        check_classification_targets(y)
        self.classes_ = classes
        if len(self.classes_) == 1:
            raise ValueError(f"y has one class ({self.classes_[0]!r}): a classifier needs two or more")
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        return self._fit(X, codes, task)  # class codes: nntrain's class k is classes_[k]

    def predict_proba(self, X: Any) -> np.ndarray:
        out = self._predicted(X)
        proba = np.zeros((len(out), len(self.classes_)))
        for k in range(len(self.classes_)):
            if f"proba_{k}" in out:
                proba[:, k] = out[f"proba_{k}"].to_numpy()
        return proba

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def predict_set(self, X: Any, level: float = 0.9) -> np.ndarray:
        """Which of classes_ each row's prediction set holds (rows x classes, bool): the set holds the true class
        with probability `level` (LAC, calibrated on the validation rows, or a bag's out-of-fold rows)."""
        from nntrain.tools.conformal import checked_level, lac_sets

        try:
            return lac_sets(self.predict_proba(X), self.run_.held_out()["true_proba"], checked_level(level, "level"))
        except Stop as e:
            raise ValueError(str(e)) from None


class NNRegressor(RegressorMixin, _NNEstimator):
    """An nntrain regressor of one numeric target."""

    def fit(self, X: Any, y: Any) -> NNRegressor:
        y = column_or_1d(check_array(_given(self, y), ensure_2d=False, dtype="numeric"), warn=True)
        return self._fit(X, y.astype(np.float64), "regression")

    def predict(self, X: Any) -> np.ndarray:
        return self._predicted(X)["prediction"].to_numpy(dtype=np.float64)

    def predict_interval(self, X: Any, level: float = 0.9) -> np.ndarray:
        """(lower, upper) per row (rows x 2): an interval holding the truth with probability `level` (split
        conformal on the validation rows; CV+ on a bag's out-of-fold rows)."""
        from nntrain.tools.conformal import checked_level

        try:
            checked_level(level, "level")
        except Stop as e:
            raise ValueError(str(e)) from None
        return self._predicted(X, interval=level)[["lower", "upper"]].to_numpy(dtype=np.float64)


def _given(estimator: Any, y: Any) -> Any:
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    return y


def _nullable_as_numpy(y: Any) -> Any:
    """A pandas nullable Int64 / boolean y without missing values as its numpy ints / bools: scikit-learn reads
    them as floats (classes_ 0.0 and 1.0, predictions 1.0 for True)."""
    dtype = getattr(y, "dtype", None)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if isinstance(y, (pd.Series, pd.api.extensions.ExtensionArray)) and numpy_dtype is not None and not y.isna().any():
        return y.to_numpy(dtype=numpy_dtype)
    return y


def _only_plain_values(X: np.ndarray) -> None:
    """An object array holds numbers, text, booleans or missing values (None, NaN, and pandas' NA, which a frame's
    nullable columns hold in its array); anything else is refused as scikit-learn refuses it."""
    for value in X.ravel():
        if not (value is None or value is pd.NA or isinstance(value, (str, bytes, int, float, bool, np.generic))):
            raise TypeError(f"argument must be a string or a real number, not '{type(value).__name__}'")


__all__ = ["NNClassifier", "NNRegressor"]
