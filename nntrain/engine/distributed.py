"""Data-parallel training on torch.distributed: `nntrain fit --nproc N`, or the workers torchrun starts.

Every rank reads the data and makes the same split, so no data moves between processes. Each global batch
of the epoch's permutation is cut into one contiguous shard per rank; a rank's gradient is weighted by its
shard's share of the batch and summed across ranks, which is the gradient of the whole batch, so the loss
curve matches one process with the same batch size. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from nntrain.errors import UserError

if TYPE_CHECKING:
    import torch

# torch is imported by Group alone: `fit --nproc N` only launches workers, and needs none of it (1-2 s).

TIMEOUT = datetime.timedelta(seconds=60)  # a collective waiting longer than this on a dead rank fails


def launched() -> bool:
    """True inside a worker that torchrun (or fit --nproc) started with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


class Group:
    """This process's place in the group, and the few collectives the loop needs."""

    def __init__(self, device_name: str):
        import torch
        import torch.distributed as dist

        self.rank, self.world = rank(), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        if device_name != "auto":
            from nntrain.engine.device import select_device

            select_device(device_name)  # one process's checks first: CUDA present, the index there, ...
        cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
        if cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        elif device_name in ("auto", "cpu"):
            self.device = torch.device("cpu")
        else:
            raise UserError(f"device={device_name}: data-parallel training runs on cuda (NCCL) or cpu (gloo)")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        self.dist = dist
        self._grad_buf: torch.Tensor | None = None  # the autograd path's gradients, flat, reused every step
        self._grad_views: list[torch.Tensor] = []

    @property
    def writes(self) -> bool:
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's contiguous part of a global batch, and its share of the batch's rows."""
        part = idx.tensor_split(self.world)[self.rank]
        return part, len(part) / len(idx)

    def reduce_grads(self, params: list[torch.Tensor], weight: float, flat: torch.Tensor | None = None) -> None:
        """Sum of the ranks' weighted gradients, in place. `flat`: the fused step's gradients as one tensor."""
        if flat is not None:
            flat.mul_(weight)
            self.dist.all_reduce(flat)
            return
        import torch

        grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
        if self._grad_buf is None:
            from nntrain.engine.fused import views

            self._grad_buf = torch.cat(grads)
            self._grad_views = views(self._grad_buf, params)
        else:  # the loop sets every .grad to None before backward, so none of them is a view of this buffer now
            torch.cat(grads, out=self._grad_buf)
        self.dist.all_reduce(self._grad_buf.mul_(weight))
        for p, g in zip(params, self._grad_views):
            p.grad = g

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        self.dist.all_reduce(t)
        return t

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one: all ranks stop at the same step or none does."""
        import torch

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        every = [None] * self.world
        self.dist.all_gather_object(every, obj)
        return every

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def same_weights(self, model: torch.nn.Module) -> bool:
        """Every rank's parameters, bit for bit, hashed and compared on all ranks."""
        h = hashlib.sha256()
        for p in model.parameters():
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        digests = [None] * self.world
        self.dist.all_gather_object(digests, h.hexdigest())
        return len(set(digests)) == 1

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """`nntrain fit ... --nproc N`: the same command in N workers under torch.distributed.run (torchrun's engine),
    on this machine. Its exit status: a worker's failure ends the others, so a dead rank never hangs the rest."""
    if nproc < 1:
        raise UserError(f"--nproc {nproc}: give 1 or more processes")
    cmd = [
        sys.executable,
        "-m",
        "nntrain.engine.distributed",  # torchrun's engine, its failure report left out: _torchrun below
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "nntrain",
        *argv,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # torchrun forwards the signal to the workers, which save and exit
        return proc.wait()


def _torchrun() -> None:
    """torch.distributed.run's main, without the ChildFailedError traceback and 'FAILED' report it ends with when
    a worker fails: a worker refusing a config or table has printed its message (exit 2), which is then the
    launcher's exit status too; any other failure is said in one line naming the rank and its exit code."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its error lines repeat the report
    try:
        main()
    except ChildFailedError as e:
        worker, failure = e.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode  # -9: killed by SIGKILL, 137
        if code != 2:
            print(f"nntrain --nproc: rank {worker} exited with status {failure.exitcode}", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    _torchrun()
