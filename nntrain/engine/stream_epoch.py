"""A streamed run's epoch (data.stream): the training batches come from the Parquet files a chunk at a time
(data/stream.py) rather than from a matrix in memory. Each batch is copied into fixed buffers that the run's
step (steps.make_step: written out or autograd) reads as rows 0..n, so every step path works unchanged. An
epoch's batches are the same on every resume: a signal or a periodic save (one process; under torchrun, at a
signal and each epoch's end) records the step, and a resumed epoch reads its batches again and trains from
that step on.
"""

from __future__ import annotations

import itertools
import os
import signal
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nntrain.data.stream import HashSplit, Source, epoch_steps, open_source, train_batches
from nntrain.engine.state import Run
from nntrain.engine.steps import make_step
from nntrain.engine.stopping import SIGNALS, DataFailed, Diverged, Interrupted
from nntrain.errors import UserError


def source_of(prep: dict) -> tuple[Source, HashSplit]:
    stream = prep["stream"]
    return open_source(stream["files"], stream["path"]), HashSplit(**stream["split"])


def lanes_of(cfg: Any, world: int, rank: int = 0) -> tuple[int, list[int]]:
    """(the stream's lanes, this rank's): data.stream_lanes, or auto: one per rank. A global batch is the same
    rows with one rank or several when the lanes are the same."""
    setting = cfg.data.stream_lanes
    lanes = world if setting == "auto" else int(setting)
    if lanes % world:
        raise UserError(
            f"data.stream_lanes={lanes}: each of the {world} ranks trains whole lanes; use a multiple of {world}"
        )
    if int(cfg.train.batch_size) % lanes:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size}: each of the {lanes} lanes (data.stream_lanes) gives an "
            f"equal part of a batch; use a multiple of {lanes}"
        )
    return lanes, list(range(rank, lanes, world))


def streamed(run: Run, loop: Any) -> Any:
    """`loop` (loop_state.prepare_loop's, over the run's evaluated rows) made to train from the stream: its
    step reads fixed buffers, its steps and rows are the training split's, its epoch is `epoch` below."""
    source, split = source_of(run.data.prep)
    counts = np.asarray(run.data.prep["stream"]["counts"], dtype=np.int64)
    lanes, mine = lanes_of(run.cfg, *((run.group.world, run.group.rank) if run.group else (1, 0)))
    bs, seed = int(run.cfg.train.batch_size), split.seed
    d, device = run.data.X.shape[1], run.device
    X = torch.empty(bs, d, dtype=torch.float32, device=device)
    y = torch.empty(bs, dtype=torch.as_tensor(run.data.y[:1]).dtype, device=device)
    lw = None if run.data.loss_weights is None else torch.empty(bs, dtype=torch.float32, device=device)
    share = [1.0]  # this rank's part of the step's rows
    step, idx = make_step(run, X, y, lw, share=lambda: share[0]), torch.arange(bs, device=device)
    workers = stream_workers(run.cfg)

    def one(xb: Any, yb: Any, wb: Any) -> torch.Tensor:
        """A batch (numpy arrays, or tensors from a worker) copied into the buffers and stepped on."""
        n = len(yb)
        X[:n].copy_(torch.as_tensor(xb))
        y[:n].copy_(torch.as_tensor(yb))
        if lw is not None:
            lw[:n].copy_(torch.as_tensor(wb))
        return step(idx[:n])

    def epoch(run: Run, loop: Any) -> float:
        run.parts.model.train()
        plan = epoch_steps(counts, seed, run.epoch + 1, lanes, bs)
        first = run.step
        if not first or run.step_losses is None:
            run.step_losses = torch.zeros(len(plan), device=device)
        elif not run.writes:
            run.step_losses.zero_()  # the stored losses are the group's sums; rank 0 alone carries them
        read = (source, run.data.prep, split, run.epoch + 1, bs, run.cfg.data.shuffle_rows, lanes, mine)
        batches = _Batches(*read).read(workers)
        for s, (xb, yb, wb) in zip(range(len(plan)), batches):
            if s < first:
                continue  # trained before the stop this epoch resumes from
            if loop.interrupted(s):
                _stop(run, loop, s)
            share[0] = sum(plan[s][k] for k in mine) / sum(plan[s])
            run.step_losses[s] = one(xb, yb, wb) * sum(plan[s])  # the step's loss summed over its rows
            if loop.step_scheduler is not None:
                loop.step_scheduler.step()
            if run.diag is not None:
                run.diag.after_step(s)
            if s % 8 == 0:
                loop.progress.step(s)
            if run.group is None and loop.saver.due():  # a kill -9 loses at most train.checkpoint_every seconds
                run.step = s + 1
                loop.saver.save()
        run.step = 0
        if run.group:
            run.group.sum_(run.step_losses)
        _check_finite(run, loop)
        return float(run.step_losses.sum()) / sum(map(sum, plan))

    first = epoch_steps(counts, seed, 1, lanes, bs)
    loop.step, loop.epoch = one, epoch
    loop.batch, loop.steps, loop.rows = bs, len(first), int(counts[:, 0].sum())
    return loop


