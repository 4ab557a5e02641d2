"""Do nntrain's intervals and sets hold their level on real tables? For every run folder that
`real_tables.py --out FOLDER` left (bags and lone runs of the tabular recipe), eval's coverage on the run's test
rows of the 90% intervals (regression) or sets (classification) that `predict --interval/--sets` gives, their
mean width or size, and beside a regression's, MAPIE's CV+ around HistGradientBoosting fitted on the same
non-test rows (5 folds), scored on the same test rows.

    python benchmarks/real_tables.py --out /tmp/rt --fit-only     # first: the runs
    python benchmarks/conformal.py /tmp/rt                         # then: their coverage
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_tables import TABLES, hgb_frames, read_json, split_parts  # noqa: E402


def mapie_hgb(csv: Path, name: str, run_dir: Path, level: float, seed: int) -> dict:
    """MAPIE's CV+ around HGB on the run's non-test rows: coverage and mean width on its test rows."""
    import numpy as np
    import pandas as pd
    from mapie.regression import CrossConformalRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold

    spec, split = TABLES[name], read_json(run_dir / "split.json")
    rows = {"train": sorted(split["train"] + split.get("val", [])), "test": split["test"]}
    X, y = split_parts(pd.read_csv(csv).drop(columns=list(spec.drop)), spec.target, "regression", rows)
    train, test = hgb_frames(X["train"], X["test"])
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
    cv = KFold(n_splits=5, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapie = CrossConformalRegressor(model, confidence_level=level, method="plus", cv=cv, random_state=seed)
        _, bounds = mapie.fit_conformalize(train, y["train"]).predict_interval(test)
    lower, upper, truth = bounds[:, 0, 0], bounds[:, 1, 0], y["test"].to_numpy()
    return {
        "coverage": float(np.mean((truth >= lower) & (truth <= upper))),
        "mean_width": float(np.mean(upper - lower)),
    }


def hgb_ece(csv: Path, name: str, run_dir: Path, seed: int) -> float:
    """HistGradientBoosting's expected calibration error on the run's test rows, fitted on its non-test rows."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nntrain.model.calibration import ece

    spec, split = TABLES[name], read_json(run_dir / "split.json")
    rows = {"train": sorted(split["train"] + split.get("val", [])), "test": split["test"]}
    X, y = split_parts(pd.read_csv(csv).drop(columns=list(spec.drop)), spec.target, "classification", rows)
    train, test = hgb_frames(X["train"], X["test"])
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed).fit(train, y["train"])
    index = {c: i for i, c in enumerate(model.classes_)}
    return ece(model.predict_proba(test), np.array([index[v] for v in y["test"]]))


NOISE = ("sd", "change_sd", "lower")


def ece_noise(run_dir: Path, resamples: int = 300) -> dict:
    """How much of a bag's ECE change is the test split's own noise: over bootstrap resamples of its test rows,
    the spread (SD) of the ECE as trained and of the temperature's change to it, and the share of resamples
    where the temperature lowers it. A lone run: {}."""
    import numpy as np

    from nntrain.data.reread import load_encoded
    from nntrain.model.calibration import calibrated, ece
    from nntrain.tools.bag_inference import bag_scores, load_members

    if not (run_dir / "bag.json").is_file():
        return {}
    plan, loaded = load_members(run_dir)
    e = load_encoded(loaded[0].prep, rows=plan["test"])
    raw, _ = bag_scores({**plan, "temperature": None}, loaded, e.X)
    after, rng = calibrated(raw, plan.get("temperature")), np.random.default_rng(0)
    before, change = [], []
    for _ in range(resamples):
        i = rng.integers(0, len(e.y), len(e.y))
        before.append(ece(raw[i], e.y[i]))
        change.append(ece(after[i], e.y[i]) - before[-1])
    change = np.array(change)
    return {"sd": float(np.std(before)), "change_sd": float(np.std(change)), "lower": float(np.mean(change < 0))}


