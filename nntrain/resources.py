"""What the machine has for a run now: the memory free on the host or a GPU (a container's own memory limit is
not read), and the CPU cores this process may use and how many of them other processes keep busy."""

from __future__ import annotations

import os
import time
from typing import Any


def available_bytes(device: Any = "cpu") -> int | None:
    """Memory free for a run on the device: the GPU's free memory, or the system's MemAvailable (None if unknown)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.0f} MiB"


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity (taskset, a container's cpuset), capped by a cgroup v2
    quota (cpu.max: 150000 100000 is 1.5 cores, so 1)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


def busy_cores(seconds: float = 0.1) -> float:
    """How many of this process's CPUs other processes keep busy now, sampled from /proc/stat over `seconds`
    (this process's own use in that time taken out); 0.0 where /proc/stat cannot be read."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    first, own, t0 = _cpu_times(cpus), os.times(), time.perf_counter()
    if first is None:
        return 0.0
    time.sleep(seconds)
    second, own_after, wall = _cpu_times(cpus), os.times(), time.perf_counter() - t0
    if second is None:
        return 0.0
    busy = sum((b[0] - a[0]) / max(b[1] - a[1], 1) for a, b in zip(first, second))
    mine = (own_after.user + own_after.system - own.user - own.system) / wall
    return max(0.0, busy - mine)


def _cpu_times(cpus: set[int] | None) -> list[tuple[int, int]] | None:
    """(busy, total) jiffies of each CPU in `cpus` (every CPU if None) from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    out = []
    for fields in lines:
        if cpus is None or int(fields[0][3:]) in cpus:
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            out.append((sum(ticks) - ticks[3] - ticks[4], sum(ticks)))
    return out or None


def free_cores(seconds: float = 0.1) -> int:
    """The cores a run can take without waiting on another process: usable cores less those kept busy, at least
    one. A core that is more than about 0.7 busy counts as taken: OpenMP threads that must wait for a thread
    sharing a core with another process spin, and a fit on 2 threads then ran 7x slower than on one."""
    return max(1, int(usable_cores() - busy_cores(seconds) + 0.3))
