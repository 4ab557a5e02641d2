"""Tables larger than memory: a seeded generator writes a folder of Parquet files (numbers, strings, dates,
missing values; a binary target), then nntrain fits and predicts on it streamed, and this prints each command's
peak memory (the process and its children, from /usr/bin/time) and its rows per second, against an in-memory
fit of the same model on the same rows (data.stream=false) where that fits.

    python benchmarks/stream.py make /tmp/big --rows 1000000          # the data only
    python benchmarks/stream.py run /tmp/work --rows 1000000 10000000 --in-memory 1000000
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GROUP_ROWS = 100_000  # rows per row group
FILE_GROUPS = 10  # row groups per file
NUMBERS, LEVELS = 20, 6  # numeric columns; string columns (of 5 to 2,000 levels)


def chunk(rng: np.random.Generator, n: int, start: int):
    """n rows of the table as a pyarrow Table: x0..x19 (some missing), s0..s5 strings, a date, id and y."""
    import pyarrow as pa

    cols: dict = {"id": np.arange(start, start + n, dtype=np.int64)}
    X = rng.normal(size=(n, NUMBERS)).astype(np.float32)
    for j in range(NUMBERS):
        col = X[:, j].copy()
        col[rng.random(n) < 0.05] = np.nan
        cols[f"x{j}"] = col
    score = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + np.sin(2 * X[:, 4])
    for j in range(LEVELS):
        levels = [5, 20, 50, 200, 1000, 2000][j]
        codes = rng.integers(0, levels, n)
        score += (codes % 7 == 0) * 0.4 * (j % 2 * 2 - 1)
        cols[f"s{j}"] = pa.array(np.char.add(f"l{j}_", codes.astype(str)))
    days = rng.integers(0, 3 * 365, n)
    score += 0.3 * np.cos(2 * np.pi * (days % 365) / 365)
    cols["day"] = pa.array((np.datetime64("2021-01-01") + days.astype("timedelta64[D]")).astype("datetime64[ms]"))
    cols["y"] = (score + rng.normal(scale=1.0, size=n) > 0).astype(np.int64)
    return pa.table(cols)


def make(folder: Path, rows: int, seed: int = 0) -> Path:
    """`rows` rows in files of FILE_GROUPS row groups of GROUP_ROWS rows, written a row group at a time."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    if done.is_file() and json.loads(done.read_text()) == {"rows": rows, "seed": seed}:
        return folder
    rng = np.random.default_rng(seed)
    written, k = 0, 0
    while written < rows:
        with pq.ParquetWriter(folder / f"part-{k:04d}.parquet", chunk(rng, 1, 0).schema) as w:
            for _ in range(FILE_GROUPS):
                n = min(GROUP_ROWS, rows - written)
                if n <= 0:
                    break
                w.write_table(chunk(rng, n, written), row_group_size=GROUP_ROWS)
                written += n
        k += 1
    done.write_text(json.dumps({"rows": rows, "seed": seed}))
    return folder


def timed(cmd: list[str], cwd: Path) -> dict:
    """Wall seconds and peak memory of a command: the most its process tree (a streamed fit's reader process
    too) held at once (proportional set sizes, sampled every 0.25 s), and never below GNU time's maximum
    resident set size (the most one process held)."""
    t = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    tree_peak = 0
    while proc.poll() is None:
        tree_peak = max(tree_peak, tree_pss(proc.pid))
        time.sleep(0.25)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024
    return {"seconds": seconds, "peak_gb": max(peak, tree_peak) / 2**30, "out": out}


def tree_pss(pid: int) -> int:
    """The proportional set size (Linux /proc smaps_rollup; 0 elsewhere) of a process and all its descendants:
    pages a forked reader shares with the fit count once, split between them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            found = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{p}/smaps_rollup").read_text(), re.M)
        except OSError:
            continue
        total += int(found.group(1)) * 1024 if found else 0
    return total


def fit(folder: Path, work: Path, name: str, epochs: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "nntrain", "fit", f"data.path={folder}", "data.target=y", "data.drop=[id]",
           f"name={name}", f"runs_dir={work / 'runs'}", f"train.epochs={epochs}", "train.plots=false",
           "train.bag=1", "scheduler=none", "model.hidden=[128,128]",
           "model.numeric_embedding=none", "train.batch_size=1024", "train.threads=1", *extra]  # fmt: skip
    shutil.rmtree(work / "runs" / name, ignore_errors=True)  # else fit makes NAME-2 and this reads the old run
    got = timed(cmd, work)
    summary = json.loads((work / "runs" / name / "summary.json").read_text())
    metrics = (work / "runs" / name / "metrics.csv").read_text().splitlines()
    seconds = [float(line.split(",")[-1]) for line in metrics[1:]]
    return {**got, "accuracy": summary["test"]["accuracy"], "epoch_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("make", "run"))
    ap.add_argument("folder", type=Path)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--in-memory", type=int, nargs="*", default=[1_000_000], help="row counts also fitted in memory")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="each fit's seed (and its split's)")
    args = ap.parse_args(argv)
    if args.what == "make":
        for n in args.rows:
            make(args.folder / f"rows{n}", n)
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    head = ["rows", "how", "fit s", "epoch s (last)", "train rows/s", "peak GB (fit)", "test accuracy", "predict s"]
    print("| " + " | ".join([*head, "peak GB (predict)", "seed"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.rows:
        data = make(args.folder / f"rows{n}", n)
        hows = ["streamed"] + (["in memory"] if n in args.in_memory else [])
        for seed, how in [(seed, how) for seed in args.seeds for how in hows]:
            name = f"{'s' if how == 'streamed' else 'm'}{n}-seed{seed}"
            extra = ["data.stream=true"] if how == "streamed" else ["data.stream=false", "data.cache=false"]
            extra.append(f"seed={seed}")
            got = fit(data, args.folder, name, args.epochs, extra)
            train_rows = n * (1 - 0.2 - 0.1)
            out = args.folder / f"{name}.csv"
            pred = timed([sys.executable, "-m", "nntrain", "predict", str(args.folder / "runs" / name), str(data),
                          "-o", str(out), "--force"], args.folder)  # fmt: skip
            out.unlink(missing_ok=True)
            print(
                f"| {n:,} | {how} | {got['seconds']:.1f} | {got['epoch_seconds'][-1]:.1f} | "
                f"{train_rows / got['epoch_seconds'][-1]:,.0f} | {got['peak_gb']:.2f} | {got['accuracy']:.4f} | "
                f"{pred['seconds']:.1f} | {pred['peak_gb']:.2f} | {seed} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
