"""benchmarks/bench.py is a benchmark, not a timed test: here it only has to run, on its tiny sizes, and print
a figure for every loop that needs nothing beyond nntrain's own dependencies."""

from __future__ import annotations

import re

import pytest

from .conftest import run_benchmark

# Every loop runs in its own Python process (about ten of them, a few seconds each): well over 20 s.
pytestmark = pytest.mark.slow


def test_bench_tiny_runs_and_prints_every_loop():
    proc = run_benchmark("bench.py", "--tiny", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for setting in ("phone", "1m"):
        assert re.search(rf"^### {setting}:", proc.stdout, re.M), proc.stdout
    for loop in ("reference", "autograd", "nntrain-fused", "nntrain-fused-nodiag", "nntrain-autograd"):
        # | loop | training rows | validation rows | threads | ms per epoch | samples/s | vs reference |
        rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith(f"| {loop} |")]
        assert len(rows) == 2, (loop, proc.stdout)  # one per setting
        timed = rows if loop in ("reference", "nntrain-fused") else rows[:1]  # --tiny's 1m runs only those two
        assert all(float(cells[4]) > 0 for cells in timed), (loop, rows)
        assert all("skipped (--tiny)" in cells[4] for cells in rows[len(timed) :]), (loop, rows)


def test_load_benchmark_runs_small_and_reports_ratio_and_memory():
    proc = run_benchmark("load.py", "--rows", "20000", "--repeats", "1", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ratio = re.search(r"^ratio: ([0-9.]+)x read_csv", proc.stdout, re.M)
    peak = re.search(r"nntrain fit: resident ([0-9,]+) MiB = ([0-9.]+)x; anonymous ([0-9,]+) MiB", proc.stdout)
    assert ratio and peak, proc.stdout
    assert float(ratio.group(1)) > 0 and float(peak.group(2)) > 0


def test_many_models_benchmark_runs_small_and_prints_its_three_ratios():
    proc = run_benchmark("stacked.py", "--tiny", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^\| (\d+) \| ([0-9.]+) \| ([0-9.]+)x \|", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["1", "2"] and float(rows[0][2]) == 1.0, proc.stdout
    sweep = re.search(r"^--batch 1: ([0-9.]+) s; default batching: ([0-9.]+) s; ratio: ([0-9.]+)x", proc.stdout, re.M)
    big = re.search(r"4 stacked over one member alone: ([0-9.]+)x", proc.stdout)
    assert sweep and big, proc.stdout
    assert float(sweep.group(3)) > 0 and float(big.group(1)) > 0


def test_stream_benchmark_writes_its_table_and_prints_both_ways(tmp_path):
    proc = run_benchmark("stream.py", "run", str(tmp_path), "--rows", "30000", "--in-memory", "30000", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| 30,000 |")]
    assert [r[1].strip() for r in rows] == ["streamed", "in memory"], proc.stdout
    for cells in rows:
        assert float(cells[4].replace(",", "")) > 0 and 0 < float(cells[5]) < 4 and float(cells[6]) > 0.6
