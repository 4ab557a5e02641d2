"""The loop: from wherever a Run stands to its last epoch, then the test metrics of best.pt, summary.json and
the plots. The step (written out or autograd, in one process or a data-parallel group) is chosen once per
run by steps.make_step; the loop never asks which it runs.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nntrain import metrics as M
from nntrain.config.schema import Config
from nntrain.engine.finish import UNCHANGED, ended_already, finish, nothing_to_train, summary_of
from nntrain.engine.loop_state import (
    CHECK_EVERY,
    Halt,
    Loop,
    ShouldStop,
    header,
    pace,
    prepare_loop,
    run_tensorboard,
    start_diagnostics,
)
from nntrain.engine.progress import Lines
from nntrain.engine.state import Run, start
from nntrain.engine.stopping import SIGNALS, DataFailed, Diverged, Interrupted, catching_signals
from nntrain.errors import UserError
from nntrain.model.heads import evaluate
from nntrain.runs.checkpoints import Saver, load_checkpoint
from nntrain.runs.files import write_json


def fit(cfg: Config, config_dir: Path | None = None, log: Callable[[str], None] = print, **options: Any) -> dict:
    """Train per the config; return the summary that is also written to summary.json."""
    with catching_signals():
        return train(start(cfg, config_dir), log, **options)


def train(
    run: Run,
    log: Callable[[str], None] = print,
    progress: Lines | None = None,
    tensorboard: bool = False,
    should_stop: ShouldStop | None = None,
) -> dict:
    """The loop, from wherever `run` stands, then the test metrics of best.pt and the run's plots.

    progress: how epochs are shown (default: a line each through `log`); tensorboard: also write event files
    under RUN/tensorboard (needs the tensorboard package); should_stop: asked after every epoch."""
    if not run.writes:  # a data-parallel rank other than 0: silent, and it writes nothing
        log, progress, tensorboard = (lambda m: None), Lines(lambda m: None, quiet=True), False
    progress = progress or Lines(log)
    tb = loop = None
    t_start = time.perf_counter()
    try:
        ended = ended_already(run)
        if ended is not None:  # resumed at its end: the run folder stays as it is
            log(nothing_to_train(run.run_dir, ended))
            return (
                {**ended, "run_dir": str(run.run_dir), UNCHANGED: True}
                if run.writes
                else {"run_dir": str(run.run_dir), "rank": run.group.rank}
            )
        tb = run_tensorboard(run) if tensorboard else None
        loop = prepare_loop(run, log, progress, tb, should_stop)
        return _train(run, loop, t_start)
    except (Diverged, Interrupted, DataFailed) as e:
        if run.writes:
            _ended_by(run, e, loop, time.perf_counter() - t_start)
        raise
    finally:
        progress.end()
        if tb is not None:
            tb.close()
        if run.group is not None:
            run.group.close()
        if run.lock is not None:
            run.lock.release()


def _ended_by(run: Run, e: Diverged | Interrupted | DataFailed, loop: Loop | None, seconds: float) -> None:
    """summary.json says how the run ended (there are no test metrics to give). A bad value met before any
    epoch finished leaves no run folder: nothing was trained, and no resume can read past the value; met
    later, best.pt is written, as a divergence leaves it, for eval and predict."""
    failed = isinstance(e, DataFailed)
    if failed and not run.epoch:
        shutil.rmtree(run.run_dir, ignore_errors=True)
        e.then = f"no epoch had finished: the run folder {run.run_dir} was removed"
        return
    with contextlib.suppress(UserError):  # a full disk: the stop's own message is the one to give
        if failed and loop is not None:
            loop.saver.save_best()
        status = e.kept if failed else e.status
        write_json(run.run_dir / "summary.json", summary_of(run, status, str(e), seconds))
    if failed:
        e.status = e.kept  # --json's record says what summary.json says
        e.then = (
            f"{run.run_dir} keeps best.pt (epoch {run.best_epoch}), its status failed: it cannot be resumed (a "
            "resume refuses a changed file); correct the value and fit again"
        )


def _train(run: Run, loop: Loop, t_start: float) -> dict:
    cfg = run.cfg
    for line in header(run, loop):
        loop.log(line)
    start_diagnostics(run, loop)
    halt = None
    loop.progress.begin(cfg.train.epochs, run.epoch, loop.steps, loop.monitor)
    while not run.ended:
        t0 = time.perf_counter()
        lr = run.parts.optimizer.param_groups[0]["lr"]
        train_loss = (loop.epoch or _epoch)(run, loop)
        halt = end_of_epoch(run, loop, train_loss, lr, t0)
        if halt is not None:
            break
    return finish(run, loop, time.perf_counter() - t_start, halt)


def _epoch(run: Run, loop: Loop) -> float:
    """The steps of one epoch, from run.step; the epoch's mean training loss."""
    run.parts.model.train()
    if run.step == 0:
        run.epoch_gen_state = run.gen.get_state()
        run.step_losses = torch.zeros(loop.steps, device=run.device)
    else:  # a checkpoint made mid-epoch: the same permutation again, from the step it stopped at
        run.gen.set_state(run.epoch_gen_state)
        run.step_losses = run.step_losses.to(run.device)
        if not run.writes:
            run.step_losses.zero_()  # the stored losses are the group's sums; rank 0 alone carries them
    order = loop.train_rows[torch.randperm(len(loop.train_rows), generator=run.gen).to(run.device)]
    bs, diag = loop.batch, run.diag
    for s in range(run.step, loop.steps):
        if loop.interrupted(s):
            _stop_mid_epoch(run, loop, s)
        run.step_losses[s] = loop.step(order[s * bs : (s + 1) * bs])
        if loop.step_scheduler is not None:  # onecycle: its rate moves every step
            loop.step_scheduler.step()
        if diag is not None:
            diag.after_step(s)
        if s % 8 == 0:
            loop.progress.step(s)
        if (s + 1) % CHECK_EVERY == 0:  # a host sync every CHECK_EVERY steps, not every step
            check_diverged(run, s + 1 - CHECK_EVERY, s + 1, loop.saver, run.group)
    if run.group:
        run.group.sum_(run.step_losses)
    check_diverged(run, loop.steps - loop.steps % CHECK_EVERY, loop.steps, loop.saver)  # earlier windows: above
    return float((run.step_losses * loop.sizes).sum()) / loop.rows


