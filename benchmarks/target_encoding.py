"""Target encoding against the embeddings: does scikit-learn's cross-fitted `TargetEncoder` serve a string column
with many levels better than nntrain's embedding of it? For every run folder that `real_tables.py --out FOLDER`
left whose table has string columns of at least --min-levels levels, the run's config is trained again on a copy
of its table where those columns are target-encoded: the encoder fitted on the run's non-test rows
(`fit_transform`: each row encoded by folds it is not in) and applied to its test rows, so the split, the seed and
every other key are the run's. The table shows both test metrics, seed by seed, and their means per table.

    python benchmarks/real_tables.py --out /tmp/rt --fit-only --set train.threads=1   # first: the runs
    python benchmarks/target_encoding.py /tmp/rt --set train.threads=1                # then: encoded again
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_tables import NNTRAIN, REPO, TABLES, read_json  # noqa: E402


def many_levels(frame, target: str, least: int) -> list[str]:
    """The string columns (dates aside: nntrain reads those as dates) with at least `least` levels."""
    import pandas as pd

    strings = [c for c in frame.columns if c != target and not pd.api.types.is_numeric_dtype(frame[c])]
    many = [c for c in strings if frame[c].nunique() >= least]
    return [c for c in many if pd.to_datetime(frame[c], errors="coerce", format="mixed").notna().mean() < 0.9]


def encoded_table(frame, columns: list[str], target: str, test: list[int], seed: int):
    """The table with `columns` target-encoded, fitted on the rows outside `test` that have a target."""
    import numpy as np
    from sklearn.preprocessing import TargetEncoder

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
    return out


def folds(binary: bool, seed: int) -> dict:
    """TargetEncoder's cross-fitting folds, shuffled by the seed: KFold or StratifiedKFold, as its default cv
    chooses them (scikit-learn 1.9 takes the splitter; before, its random_state)."""
    import sklearn
    from sklearn.model_selection import KFold, StratifiedKFold

    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 9):
        return {"random_state": seed}
    return {"cv": (StratifiedKFold if binary else KFold)(5, shuffle=True, random_state=seed)}


def encode_and_fit(run_dir: Path, csv: Path, least: int, out: Path, overrides: list[str]) -> dict | None:
    import pandas as pd

    name, seed = run_dir.name.rsplit("-s", 1)
    spec, frame = TABLES[name], pd.read_csv(csv)
    columns = many_levels(frame.drop(columns=list(spec.drop)), spec.target, least)
    if not columns:
        return None
    split = read_json(run_dir / "split.json")
    table = out / f"{run_dir.name}.csv"
    encoded_table(frame, columns, spec.target, split["test"], int(seed)).to_csv(table, index=False)
    again = out / "runs" / run_dir.name
    if again.exists():
        shutil.rmtree(again)  # fit would name its folder -2 beside it
    args = ["fit", str(run_dir / "config.yaml"), f"data.path={table}", f"runs_dir={out / 'runs'}"]
    proc = subprocess.run(NNTRAIN + args + overrides + ["--json", "--quiet"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{run_dir.name}: fit exited {proc.returncode}\n{proc.stderr[-2000:]}")
    if read_json(again / "split.json")["test"] != split["test"]:
        raise SystemExit(f"{run_dir.name}: the encoded table's test split is not the run's")
    before, after = (read_json(d / "summary.json")["test"] for d in (run_dir, again))
    metric = "r2" if "r2" in before else "accuracy"
    return {
        "table": name,
        "seed": seed,
        "columns": columns,
        "metric": metric,
        "before": before[metric],
        "after": after[metric],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="a real_tables.py --out folder (its runs/ and CSVs)")
    ap.add_argument("--min-levels", type=int, default=30, help="encode string columns with this many levels or more")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every fit")
    args = ap.parse_args(argv)
    work = args.out / "target_encoded"
    work.mkdir(exist_ok=True)
    rows, by_table = [], defaultdict(list)
    for summary in sorted((args.out / "runs").glob("*-s*/summary.json")):
        run_dir = summary.parent
        name = run_dir.name.rsplit("-s", 1)[0]
        if name in TABLES and read_json(summary).get("test"):
            got = encode_and_fit(run_dir, args.out / f"{name}.csv", args.min_levels, work, args.set)
            if got:
                rows.append(got)
                by_table[name].append(got)
                print(f"# {run_dir.name}: {got['metric']} {got['before']:.4f} -> {got['after']:.4f}", flush=True)
    print("\n| table | seed | target-encoded columns | metric | embeddings | TargetEncoder | difference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [r["table"], r["seed"], ", ".join(r["columns"]), r["metric"], f"{r['before']:.4f}", f"{r['after']:.4f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {r['after'] - r['before']:+.4f} |")
    print("\nMeans over seeds:")
    for name, got in by_table.items():
        before, after = (statistics.mean(r[k] for r in got) for k in ("before", "after"))
        print(f"- {name}: embeddings {before:.4f}, TargetEncoder {after:.4f} ({after - before:+.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
