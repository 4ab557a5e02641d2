"""Column encodings a well-kept library or a textbook offers, against nntrain's own. For every run folder that
`real_tables.py --out FOLDER` left whose table has such columns, the run's config is trained again on a copy of
its table with the alternative applied, so the split, the seed and every other key are the run's; the report
shows both test metrics, seed by seed, and their means per table.

- `--kind target`: scikit-learn's cross-fitted `TargetEncoder` in place of the embedding of each string column
  with at least --min-levels levels (fitted on the run's non-test rows with `fit_transform`, each row encoded by
  folds it is not in, and applied to its test rows).
- `--kind cyclic`: beside each date column (nntrain reads its parts: month, day, weekday, hour, day of year...),
  the sine and cosine of its month, day of week, day of year and (where it has times) hour, as number columns.
  From 12a3c98 on nntrain makes these parts itself (data/dates.py), so this kind measures them on a checkout
  before it, as round six did; on today's code it would add them a second time.

    python benchmarks/real_tables.py --out /tmp/rt --fit-only --set train.threads=1   # first: the runs
    python benchmarks/column_alternatives.py /tmp/rt --kind target                    # then: again, encoded
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_tables import NNTRAIN, REPO, TABLES, read_json  # noqa: E402

# a date part and its period: sin and cos of 2 pi part / period
CYCLES = {"month": 12, "day_of_week": 7, "day_of_year": 365.25, "hour": 24}


def string_columns(frame, target: str) -> tuple[list[str], list[str]]:
    """(the string columns nntrain embeds or one-hot encodes, those it reads as dates: its own test)."""
    import pandas as pd

    from nntrain.data.dates import is_date_column

    strings = [c for c in frame.columns if c != target and not pd.api.types.is_numeric_dtype(frame[c])]
    dated = [c for c in strings if is_date_column(frame[c])]
    return [c for c in strings if c not in dated], dated


def target_encoded(frame, target: str, test: list[int], seed: int, least: int):
    """(the table with its many-level strings target-encoded on the rows outside `test`, those columns)."""
    import numpy as np
    from sklearn.preprocessing import TargetEncoder

    columns = [c for c in string_columns(frame, target)[0] if frame[c].nunique() >= least]
    if not columns:
        return frame, []
    y = frame[target]
    binary = y.nunique() == 2
    y = (y == sorted(y.dropna().unique())[1]).astype(float).where(y.notna()) if binary else y
    fitted = np.setdiff1d(np.arange(len(frame)), test)
    fitted = fitted[y.iloc[fitted].notna().to_numpy()]
    others = np.setdiff1d(np.arange(len(frame)), fitted)
    X = frame[columns].astype(str)
    encoder = TargetEncoder(target_type="binary" if binary else "continuous", **folds(binary, seed))
    codes = np.zeros((len(frame), len(columns)))
    codes[fitted] = encoder.fit_transform(X.iloc[fitted], y.iloc[fitted])
    codes[others] = encoder.transform(X.iloc[others])
    out = frame.copy()
    out[columns] = codes
    return out, columns


def folds(binary: bool, seed: int) -> dict:
    """TargetEncoder's cross-fitting folds, shuffled by the seed: KFold or StratifiedKFold, as its default cv
    chooses them (scikit-learn 1.9 takes the splitter; before, its random_state)."""
    import sklearn
    from sklearn.model_selection import KFold, StratifiedKFold

    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 9):
        return {"random_state": seed}
    return {"cv": (StratifiedKFold if binary else KFold)(5, shuffle=True, random_state=seed)}


def cyclic(frame, target: str):
    """(the table with sin and cos columns of its date columns' cyclic parts beside them, the date columns)."""
    import numpy as np
    import pandas as pd

    dated = string_columns(frame, target)[1]
    out = frame.copy()
    for c in dated:
        when = pd.to_datetime(frame[c], errors="coerce", format="mixed")
        for part, period in CYCLES.items():
            value = getattr(when.dt, part).astype(float)
            if part == "hour" and not (value.fillna(0) != 0).any():
                continue  # dates without times
            out[f"{c}_{part}_sin"] = np.sin(2 * math.pi * value / period)
            out[f"{c}_{part}_cos"] = np.cos(2 * math.pi * value / period)
    return out, dated


def again(run_dir: Path, csv: Path, kind: str, least: int, out: Path, overrides: list[str]) -> dict | None:
    """The run trained again on its table with `kind` applied; None where the table has no such column."""
    import pandas as pd

    name, seed = run_dir.name.rsplit("-s", 1)
    spec, split = TABLES[name], read_json(run_dir / "split.json")
    frame = pd.read_csv(csv).drop(columns=list(spec.drop))
    if kind == "target":
        frame, columns = target_encoded(frame, spec.target, split["test"], int(seed), least)
    else:
        frame, columns = cyclic(frame, spec.target)
    if not columns:
        return None
    table, rerun = out / f"{run_dir.name}.csv", out / "runs" / run_dir.name
    frame.to_csv(table, index=False)
    if rerun.exists():
        shutil.rmtree(rerun)  # fit would name its folder -2 beside it
    args = ["fit", str(run_dir / "config.yaml"), f"data.path={table}", f"runs_dir={out / 'runs'}", "data.drop=[]"]
    proc = subprocess.run(NNTRAIN + args + overrides + ["--json", "--quiet"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{run_dir.name}: fit exited {proc.returncode}\n{proc.stderr[-2000:]}")
    if read_json(rerun / "split.json")["test"] != split["test"]:
        raise SystemExit(f"{run_dir.name}: the new table's test split is not the run's")
    before, after = (read_json(d / "summary.json")["test"] for d in (run_dir, rerun))
    metric = "r2" if "r2" in before else "accuracy"
    got = {"table": name, "seed": seed, "columns": columns, "metric": metric}
    return got | {"before": before[metric], "after": after[metric]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="a real_tables.py --out folder (its runs/ and CSVs)")
    ap.add_argument("--kind", choices=("target", "cyclic"), required=True)
    ap.add_argument("--min-levels", type=int, default=30, help="target: strings with this many levels or more")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every fit")
    args = ap.parse_args(argv)
    work = args.out / args.kind
    work.mkdir(exist_ok=True)
    rows, by_table = [], defaultdict(list)
    for summary in sorted((args.out / "runs").glob("*-s*/summary.json")):
        run_dir = summary.parent
        name = run_dir.name.rsplit("-s", 1)[0]
        if name in TABLES and read_json(summary).get("test"):
            got = again(run_dir, args.out / f"{name}.csv", args.kind, args.min_levels, work, args.set)
            if got:
                rows.append(got)
                by_table[name].append(got)
                print(f"# {run_dir.name}: {got['metric']} {got['before']:.4f} -> {got['after']:.4f}", flush=True)
    print(f"\n| table | seed | columns | metric | nntrain's | {args.kind} | difference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [r["table"], r["seed"], ", ".join(r["columns"]), r["metric"], f"{r['before']:.4f}", f"{r['after']:.4f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {r['after'] - r['before']:+.4f} |")
    print("\nMeans over seeds:")
    for name, got in by_table.items():
        before, after = (statistics.mean(r[k] for r in got) for k in ("before", "after"))
        print(f"- {name}: nntrain's {before:.4f}, {args.kind} {after:.4f} ({after - before:+.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
