"""The default thread count follows the machine as it is: the cores this process may use, less those another
process keeps busy, so a fit never waits on a core it shares (issue 25: 2 threads beside one busy process ran
7x slower than one thread). Real spinning processes, real affinity."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nntrain.resources import busy_cores, free_cores, usable_cores

BIG = 10**9  # multiply-adds a step: past the one-thread rule, so the machine decides


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def test_cores_taken_by_other_processes_are_counted_busy_and_left_alone():
    from nntrain.engine.device import auto_threads, stacked_threads

    procs = spinners(usable_cores())  # every usable core kept busy by another process
    try:
        import time

        time.sleep(0.3)  # the spinners are running
        assert busy_cores() >= usable_cores() - 0.5
        assert free_cores() == 1
        assert auto_threads(BIG) == 1 and stacked_threads(10**6, BIG) == 1
    finally:
        stop(procs)


def test_a_small_step_takes_one_thread_whatever_the_machine():
    from nntrain.engine.device import auto_threads

    assert auto_threads(1000) == 1


def test_the_affinity_bounds_the_cores_and_the_threads():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from nntrain.resources import usable_cores, free_cores\n"
        "from nntrain.engine.device import auto_threads\n"
        "print(usable_cores(), free_cores(), auto_threads(10**9), auto_threads(10**9, processes=2))"
    )
    if not hasattr(__import__("os"), "sched_setaffinity"):
        pytest.skip("no sched_setaffinity here")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1", "1", "1"]