def main(argv: list[str] | None = None) -> int:
    import nntrain

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="a real_tables.py --out folder (its runs/ and CSVs)")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--no-mapie", action="store_true", help="leave out MAPIE's CV+ around HGB")
    args = ap.parse_args(argv)
    got: dict[str, list[dict]] = defaultdict(list)
    for summary in sorted((args.out / "runs").glob("*-s*/summary.json")):
        run_dir = summary.parent
        name, seed = run_dir.name.rsplit("-s", 1)
        if name not in TABLES or not json.loads(summary.read_text()).get("test"):
            continue
        report = nntrain.load(run_dir).report(level=args.level)
        c = report["conformal"]
        if "note" not in c and "mean_width" in c and not args.no_mapie:
            c["mapie"] = mapie_hgb(args.out / f"{name}.csv", name, run_dir, args.level, int(seed))
        if "calibration" in report:
            c["ece"] = {k: report["calibration"][k]["ece"] for k in ("before", "after")}
            c["ece"]["hgb"] = hgb_ece(args.out / f"{name}.csv", name, run_dir, int(seed))
            c["ece"].update(ece_noise(run_dir))
        got[name].append({**c, "bag": (run_dir / "bag.json").is_file()})
        print(f"# {run_dir.name}: {c}", file=sys.stderr)
    print(f"Level {args.level}; mean over seeds of each run's test rows\n")
    print("| table | runs | kind | coverage | mean width or set size | MAPIE CV+ around HGB: coverage | width |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    by_task: dict[str, list[float]] = defaultdict(list)
    for name, runs in got.items():
        ok = [r for r in runs if "note" not in r]
        if not ok:
            print(f"| {name} | {len(runs)} | - | {runs[0]['note']} | | | |")
            continue
        cov = statistics.mean(r["coverage"] for r in ok)
        width = "mean_width" if "mean_width" in ok[0] else "mean_set_size"
        task = "regression" if width == "mean_width" else "classification"
        by_task[task].append(cov)
        mapie = [r["mapie"] for r in ok if "mapie" in r]
        m_cov = f"{statistics.mean(m['coverage'] for m in mapie):.3f}" if mapie else "-"
        m_width = f"{statistics.mean(m['mean_width'] for m in mapie):.4g}" if mapie else "-"
        kind = ("bag, CV+" if width == "mean_width" else "bag, LAC") if ok[0]["bag"] else "one model, split"
        size = statistics.mean(r[width] for r in ok)
        print(f"| {name} | {len(ok)} | {kind} | {cov:.3f} | {size:.4g} | {m_cov} | {m_width} |")
    calibrated = {n: [r["ece"] for r in runs if "ece" in r] for n, runs in got.items()}
    calibrated = {n: v for n, v in calibrated.items() if v}
    if calibrated:
        print(
            "\n| table | ECE as trained | ECE calibrated | HGB's ECE | bootstrap SD of the ECE | of the change "
            "| resamples where it is lower |\n| --- | --- | --- | --- | --- | --- | --- |"
        )
        for name, eces in calibrated.items():
            cells = [statistics.mean(e[k] for e in eces) for k in ("before", "after", "hgb")]
            noise = [f"{statistics.mean(e[k] for e in eces):.4f}" if "sd" in eces[0] else "-" for k in NOISE]
            print(f"| {name} | " + " | ".join([f"{v:.4f}" for v in cells] + noise) + " |")
        lower = sum(
            statistics.mean(e["after"] for e in v) < statistics.mean(e["before"] for e in v)
            for v in calibrated.values()
        )
        means = [
            statistics.mean(statistics.mean(e[k] for e in v) for v in calibrated.values())
            for k in ("before", "after", "hgb")
        ]
        shown = f"means {means[0]:.4f} -> {means[1]:.4f} (HGB {means[2]:.4f})"
        print(f"\nECE lower after calibration on {lower} of {len(calibrated)} tables; {shown}")
    print()
    for task, covs in by_task.items():
        print(f"{task}: mean coverage {statistics.mean(covs):.3f} over {len(covs)} tables, lowest {min(covs):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