def _stop_mid_epoch(run: Run, loop: Loop, s: int) -> None:
    save_mid_epoch(run, loop, s)
    raise Interrupted(SIGNALS.signum or signal.SIGTERM, run.run_dir, run.epoch, s)


def save_mid_epoch(run: Run, loop: Loop, s: int) -> None:
    """A signal between steps: last.pt holds the epoch so far, and resume finishes it exactly."""
    run.step = s
    run.gen.set_state(run.epoch_gen_state)  # as before this epoch's permutation, whatever s is
    if run.group:
        run.group.sum_(run.step_losses)
    loop.saver.save()


def end_of_epoch(run: Run, loop: Loop, train_loss: float, lr: float, t0: float) -> Halt | None:
    """Validation, the metrics row, the best checkpoint, the checks that end a run; a Halt if it ends here."""
    cfg, parts = run.cfg, run.parts
    epoch = run.epoch = run.epoch + 1
    run.step = 0
    stepped = pace(cfg) if parts.scheduler is not None else None
    if stepped == "epoch":
        parts.scheduler.step()
    val = evaluate(parts.model, loop.val, cfg, run.data.prep, parts.criterion, loop.val_out)
    value = val["loss"] if loop.monitor == "val_loss" else val[loop.monitor.removeprefix("val_")]
    if stepped == "value":  # plateau: stepped with the monitored value, once it is known
        parts.scheduler.step(value)
    improved = run.best_value is None or (
        value > run.best_value + cfg.train.min_delta
        if M.maximize(loop.monitor)
        else value < run.best_value - cfg.train.min_delta
    )
    if improved:
        run.best_value, run.best_epoch, run.bad_epochs = value, epoch, 0
    else:
        run.bad_epochs += 1
    _from_best(run, improved)
    diag_values = run.diag.epoch_values() if run.diag is not None else {}
    penalty = {"train_l1_penalty": l1_penalty(run)} if cfg.train.l1 else {}
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        **penalty,
        **{f"val_{k}": v for k, v in val.items()},
        "lr": lr,
        **diag_values,
        "seconds": time.perf_counter() - t0,
    }
    if loop.metrics_log is not None:
        loop.metrics_log.append(row)
    if improved:
        loop.saver.best_changed()
    shown = " ".join(f"{k}={M.shown(v)}" for k, v in val.items())
    loop.progress.epoch(
        epoch,
        f"epoch {epoch:>3}/{cfg.train.epochs}  train_loss={train_loss:.4f}"
        + (f" (+ l1 penalty {penalty['train_l1_penalty']:.4f})" if penalty else "")
        + f"  val {shown}  "
        f"lr={lr:.3g}" + ("  *" if improved else ""),
        row,
    )
    asked = loop.should_stop(epoch, row) if loop.should_stop is not None else None
    _report(run, loop, epoch, row, diag_values)
    halt = _halt(run, loop, asked)
    signalled = _signalled(run.group)
    if halt or epoch == cfg.train.epochs or signalled or loop.saver.due():
        loop.saver.save()
    if signalled:
        raise Interrupted(SIGNALS.signum or signal.SIGTERM, run.run_dir, run.epoch, 0)
    return halt


