"""Runs of one shape trained at once on the stacked engine (stacked.py, stacked_optim.py): one step for all members,
then each member's own end of epoch exactly as loop.py does it for one run (validation, its metrics.csv row,
best.pt, its scheduler, early stopping, a sweep's pruner). Each member's run folder ends as a lone fit's
would. A member that stops (early stop, pruned, diverged, out of epochs) keeps its weights while the others
go on: its rows are still computed with the rest, and its rate is 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nntrain import metrics as M
from nntrain.config.schema import loss_name
from nntrain.engine import loop_state as ls
from nntrain.engine.device import stacked_threads
from nntrain.engine.finish import UNCHANGED, ended_already, finish, nothing_to_train, summary_of
from nntrain.engine.fused import written_out
from nntrain.engine.loop import check_diverged, end_of_epoch, save_mid_epoch
from nntrain.engine.progress import Lines
from nntrain.engine.stacked import Stack, clip_limits
from nntrain.engine.stacked_batched import stacked_step
from nntrain.engine.stacked_optim import stacked_optimizer
from nntrain.engine.state import Run
from nntrain.engine.stopping import SIGNALS, Diverged, Interrupted
from nntrain.errors import UserError
from nntrain.model.memory import EVAL_ROWS
from nntrain.runs.files import write_json


@dataclass
class Member:
    run: Run
    loop: ls.Loop
    halt: ls.Halt | None = None
    done: bool = False
    result: dict | Diverged | None = None  # the summary, or how it diverged


@dataclass
class Group:
    """Runs opened on one engine, ready to train (open_group), and what train_group reports them as."""

    engine: Engine
    members: list[Member]
    t_start: float
    label: str = ""  # "part 1 of 2: " where a group trains in parts (stacked_parts.py)


def train_together(
    runs: list[Run],
    log: Callable[[str], None] = print,
    should_stop: list[ls.ShouldStop | None] | None = None,
    quiet: bool = True,
    tensorboard: bool = False,
) -> list[dict | Diverged]:
    """Train `runs` (of one key()) together; each one's summary, or the Diverged that ended it, in order.
    quiet: no line per epoch (the header and the engine's line still print); tensorboard: each member writes
    event files under its RUN/tensorboard, as a lone fit does."""
    return train_group(open_group(runs, log, should_stop, tensorboard), log, quiet)


def open_group(
    runs: list[Run],
    log: Callable[[str], None],
    should_stop: list[ls.ShouldStop | None] | None = None,
    tensorboard: bool = False,
    threads: int | None = None,
    header: list[Run] | bool = True,
) -> Group:
    """The runs' engine and loops, the header printed (`header`: the runs it describes, True: these, False:
    none) and the engine's line; members resumed at their end finished. On an error their folders are let go."""
    silent = Lines(lambda m: None, quiet=True)
    stops = should_stop or [None] * len(runs)
    t_start = time.perf_counter()
    members: list[Member] = []
    try:
        engine = Engine(runs, threads)
        for r, s in zip(runs, stops):
            tb = ls.run_tensorboard(r) if tensorboard else None
            members.append(Member(r, ls.prepare_loop(r, silent.log, silent, tb, s, step=_unused)))
        engine.now = time.monotonic()
        for m in members:
            ls.start_diagnostics(m.run, m.loop)
            m.loop.saver.clock, m.loop.saver.last = (lambda: engine.now), engine.now  # saved together, resumed together
            m.loop.saver.keep_previous = True
        if header:
            for line in ls.header(runs[0], members[0].loop, runs if header is True else header):
                if not line.startswith("run folder:") and "iterations per epoch" not in line:
                    log(line)
        log(engine.describe())
        for k, m in enumerate(members):  # resumed at its end already (a lone resume then only finishes too)
            ended = ended_already(m.run)
            if ended is not None:  # its run folder stays as it is
                m.done, m.result = True, {**ended, "run_dir": str(m.run.run_dir), UNCHANGED: True}
                engine.opt.stop(k)
                log(nothing_to_train(m.run.run_dir, ended))
            elif m.run.ended:
                _done(engine, m, k, None, t_start)
        return Group(engine, members, t_start)
    except BaseException:
        let_go(runs, members)
        raise


