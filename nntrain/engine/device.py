"""Where a run computes: the device a config names, checked against this machine, and the CPU thread count."""

from __future__ import annotations

import os

import torch

from nntrain.errors import UserError

CPU_THREADS = torch.get_num_threads()  # torch's default, before any run lowers it


def auto_threads(work_per_step: int, processes: int = 1) -> int:
    """Below about 4M multiply-adds a step, thread start-up costs more than it saves (measured on 2 cores:
    the phone model at batch 32 runs 2.7x faster on one thread than on two). Processes of one machine share
    its cores."""
    return 1 if work_per_step < 4_000_000 else max(1, os.cpu_count() // processes if processes > 1 else CPU_THREADS)


def stacked_threads(elements: int, work_per_step: int) -> int:
    """Threads for K stacked models (stacked.py): their step is as much elementwise passes over the [K, P] rows as
    matrix products, and torch splits an elementwise op across threads from 32k elements per thread; measured on
    2 cores (the phone model): 8 and 16 members 15% faster on both cores, 4 members 30% slower."""
    return CPU_THREADS if elements >= 65536 else auto_threads(work_per_step)


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