def l1_penalty(run: Run) -> float:
    """train.l1 times the linear weights' absolute sum at the epoch's end: the penalty the training loss leaves
    out (it is the data's loss alone, comparable with the validation loss); for model.ensemble, per member."""
    weights = [m.weight for m in run.parts.model.modules() if isinstance(m, torch.nn.Linear)]
    members = len(getattr(run.parts.model, "members", [None]))
    return run.cfg.train.l1 * float(sum(w.detach().abs().sum() for w in weights)) / members


def _from_best(run: Run, improved: bool) -> None:
    """The anneal schedule's from_best: a copy of the weights at each better epoch, put back where the anneal
    begins (after a resume, best.pt's: every rank reads the same file)."""
    scheduler = run.parts.scheduler
    if not getattr(scheduler, "from_best", False):
        return
    model = run.parts.model
    if improved:
        run.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    elif scheduler.restarts:
        if run.best_weights is None:
            run.best_weights = load_checkpoint(run.run_dir / "best.pt")["model"]
        model.load_state_dict(run.best_weights)


def _report(run: Run, loop: Loop, epoch: int, row: dict, diag_values: dict) -> None:
    """The diagnostics' warnings in words, and the row in TensorBoard."""
    for warning in run.diag.warnings(diag_values) if run.diag is not None else []:
        loop.log(f"warning (epoch {epoch}): {warning}")
    if loop.tb is not None:
        for key, value in row.items():
            if key not in ("epoch", "seconds"):
                loop.tb.add_scalar(key.replace(".", "/"), value, epoch)


def _halt(run: Run, loop: Loop, asked: Halt | None) -> Halt | None:
    """Early stop, or what the should_stop hook asked for (which wins when both happen), each logged."""
    halt = None
    if run.stopped_early:
        finished = getattr(run.parts.scheduler, "finished", False)  # the anneal schedule (schedules.py) ended
        how = run.parts.scheduler.describe() if finished else f"has not improved for {run.bad_epochs} epochs"
        halt = Halt("early_stop", f"early stop: {loop.monitor} {how}")
        loop.log(halt.reason)
    if asked is not None:
        halt = asked
        loop.log(f"stopped: {asked.reason}")
    return halt


def _signalled(group: Any) -> bool:
    """A SIGINT or SIGTERM arrived; in a data-parallel group, on any rank, so that all stop at the same step."""
    return SIGNALS.signum is not None if group is None else group.any(SIGNALS.signum is not None)


def check_diverged(run: Run, lo: int, hi: int, saver: Saver, group: Any = None) -> None:
    """Stop before a non-finite loss or weight reaches a checkpoint; the last good best.pt is written.

    `group`: the step losses are still each rank's own, so the window is summed over the ranks first (a copy):
    every rank then sees the same non-finite step and all stop together, rather than one stopping and the
    others waiting for it in the next all-reduce."""
    window = run.step_losses[lo:hi] if group is None else group.sum_(run.step_losses[lo:hi].clone())
    bad_loss = not bool(torch.isfinite(window).all())
    bad_weights = (
        not bad_loss
        and hi == len(run.step_losses)
        and not bool(torch.stack([torch.isfinite(p).all() for p in run.parts.model.parameters()]).all())
    )
    if bad_loss or bad_weights:
        saver.save_best()
        step = lo + int((~torch.isfinite(window)).nonzero()[0]) + 1 if bad_loss else hi
        what = "the training loss became non-finite" if bad_loss else "a weight became non-finite"
        kept = f"best.pt (epoch {run.best_epoch}) and " if run.best_epoch else ""
        tips = [f"a lower optimizer.lr (now {run.cfg.optimizer.get('lr')})", "train.grad_clip: 1.0"]
        if run.cfg.data.scale == "none":
            tips.append("data.scale: standard")
        raise Diverged(
            f"training diverged at epoch {run.epoch + 1}, step {step}: {what}; {kept}last.pt (epoch "
            f"{saver.last_epoch}) kept. Try {', '.join(tips)} in a new run"
        )