def train_group(group: Group, log: Callable[[str], None], quiet: bool = True) -> list[dict | Diverged]:
    """Train an opened group to its end: each member's summary, or the Diverged that ended it, in order."""
    engine, members = group.engine, group.members
    try:
        while not all(m.done for m in members):
            going = [m for m in members if not m.done]
            if len(going) < engine.k:  # the stopped members' rows leave the stack: no step computes them again
                engine = engine.of([m.run for m in going])
            _epoch(engine, going, group.t_start)
            if not quiet:
                log(group.label + _epoch_line(members))
        return [m.result for m in members]
    except Interrupted as e:
        seconds = time.perf_counter() - group.t_start
        for m in members:
            if not m.done:
                write_json(m.run.run_dir / "summary.json", summary_of(m.run, e.status, str(e), seconds))
        raise
    finally:
        let_go([m.run for m in members], members)


def let_go(runs: list[Run], members: list[Member]) -> None:
    """The members' tensorboard writers closed and the runs' folders unlocked (resumable as they are)."""
    for m in members:
        if m.loop.tb is not None:
            m.loop.tb.close()
    for r in runs:
        if r.lock is not None:
            r.lock.release()


def own_masks(runs: list[Run]) -> None:
    """Each CPU member without a mask generator gets one, seeded from torch's global stream in the runs' order
    (in this thread, before any part starts: the seeds do not depend on how the group is split)."""
    for run in runs:
        if run.masks is None and run.device.type == "cpu":
            run.masks = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))


def _unused(idx: torch.Tensor) -> torch.Tensor:
    raise AssertionError("a stacked member is stepped by its Engine")


def _epoch(engine: Engine, members: list[Member], t_start: float) -> None:
    """The steps of one epoch for all, then each member's end of epoch."""
    t0 = time.perf_counter()
    lrs = [m.run.parts.optimizer.param_groups[0]["lr"] for m in members]
    losses = engine.epoch(members).tolist()
    outs = engine.val_outputs(members)
    torch.set_num_threads(1)  # the members' ends of epoch are small ops, which threads only slow down
    try:
        _ends(engine, members, losses, lrs, outs, (t0, t_start))
    finally:
        torch.set_num_threads(engine.threads)


def _ends(engine: Engine, members: list[Member], losses: list, lrs: list, outs: list | None, times: tuple) -> None:
    """Each member's end of epoch as loop.py's (`outs`: its validation outputs, worked out for all at once); a
    signal here is raised once every member still training has saved."""
    t0, t_start = times
    engine.now = time.monotonic()  # one clock for the members' savers: they save at the same epochs
    signalled: list[Path] = []
    for k, m in enumerate(members):
        if m.done:
            continue
        m.loop.val_out = None if outs is None else outs[k]
        try:
            m.halt = end_of_epoch(m.run, m.loop, losses[k], lrs[k], t0)
        except Interrupted:  # this member saved; the others save too before the signal is raised
            signalled.append(m.run.run_dir)
            continue
        if m.halt is not None or m.run.epoch >= m.run.cfg.train.epochs:
            _done(engine, m, k, m.halt, t_start)
    if SIGNALS.signum is not None:  # arrived during this loop: those asked before it save now, at the same epoch
        going = [m for m in members if not m.done]
        for m in going:
            if m.run.run_dir not in signalled:
                m.loop.saver.save()
        dirs = [m.run.run_dir for m in going]
        if dirs:
            raise Interrupted(SIGNALS.signum, dirs[0], going[0].run.epoch, 0, together=dirs)


def _done(engine: Engine, m: Member, k: int, halt: ls.Halt | None, t_start: float) -> None:
    """Member k has trained its last epoch: its weights stay as they are, and its run is finished as loop.py
    finishes one (best.pt on the test split, summary.json, plots)."""
    m.done = True
    engine.opt.stop(k)
    m.result = finish(m.run, m.loop, time.perf_counter() - t_start, halt)


def _epoch_line(members: list[Member]) -> str:
    monitor = members[0].loop.monitor
    shown = " ".join(M.shown(m.run.best_value) if m.run.best_value is not None else "-" for m in members)
    active = sum(not m.done for m in members)
    epoch = max(m.run.epoch for m in members)
    return f"epoch {epoch:>3}: {active}/{len(members)} members training; best {monitor} of each: {shown}"


