"""Where a run computes: the device a config names, checked against this machine, and the CPU thread count."""

from __future__ import annotations

import functools

import torch

from nntrain.errors import UserError
from nntrain.resources import free_cores, usable_cores

CPU_THREADS = torch.get_num_threads()  # torch's default, before any run lowers it
SMALL_STEP = 4_000_000  # multiply-adds a step below which one thread is fastest
STACKED_SPLIT = 65536  # elements of the stacked rows from which torch splits an elementwise op across 2 threads


def auto_threads(work_per_step: int, processes: int = 1) -> int:
    """Below about 4M multiply-adds a step, thread start-up costs more than it saves (measured on 2 cores:
    the phone model at batch 32 runs 2.7x faster on one thread than on two). Above it, only the cores no other
    process keeps busy (resources.free_cores): a thread that shares a core with a busy process makes every
    other thread wait at each op, and a fit on 2 threads ran 7x slower than on one. Processes of one run
    (data-parallel ranks) share the usable cores."""
    if work_per_step < SMALL_STEP:
        return 1
    if processes > 1:
        return max(1, usable_cores() // processes)
    return max(1, min(CPU_THREADS, free_cores()))


@functools.cache
def inference_threads() -> int:
    """Threads for predict, eval, explain and export, chosen once a process: the cores no other process keeps
    busy (resources.free_cores), as a fit's; torch's default (every core) made predict 1.7x slower beside one
    busy process on 2 cores."""
    threads = max(1, min(CPU_THREADS, free_cores()))
    torch.set_num_threads(threads)
    return threads


def stacked_threads(elements: int, work_per_step: int) -> int:
    """Threads for K stacked models (stacked.py): their step is as much elementwise passes over the [K, P] rows as
    matrix products, and torch splits an elementwise op across threads from 32k elements per thread; measured on
    2 cores (the phone model): 8 and 16 members 15% faster on both cores, 4 members 30% slower; with another
    process busy, 16 members took 1.30 s an epoch on both cores against 0.164 s on one, so busy cores are left."""
    return max(1, min(CPU_THREADS, free_cores())) if elements >= STACKED_SPLIT else auto_threads(work_per_step)


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={name}: CUDA is not available on this machine; use device: auto or cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if name == "mps" and not _mps():
        raise UserError("device=mps: MPS is not available on this machine; use device: auto or cpu")
    return torch.device(name)


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
