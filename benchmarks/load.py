"""Loading a big CSV: nntrain's read and preparation against pandas.read_csv alone, and the peak memory of fit.

    python benchmarks/load.py               # 1,000,000 x 50 (a 460 MB CSV; about a minute)
    python benchmarks/load.py --rows 20000  # small: a check that it runs (what the tests do)

The table is bench.py's seeded synthetic one (50 standard-normal features, 4 classes), written as CSV.

Time, in one process: `pandas.read_csv(path)` against nntrain's `load_data` (read, checks, split, fitted
scaling and the float32 matrix the model trains on), alternated, median of 3 each. As in `nntrain fit`, the
file's sha256 is started on its own thread before torch is imported; its time alone is printed too.

The cache: the first load through it (the entry written), then a second load as the next `fit` of the same
file does it (the sha256 computed again, the matrix memory-mapped and read once), against read_csv.

Memory, one process each: the peak resident set of `nntrain fit` on the table (one epoch, no plots) minus
that of a process that only imports what fit imports, as a multiple of the float32 feature matrix; and of
`pandas.read_csv` alone the same way.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, Setting, synthetic_frame

# VmHWM, not getrusage's ru_maxrss: on Linux the latter keeps the high-water mark of the forked parent
# across exec, so every child would report at least this process's size. RssAnon has no high-water mark of
# its own, so a thread samples it every 2 ms: the resident set less the pages of mapped files (pandas maps
# the CSV it parses; those pages are the page cache's, dropped under memory pressure rather than swapped).
CHILD_PEAK = textwrap.dedent("""
    import re, sys, threading, time
    def status(key):
        with open("/proc/self/status") as f:
            return int(re.search(key + r":\\s+(\\d+)", f.read()).group(1))
    anon = [status("RssAnon")]
    def sample():
        while True:
            anon[0] = max(anon[0], status("RssAnon"))
            time.sleep(0.002)
    threading.Thread(target=sample, daemon=True).start()
    try:
        {body}
    finally:
        print("PEAK-KIB", status("VmHWM"), max(anon[0], status("RssAnon")), file=sys.stderr)
""")


def peak_mib(body: str) -> tuple[float, float]:
    """Peak resident set and peak anonymous resident memory (MiB) of a fresh interpreter running `body`."""
    code = CHILD_PEAK.format(body=textwrap.indent(body, "    ").strip())
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=1200)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK-KIB")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss, anon = lines[-1].split()[1:]
    return int(rss) / 1024, int(anon) / 1024


def cache_timing(path: Path, repeats: int, runs: Path) -> tuple[float, list[float], list[float]]:
    """(seconds of the miss that writes the entry, of each hit with the sha256 ready, of each hit that hashes the
    file itself): a second `fit` of the file, as far as its data goes. fit starts the sha256 before it imports
    torch (1-2 s), so by the time it reads the data the digest is there: the first hit figure is fit's."""
    from nntrain.config.loading import load_config
    from nntrain.data import digests
    from nntrain.data.cache import cached_data

    cfg = load_config(None, raw={"data": {"path": str(path)}, "runs_dir": str(runs)})
    t0 = time.perf_counter()
    data, keep = cached_data(cfg, None)
    keep()
    miss = time.perf_counter() - t0
    del data
    ready, hashing = [], []
    for times, fresh in ((hashing, True), (ready, False)):
        for _ in range(repeats):
            if fresh:
                digests._DIGESTS.clear()
            t0 = time.perf_counter()
            data, _ = cached_data(cfg, None)
            float(data.X[:, 0].sum())  # the matrix read once, not only mapped
            times.append(time.perf_counter() - t0)
            del data
    return miss, ready, hashing


def timing(path: Path, repeats: int) -> tuple[list[float], list[float], float]:
    """(read_csv seconds, load_data seconds, sha256 seconds), in this process, fit's order of imports."""
    from nntrain.data.digests import sha256_soon

    t0 = time.perf_counter()
    sha256_soon(path).result()  # what fit starts before importing torch; cached for the loads below
    sha_s = time.perf_counter() - t0
    import pandas as pd

    from nntrain.config.loading import load_config
    from nntrain.data.prepare import load_data

    cfg = load_config(None, raw={"data": {"path": str(path)}})
    read, load = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        del_me = pd.read_csv(path)
        read.append(time.perf_counter() - t0)
        del del_me
        t0 = time.perf_counter()
        data = load_data(cfg, None)
        load.append(time.perf_counter() - t0)
        del data
    return read, load, sha_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    s = Setting("load", (256, 256), 0.0, 1024, epochs=1, warmup=0, rows=args.rows)
    with tempfile.TemporaryDirectory(prefix="nntrain-load-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "synthetic.csv"
        synthetic_frame(s).to_csv(path, index=False)
        matrix_mib = s.rows * s.features * 4 / 2**20
        print(
            f"# loading {s.rows:,} x {s.features} CSV ({path.stat().st_size / 1e6:,.0f} MB); float32 matrix "
            f"{matrix_mib:,.1f} MiB"
        )
        read, load, sha_s = timing(path, args.repeats)
        r, ld = statistics.median(read), statistics.median(load)
        print(f"pandas.read_csv alone: {r:.2f} s (median of {', '.join(f'{x:.2f}' for x in read)})")
        print(f"nntrain load_data:     {ld:.2f} s (median of {', '.join(f'{x:.2f}' for x in load)})")
        print(
            f"ratio: {ld / r:.2f}x read_csv (goal <= 1.2); the sha256 alone took {sha_s:.2f} s, computed while "
            f"torch imports"
        )
        miss, ready, hashing = cache_timing(path, args.repeats, tmp / "cache-runs")
        print(f"cache: the first load with its entry written {miss:.2f} s ({miss / r:.2f}x read_csv)")
        for label, hits in (("the sha256 ready, as in fit", ready), ("hashing the file too", hashing)):
            hit = statistics.median(hits)
            print(
                f"cache: a second load ({label}; the matrix read once): {hit:.2f} s (median of "
                f"{', '.join(f'{x:.2f}' for x in hits)}) = {hit / r:.2f}x read_csv (goal <= 0.15)"
            )
        base = peak_mib("import torch, pandas, nntrain.engine.loop, nntrain.cli")
        config = tmp / "load.yaml"
        config.write_text(
            f"data:\n  path: {path}\nmodel:\n  hidden: [256, 256]\ntrain:\n  epochs: 1\n"
            f"  batch_size: 1024\n  plots: false\nruns_dir: {tmp / 'runs'}\n"
        )
        fit = peak_mib(f"from nntrain.cli import app\napp(['fit', {str(config)!r}, '--quiet'], standalone_mode=False)")
        alone = peak_mib(f"import torch, pandas, nntrain.engine.loop, nntrain.cli\npandas.read_csv({str(path)!r})")
        print(
            f"peak memory above the imports ({base[0]:,.0f} MiB resident, {base[1]:,.0f} MiB anonymous), as a "
            f"multiple of the float32 matrix (goal <= 5):"
        )
        for label, (rss, anon) in (("nntrain fit", fit), ("pandas.read_csv alone", alone)):
            print(
                f"  {label}: resident {rss - base[0]:,.0f} MiB = {(rss - base[0]) / matrix_mib:.1f}x; anonymous "
                f"{anon - base[1]:,.0f} MiB = {(anon - base[1]) / matrix_mib:.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
