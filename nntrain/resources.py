"""What the machine has for a run: the memory free on the host or a GPU (a container's own limit is not read)."""

from __future__ import annotations

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