def stream_workers(cfg: Any) -> int:
    """data.stream_workers, auto resolved: a reader process where the machine has a core beyond its ranks' (on
    this 2-core machine, one process: an epoch 0.85x its time idle, and no slower beside a busy process)."""
    from nntrain.resources import usable_cores

    setting = cfg.data.stream_workers
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return int(usable_cores() > ranks_here) if setting == "auto" else int(setting)


PARCEL = 16  # batches a worker sends at a time


@dataclass(frozen=True)
class _Failed:
    """A UserError the reader process met (a bad value in a row the sample did not draw), for the training
    process to raise as its own."""

    problems: list
    header: str | None


class _Batches(torch.utils.data.IterableDataset):
    """An epoch's batches (data/stream.train_batches' arguments): read in this process, or in one DataLoader
    worker that reads and encodes them while the steps run. The batches are the same either way, and the
    worker's seed comes from a generator of its own, so the run's random draws (dropout) are not moved."""

    def __init__(self, *read: Any) -> None:
        self.args = read

    def __iter__(self) -> Any:
        """In a worker: PARCEL batches joined into one parcel, as each array crosses to the training process
        through a shared-memory file of its own (one a batch made the worker slower than none)."""
        batches = train_batches(*self.args)
        try:
            while parcel := list(itertools.islice(batches, PARCEL)):
                w = None if parcel[0][2] is None else np.concatenate([b[2] for b in parcel])
                sizes = np.cumsum([len(b[1]) for b in parcel])[:-1]
                yield np.concatenate([b[0] for b in parcel]), np.concatenate([b[1] for b in parcel]), w, sizes
        except UserError as e:  # sent as data: raised in the worker, torch would wrap it in its traceback
            yield _Failed(e.problems, e.header)

    def read(self, workers: int) -> Any:
        """The batches; a bad value among them (one the sample did not draw) a DataFailed, which ends the run
        for good (loop.train): no resume can read past it."""
        try:
            yield from self._received(workers) if workers else train_batches(*self.args)
        except UserError as e:
            raise DataFailed(e.problems, e.header) from None

    def _received(self, workers: int) -> Any:
        loader = torch.utils.data.DataLoader(
            self, batch_size=None, num_workers=workers, prefetch_factor=2, generator=torch.Generator()
        )
        for parcel in loader:
            if isinstance(parcel, _Failed):
                raise UserError(parcel.problems, parcel.header)
            X, y, w, sizes = parcel
            cuts = sizes.tolist()
            ws = [None] * (len(cuts) + 1) if w is None else w.tensor_split(cuts)
            yield from zip(X.tensor_split(cuts), y.tensor_split(cuts), ws)


def _stop(run: Run, loop: Any, s: int) -> None:
    """A signal between steps: last.pt holds the epoch so far (the group's losses summed), resumed from step s."""
    run.step = s
    if run.group:
        run.group.sum_(run.step_losses)
    loop.saver.save()
    raise Interrupted(SIGNALS.signum or signal.SIGTERM, run.run_dir, run.epoch, s)


def _check_finite(run: Run, loop: Any) -> None:
    if bool(torch.isfinite(run.step_losses).all()):
        return
    loop.saver.save_best()
    step = int((~torch.isfinite(run.step_losses)).nonzero()[0]) + 1
    raise Diverged(
        f"training diverged at epoch {run.epoch + 1}, step {step}: the training loss became non-finite; best.pt "
        f"(epoch {run.best_epoch}) and last.pt (epoch {loop.saver.last_epoch}) kept. Try a lower optimizer.lr"
    )