class Engine:
    """The stacked model, step and optimizer of a group of runs, and their data as [K, ...] tensors (one
    tensor for all when the members' data are the same)."""

    def __init__(self, runs: list[Run], threads: int | None = None):
        self.runs, self.k = runs, len(runs)
        first = runs[0]
        models = [r.parts.model for r in runs]
        self.stack = Stack(models)
        self.fused = written_out(first.cfg, first.data.task, first.data.prep)
        loss = loss_name(first.cfg, first.data.task)
        l1 = [r.cfg.train.l1 for r in runs]
        self.step_fn = stacked_step(self.stack, self.fused, l1, loss, first.parts.criterion)
        own_masks(runs)
        if hasattr(self.step_fn, "gens") and all(r.masks is not None for r in runs):
            self.step_fn.gens = [r.masks for r in runs]  # each member's masks from its own generator
        self.opt = stacked_optimizer(self.stack, [r.parts.optimizer for r in runs], [r.cfg.optimizer for r in runs])
        self.clip = clip_limits([r.cfg.train.grad_clip for r in runs], self.stack.flat)
        self.val_x: torch.Tensor | None = None  # the members' validation rows, gathered at the first epoch's end
        self.X, self.shared_x = _stacked([r.data.X for r in runs], first.device)
        self.y, _ = _stacked([r.data.y for r in runs], first.device, always=True)
        weights = [r.data.loss_weights for r in runs]
        self.w = None if weights[0] is None else _stacked(weights, first.device, always=True)[0].float()
        self.rows = torch.stack([torch.as_tensor(r.data.train, device=first.device) for r in runs])
        n = len(first.data.X)
        self.offsets = torch.arange(self.k, device=first.device)[:, None] * n
        # one-dimensional gathers: indexing [K, N, ...] by (member, row) pairs costs about 3x more
        self.X_rows = self.X.view(self.k * n, -1) if not self.shared_x else None
        self.y_rows = self.y.view(-1)
        self.w_rows = None if self.w is None else self.w.view(-1)
        n = self.stack.flat.numel()
        threads = threads or first.cfg.train.threads or stacked_threads(n, n * first.batch_size)
        torch.set_num_threads(threads)
        self.threads = threads
        for r in runs:
            r.threads = threads  # what the header says: the engine's, not a lone fit's
        self.now = 0.0  # the time the members' savers read: one per epoch end, so they agree on when to save

    def of(self, runs: list[Run]) -> Engine:
        """An engine of some of these members, at the same step: their weights (rows of a new stack), their
        optimizer states (adopted from their own optimizers, whose state tensors are views of this one's) and
        its threads and clock; the members left out keep the weights they have."""
        engine = Engine(runs, self.threads)
        engine.now = self.now
        return engine

    def describe(self) -> str:
        n = sum(self.stack.sizes)
        mib = self.stack.flat.numel() * self.stack.flat.element_size() * 4 / 2**20  # weights, gradients, 2 states
        path = self.step_fn.path
        data = "the same data" if self.shared_x else "each its own data"
        return (
            f"batched: {self.k} members x {n:,} parameters, {path}, {type(self.opt).__name__} update, {data}; "
            f"about {mib:.1f} MiB of weights, gradients and optimizer state; {self.threads} thread(s)"
        )

    def batch(self, orders: torch.Tensor, s: int, bs: int, same_order: bool) -> tuple:
        """x: [B, F] when every member takes the same rows of the same data, else [K, B, F]; y, w: [K, B]."""
        idx = orders[:, s * bs : (s + 1) * bs]  # [K, B] rows of the file
        rows = idx + self.offsets  # rows of the members' data laid end to end
        x = self.X_rows[rows] if not self.shared_x else self.X[idx[0]] if same_order else self.X[idx]
        return x, self.y_rows[rows], None if self.w is None else self.w_rows[rows]

    def epoch(self, members: list[Member]) -> torch.Tensor:
        """One epoch's steps for every member from the step they stand at (the same for all); each member's
        mean training loss. Stopped members' rows are computed too, with their rates at 0."""
        runs, loop = self.runs, members[0].loop
        start = runs[0].step
        for r in runs:
            r.parts.model.train()
            if r.step == 0:
                r.epoch_gen_state = r.gen.get_state()
            else:
                r.gen.set_state(r.epoch_gen_state)
        n, bs = len(runs[0].data.train), loop.batch
        perms = torch.stack([torch.randperm(n, generator=r.gen) for r in runs]).to(self.rows.device)
        orders = self.rows.gather(1, perms)
        same_order = bool((orders == orders[0]).all())
        losses = torch.zeros(self.k, loop.steps, device=self.rows.device)
        if start:
            losses[:] = torch.stack([r.step_losses.to(losses.device) for r in runs])
        for r, row in zip(runs, losses):
            r.step_losses = row
        diags = [(k, r.diag) for k, r in enumerate(runs) if r.diag is not None]
        layers = [f"{h.name}.weight" for h in runs[0].parts.model.hidden] + ["out.weight"]
        for s in range(start, loop.steps):
            if SIGNALS.signum is not None:
                self._interrupted(members, s)
            x, y, w = self.batch(orders, s, bs, same_order)
            losses[:, s] = self.step_fn.loss_and_grads(x, y, w)
            if self.clip is not None:
                self.stack.clip(self.clip)
            self.opt.step()
            if diags and s % diags[0][1].stride == 0:  # every member's gradient norms in one op per layer
                norms = torch.stack([torch.linalg.vector_norm(self.stack.grads[n], dim=(1, 2)) for n in layers])
                for k, d in diags:
                    d.add_norms(norms[:, k])
            if (s + 1) % ls.CHECK_EVERY == 0:
                self._check(members, s + 1 - ls.CHECK_EVERY, s + 1)
        self._check(members, loop.steps - loop.steps % ls.CHECK_EVERY, loop.steps)
        return (losses * loop.sizes).sum(1) / loop.rows

    def val_outputs(self, members: list[Member]) -> list[torch.Tensor] | None:
        """Every member's outputs on its validation rows, in one stacked forward (folds of different lengths
        padded to the longest; chunks of rows, none of one row, whose kernel differs): the same numbers in any
        group, so a resume that regroups the members goes on exactly. None without validation rows."""
        rows = [len(m.loop.val.X) for m in members]
        if not max(rows):
            return None
        if self.val_x is None:  # the rows never change: gathered once
            same = self.shared_x and all(np.array_equal(m.run.data.val, members[0].run.data.val) for m in members)
            self.val_x = members[0].loop.val.X if same else _padded([m.loop.val.X for m in members])
        chunks = self.val_x.tensor_split(-(-max(rows) // max(2, EVAL_ROWS // self.k)), dim=-2)  # even sizes
        out = torch.cat([self.step_fn.forward(x) for x in chunks], dim=1)
        return [o[:n] for o, n in zip(out, rows)]

    def _interrupted(self, members: list[Member], s: int) -> None:
        """A signal between steps: each member still training saves last.pt where it stands, resumable alone."""
        for m in members:
            if not m.done:
                save_mid_epoch(m.run, m.loop, s)
        saved = [m.run.run_dir for m in members if not m.done]
        raise Interrupted(SIGNALS.signum, saved[0], self.runs[0].epoch, s, together=saved)

    def _check(self, members: list[Member], lo: int, hi: int) -> None:
        """A member whose loss or weights became non-finite stops (as a lone run would), the others go on."""
        for k, m in enumerate(members):
            if m.done:
                continue
            try:
                check_diverged(m.run, lo, hi, m.loop.saver)
            except Diverged as e:
                e.run_dir = m.run.run_dir
                m.done, m.result = True, e
                self.opt.stop(k)
                write_json(m.run.run_dir / "summary.json", summary_of(m.run, e.status, str(e), 0.0))


def _padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[K, longest, ...]: each member's rows, then zeros."""
    out = tensors[0].new_zeros(len(tensors), max(len(t) for t in tensors), *tensors[0].shape[1:])
    for o, t in zip(out, tensors):
        o[: len(t)] = t
    return out


def _stacked(arrays: list[np.ndarray], device: torch.device, always: bool = False) -> tuple[torch.Tensor, bool]:
    """(tensor, shared): one [N, ...] tensor when every member's array is the same, else [K, N, ...]."""
    first = arrays[0]
    same = all(a is first or (a.shape == first.shape and np.array_equal(a, first)) for a in arrays[1:])
    if same and not always:
        return torch.as_tensor(first, device=device), True
    if any(a.shape != first.shape for a in arrays):
        raise UserError("members trained together need data of one shape")
    return torch.as_tensor(np.stack(arrays), device=device), same
