"""The training loop: data as tensors on the device, one permutation per epoch, best and last checkpoints."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .components import build, canonical
from .config import MAXIMIZE, Config, dump_yaml, loss_name, monitor_name, to_plain
from .data import Prepared, load_data, unscale
from .diagnostics import Diagnostics
from .errors import UserError
from .fused import FlatSGD, FusedStep, plan
from .listing import flatten
from .model import build_mlp, n_outputs, param_table
from .progress import Lines
from .runs import CHECKPOINT_FORMAT, MetricsLog, Saver, atomic_save, create_run_dir, load_checkpoint, write_json
from .stopping import SIGNALS, Diverged, Interrupted, RanksDiverged, catching_signals

EVAL_CHUNK = 65536
CPU_THREADS = torch.get_num_threads()  # torch's default, before any run lowers it


def auto_threads(work_per_step: int, processes: int = 1) -> int:
    """Below about 4M multiply-adds a step, thread start-up costs more than it saves (measured on 2 cores:
    the phone model at batch 32 runs 2.7x faster on one thread than on two). Processes of one machine share
    its cores."""
    return 1 if work_per_step < 4_000_000 else max(1, os.cpu_count() // processes if processes > 1 else CPU_THREADS)


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={name}: CUDA is not available on this machine; use device: auto or cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device=mps: MPS is not available on this machine; use device: auto or cpu")
    return torch.device(name)


# ---------------------------------------------------------------- loss and outputs


def make_criterion(cfg: Config, task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(outputs, targets) with the targets as stored: class indices or the standardized value."""
    name = loss_name(cfg, task)
    spec = {"name": name, **{k: v for k, v in cfg.loss.items() if k != "name"}}
    fn = build("loss", spec)
    if name in ("cross_entropy", "nll"):
        return fn
    return lambda out, y: fn(out[:, 0], y.to(out.dtype))


def to_proba(out: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Model outputs of a classifier -> class probabilities, whatever the output activation."""
    act = canonical("output_activation", cfg.model.output_activation["name"])
    if out.shape[1] == 1:  # bce: one logit for the positive class
        p = torch.sigmoid(out[:, 0]) if act != "sigmoid" else out[:, 0]
        return torch.stack([1 - p, p], dim=1)
    if act == "softmax":
        return out
    if act == "log_softmax":
        return out.exp()
    return torch.softmax(out, dim=1)


@torch.no_grad()
def forward_all(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(X[i:i + EVAL_CHUNK]) for i in range(0, len(X), EVAL_CHUNK)]) if len(X) else X[:, :0]


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg: Config, prep: dict,
             criterion: Callable) -> dict[str, float]:
    return evaluate_with_scores(model, X, y, cfg, prep, criterion)[0]


def evaluate_with_scores(model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg: Config, prep: dict,
                         criterion: Callable) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, scores): class probabilities, or predictions in the target's units."""
    out = forward_all(model, X)
    loss = float(criterion(out, y)) if len(X) else float("nan")
    if prep["task"] == "regression":
        pred = unscale(prep, out[:, 0].cpu().double().numpy())
        return M.regression(truth(prep, y), pred, loss), pred
    proba = to_proba(out, cfg).cpu().double().numpy()
    return M.classification(y.cpu().numpy(), proba, loss), proba


def truth(prep: dict, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Stored targets in the units the metrics use: class indices, or the original regression values."""
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
    return unscale(prep, y.astype(np.float64)) if prep["task"] == "regression" else y


# ---------------------------------------------------------------- the run


@dataclass
class Parts:
    model: nn.Module
    criterion: Callable
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    fused: FusedStep | None = None  # the written-out step, when the model takes that path


def build_parts(cfg: Config, n_in: int, n_out: int, task: str, device: torch.device, fused: bool = False) -> Parts:
    torch.manual_seed(cfg.seed)
    model = build_mlp(cfg.model, n_in, n_out).to(device)
    step = FusedStep(model, cfg, task) if fused else None
    if step is not None and FlatSGD.applies(cfg.optimizer):
        optimizer = FlatSGD(step, **{k: v for k, v in cfg.optimizer.items() if k != "name"})
    else:
        optimizer = build("optimizer", cfg.optimizer, model.parameters())
    sched = None if canonical("scheduler", cfg.scheduler["name"]) == "none" else build("scheduler", cfg.scheduler, optimizer)
    return Parts(model, make_criterion(cfg, task), optimizer, sched, step)


@dataclass
class Run:
    """Everything the loop needs, and everything a checkpoint must restore."""

    cfg: Config
    run_dir: Path
    data: Prepared
    parts: Parts
    device: torch.device
    threads: int
    path_note: str
    gen: torch.Generator  # shuffles, and nothing else, so no other random call moves the permutation
    epoch: int = 0  # epochs finished
    step: int = 0  # steps finished of the epoch after `epoch` (a checkpoint made on a signal)
    epoch_gen_state: torch.Tensor | None = None  # the shuffle generator before this epoch's permutation
    step_losses: torch.Tensor | None = None
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    group: Any = None  # distributed.Group when data-parallel, else None
    diag: Diagnostics | None = None
    diag_state: dict | None = None  # the gradient-norm sums of an epoch a checkpoint cut in the middle

    @property
    def writes(self) -> bool:
        """Rank 0 (or the only process) writes the run folder; the other ranks write nothing."""
        return self.group is None or self.group.writes

    @property
    def batch_size(self) -> int:
        return batch_size(self.cfg, len(self.data.train))

    def state(self) -> dict:
        p, d = self.parts, self.data
        return {"format": CHECKPOINT_FORMAT, "config": to_plain(self.cfg), "prep": d.prep, "n_inputs": d.X.shape[1],
                "n_outputs": n_outputs(self.cfg, d.task, d.n_outputs), "task": d.task, "versions": versions(),
                "epoch": self.epoch, "step": self.step, "model": p.model.state_dict(),
                "optimizer": p.optimizer.state_dict(), "scheduler": p.scheduler.state_dict() if p.scheduler else None,
                "best_value": self.best_value, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "epoch_gen_state": self.epoch_gen_state, "step_losses": self.step_losses,
                "diag": self.diag.state() if self.diag is not None else self.diag_state,
                "rng": {"torch": torch.get_rng_state(), "shuffle": self.gen.get_state(),
                        "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []}}


def batch_size(cfg: Config, n_train: int) -> int:
    return n_train if cfg.train.batch_size == "full" else min(cfg.train.batch_size, n_train)


def _setup(cfg: Config, data: Prepared, device: torch.device, group: Any = None) -> tuple[Parts, int, str]:
    if group and any(layer.batch_norm for layer in cfg.model.resolved_layers()):
        raise UserError("model.batch_norm with several processes: each rank would normalise by its own shard's "
                        "statistics; train batch-norm models in one process")
    fusable, why = plan(cfg, data.task)
    if cfg.train.engine == "fused" and not fusable:
        raise UserError(f"train.engine=fused: this model needs autograd ({why}); use engine: auto")
    fused = fusable and cfg.train.engine != "autograd" and not cfg.train.compile
    parts = build_parts(cfg, data.X.shape[1], n_outputs(cfg, data.task, data.n_outputs), data.task, device, fused)
    bs = batch_size(cfg, len(data.train))
    threads = cfg.train.threads or auto_threads(sum(p.numel() for p in parts.model.parameters()) * bs,
                                                group.local_world if group else 1)
    torch.set_num_threads(threads)
    note = ("fused step (forward and backward written out)" if fused
            else "autograd step under torch.compile (train.compile: true)" if cfg.train.compile
            else f"autograd step ({'train.engine: autograd' if fusable else why})")
    return parts, threads, note


def start(cfg: Config, config_dir: Path | None = None) -> Run:
    """A new run: data read and checked first, so a problem leaves no run folder behind. In a data-parallel
    group every rank reads the data; rank 0 makes the run folder and tells the others its name."""
    group = _group(cfg)
    device = group.device if group else select_device(cfg.device)
    data = load_data(cfg, config_dir)
    parts, threads, note = _setup(cfg, data, device, group)
    run_dir = create_run_dir(cfg.runs_dir, cfg.name) if not group or group.writes else None
    if group:
        run_dir = Path(group.broadcast(str(run_dir) if run_dir else None))
    SIGNALS.armed = True  # from here a signal is saved as a resumable stop
    run = Run(cfg, run_dir, data, parts, device, threads, note, torch.Generator().manual_seed(cfg.seed), group=group)
    if run.writes:
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        write_json(run_dir / "split.json", {k: getattr(data, k).tolist() for k in ("train", "val", "test")})
        atomic_save(run.state(), run_dir / "last.pt")  # epoch 0: a run stopped in its first epoch can resume
    return run


def _group(cfg: Config) -> Any:
    from .distributed import Group, launched

    return Group(cfg.device) if launched() else None


# Keys a resume may change; anything else would train a different model than the checkpoint holds.
RESUMABLE = ("train.", "device")


def resume(run_dir: Path, overrides: list[str] = ()) -> Run:
    """Continue from last.pt with only the run folder: config, data rows, states and RNGs as they were."""
    from .config import load_config
    from .data import load_encoded
    from .runs import clean_leftovers, resolve_run_dir, truncate_metrics

    run_dir = resolve_run_dir(str(run_dir))
    from .distributed import rank

    if rank() == 0:
        clean_leftovers(run_dir)
    SIGNALS.armed = True
    ckpt = load_checkpoint(run_dir / "last.pt")
    stored = ckpt["config"]
    cfg = load_config(None, list(overrides), raw=json.loads(json.dumps(stored)))  # a deep copy to override
    was, now = flatten(stored), flatten(to_plain(cfg))
    changed = [f"{k}: {was.get(k)!r} -> {now.get(k)!r}" for k in dict.fromkeys([*was, *now])
               if was.get(k) != now.get(k) and not k.startswith(RESUMABLE)]
    if changed:
        raise UserError(changed, header="these keys cannot change on resume (the checkpoint was trained with the "
                                        "old values); start a new run instead:")
    if ckpt["step"] and cfg.train.batch_size != stored["train"]["batch_size"]:
        raise UserError(f"train.batch_size={cfg.train.batch_size}: the run stopped in the middle of epoch "
                        f"{ckpt['epoch'] + 1}, whose batches were cut at {stored['train']['batch_size']}; resume "
                        f"without changing it (a change at an epoch boundary is fine)")
    group = _group(cfg)
    device = group.device if group else select_device(cfg.device)
    prep = ckpt["prep"]
    X, y = load_encoded(prep)
    split = json.loads((run_dir / "split.json").read_text())
    data = Prepared(X, y, *(np.asarray(split[k], dtype=np.int64) for k in ("train", "val", "test")), prep,
                    "as when the run started")
    parts, threads, note = _setup(cfg, data, device, group)
    parts.model.load_state_dict(ckpt["model"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    if parts.scheduler is not None:
        parts.scheduler.load_state_dict(ckpt["scheduler"])  # restored, never stepped again (Lightning #4655)
    gen = torch.Generator()
    gen.set_state(ckpt["rng"]["shuffle"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device.type == "cuda" and ckpt["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    if not group or group.writes:
        truncate_metrics(run_dir / "metrics.csv", ckpt["epoch"])
    return Run(cfg, run_dir, data, parts, device, threads, note, gen, group=group, epoch=ckpt["epoch"], step=ckpt["step"],
               epoch_gen_state=ckpt["epoch_gen_state"], step_losses=ckpt["step_losses"],
               best_value=ckpt["best_value"], best_epoch=ckpt["best_epoch"], bad_epochs=ckpt["bad_epochs"],
               diag_state=ckpt.get("diag"))


def configure(path: Path, overrides: list[str] = (), name: str | None = None) -> Config:
    """load_config; when the file has problems, add those that only the data reveals (bce on four classes),
    so one message holds them all."""
    from .config import load_config

    try:
        return load_config(path, overrides, name=name)
    except UserError as e:
        partial = getattr(e, "partial", None)
        if partial is not None:
            try:
                load_data(partial, path.parent)
            except UserError as more:
                e.problems += [p for p in more.problems if p not in e.problems]
                e.header = f"{path}: {len(e.problems)} problem(s) in the config and data:"
        raise e from None


def fit(cfg: Config, config_dir: Path | None = None, log: Callable[[str], None] = print, **options: Any) -> dict:
    """Train per the config; return the summary that is also written to summary.json."""
    with catching_signals():
        return train(start(cfg, config_dir), log, **options)


def train(run: Run, log: Callable[[str], None] = print, progress: Lines | None = None,
          tensorboard: bool = False) -> dict:
    """The loop, from wherever `run` stands, then the test metrics of best.pt and the run's plots.

    progress: how epochs are shown (default: a line each through `log`); tensorboard: also write event files
    under RUN/tensorboard (needs the tensorboard package)."""
    if not run.writes:  # a data-parallel rank other than 0: silent, and it writes nothing
        log, progress, tensorboard = (lambda m: None), Lines(lambda m: None, quiet=True), False
    progress = progress or Lines(log)
    tb = _tensorboard(run) if tensorboard else None
    try:
        return _train(run, log, progress, tb)
    finally:
        progress.end()
        if tb is not None:
            tb.close()
        if run.group is not None:
            run.group.close()


def _tensorboard(run: Run) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install -e \".[tensorboard]\"") from None
    # purge_step drops events of epochs a resume runs again, so curves never double back
    return SummaryWriter(str(run.run_dir / "tensorboard"), purge_step=run.epoch + 1 if run.epoch else None)


def _train(run: Run, log: Callable[[str], None], progress: Lines, tb: Any) -> dict:
    cfg, data, parts, device = run.cfg, run.data, run.parts, run.device
    X = torch.as_tensor(data.X, device=device)
    y = torch.as_tensor(data.y, device=device)
    # Batches index the whole matrix through the training rows' indices: no copy of the training rows.
    train_rows = torch.as_tensor(data.train, device=device)
    Xva, yva = X[data.val], y[data.val]
    n, bs = len(train_rows), run.batch_size
    has_bn = any(isinstance(m, nn.BatchNorm1d) for m in parts.model.modules())
    steps = math.ceil(n / bs) - (has_bn and n % bs == 1)  # batch norm cannot normalise a batch of one row
    sizes = torch.tensor([min(bs, n - s * bs) for s in range(steps)], device=device, dtype=torch.float32)
    rows_per_epoch = float(sizes.sum())
    monitor = monitor_name(cfg)
    maximize = monitor in MAXIMIZE
    table = param_table(parts.model)
    for note in [*cfg._notes, *data.notes]:
        log(f"note: {note}")
    log(f"run folder: {run.run_dir}" + (f" (resumed after epoch {run.epoch}, step {run.step})" if run.epoch or run.step else ""))
    log(f"task: {data.task} ({data.task_reason}); loss {loss_name(cfg, data.task)}; device {device}"
        + (f", {run.threads} thread(s)" if device.type == "cpu" else ""))
    log(f"rows: train {n}, val {len(data.val)}, test {len(data.test)}; {data.X.shape[1]} input features")
    log(f"{n} samples / batch {bs} -> {steps} iterations per epoch; {run.path_note}")
    log(f"model: {' -> '.join([str(data.X.shape[1])] + [str(l.size) for l in cfg.model.resolved_layers()] + [str(parts.model.out.out_features)])}, "
        f"{table['total']:,} parameters ({table['trainable']:,} trainable)")

    diag = run.diag = Diagnostics(parts.model, cfg, steps, Xva) if cfg.train.diagnostics else None
    if diag is not None and run.step and run.diag_state:
        diag.load_state(run.diag_state)
    fused = parts.fused
    # The compiled module shares the original's parameters: checkpoints and evaluation use the original.
    forward = torch.compile(parts.model) if cfg.train.compile else parts.model
    group = run.group
    params = list(parts.model.parameters())
    metrics_log = MetricsLog(run.run_dir / "metrics.csv") if run.writes else None
    saver = Saver(run)
    l1_weights = [m.weight for m in parts.model.modules() if isinstance(m, nn.Linear)] if cfg.train.l1 else []
    patience = cfg.train.patience
    stopped = None  # why the run ended before train.epochs, if it did
    t_start = time.perf_counter()
    progress.begin(cfg.train.epochs, run.epoch, steps)
    while run.epoch < cfg.train.epochs and not (patience and run.bad_epochs >= patience):
        epoch = run.epoch + 1
        t0 = time.perf_counter()
        lr = parts.optimizer.param_groups[0]["lr"]
        parts.model.train()
        if run.step == 0:
            run.epoch_gen_state = run.gen.get_state()
            run.step_losses = torch.zeros(steps, device=device)
        else:  # a checkpoint made mid-epoch: the same permutation again, from the step it stopped at
            run.gen.set_state(run.epoch_gen_state)
            run.step_losses = run.step_losses.to(device)
            if group and not group.writes:
                run.step_losses.zero_()  # the stored losses are the group's sums; rank 0 alone carries them
        order = train_rows[torch.randperm(n, generator=run.gen).to(device)]
        for s in range(run.step, steps):
            # In a group every rank must stop at the same step: the ranks agree on it every CHECK_EVERY steps.
            if (group is None or s % CHECK_EVERY == 0) and _signalled(group):
                run.step = s
                run.gen.set_state(run.epoch_gen_state)  # as before this epoch's permutation, whatever s is
                if group:
                    group.sum_(run.step_losses)
                saver.save()
                raise Interrupted(SIGNALS.signum or signal.SIGTERM, run.run_dir, run.epoch, s)
            idx = order[s * bs:(s + 1) * bs]
            if group:
                idx, share = group.shard(idx)
            if group and not len(idx):  # a last batch with fewer rows than ranks: this rank adds nothing
                loss = torch.zeros((), device=device)
                if fused:
                    fused.flat_grad.zero_()
                else:
                    parts.optimizer.zero_grad(set_to_none=True)
            elif fused:
                loss = fused.loss_and_grads(X[idx], y[idx])
            else:
                loss = parts.criterion(forward(X[idx]), y[idx])
                if l1_weights:
                    loss = loss + cfg.train.l1 * sum(w.abs().sum() for w in l1_weights)
                parts.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if group:
                group.reduce_grads(params, share, fused.flat_grad if fused else None)
                loss = loss * share
            if cfg.train.grad_clip:
                _clip(params, cfg.train.grad_clip, fused)
            parts.optimizer.step()
            run.step_losses[s] = loss.detach()
            if diag is not None:
                diag.after_step(s)
            if s % 8 == 0:
                progress.step(s)
            if (s + 1) % CHECK_EVERY == 0:  # a host sync every CHECK_EVERY steps, not every step
                _check_diverged(run, s + 1 - CHECK_EVERY, s + 1, saver, group)
        if group:
            group.sum_(run.step_losses)
        _check_diverged(run, steps - steps % CHECK_EVERY, steps, saver)  # the windows before it were checked above
        train_loss = float((run.step_losses * sizes).sum()) / rows_per_epoch
        run.epoch, run.step = epoch, 0
        if parts.scheduler is not None:
            parts.scheduler.step()
        val = evaluate(parts.model, Xva, yva, cfg, data.prep, parts.criterion)
        value = val["loss"] if monitor == "val_loss" else val[monitor.removeprefix("val_")]
        improved = run.best_value is None or (value > run.best_value + cfg.train.min_delta if maximize
                                              else value < run.best_value - cfg.train.min_delta)
        if improved:
            run.best_value, run.best_epoch, run.bad_epochs = value, epoch, 0
        else:
            run.bad_epochs += 1
        diag_values = diag.epoch_values() if diag is not None else {}
        row = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}, "lr": lr,
               **diag_values, "seconds": time.perf_counter() - t0}
        if metrics_log is not None:
            metrics_log.append(row)
        if improved:
            saver.best_changed()
        shown = " ".join(f"{k}={v:.4f}" for k, v in val.items())
        # progress may ask the run to stop here (a sweep's pruner): the run then ends as an early stop does
        stop = progress.epoch(epoch, f"epoch {epoch:>3}/{cfg.train.epochs}  train_loss={train_loss:.4f}  val {shown}  "
                                     f"lr={lr:.3g}" + ("  *" if improved else ""), row)
        for warning in diag.warnings(diag_values) if diag is not None else []:
            log(f"warning (epoch {epoch}): {warning}")
        if tb is not None:
            for key, value in row.items():
                if key not in ("epoch", "seconds"):
                    tb.add_scalar(key.replace(".", "/"), value, epoch)
        early = bool(patience and run.bad_epochs >= patience)
        if early:
            stopped = f"early stop: {monitor} has not improved for {run.bad_epochs} epochs"
            log(stopped)
        if stop:
            stopped = stop
            log(f"stopped: {stop}")
        signalled = _signalled(group)
        if early or stop or epoch == cfg.train.epochs or signalled or saver.due():
            saver.save()
        if signalled:
            raise Interrupted(SIGNALS.signum or signal.SIGTERM, run.run_dir, run.epoch, 0)
        if stop:
            break
    return _finish(run, X, y, time.perf_counter() - t_start, stopped, log, progress)


def _finish(run: Run, X: torch.Tensor, y: torch.Tensor, seconds: float, stopped: str | None,
            log: Callable[[str], None], progress: Lines) -> dict:
    """After the last epoch: the ranks' weights compared, then best.pt on the test split, summary.json, plots."""
    cfg, data, parts, group = run.cfg, run.data, run.parts, run.group
    monitor = monitor_name(cfg)
    if group:
        same = group.same_weights(parts.model)
        if not same:
            raise RanksDiverged(f"the {group.world} ranks ended with different weights; {run.run_dir} holds rank 0's")
        log(f"data-parallel: {group.world} processes, weights identical on every rank (sha256 compared)")
        if not group.writes:
            return {"run_dir": str(run.run_dir), "rank": group.rank}

    best = load_checkpoint(run.run_dir / "best.pt")
    parts.model.load_state_dict(best["model"])
    test, scores = evaluate_with_scores(parts.model, X[data.test], y[data.test], cfg, data.prep, parts.criterion)
    test_base = M.baseline(data.task, truth(data.prep, data.y[data.test]), data.prep)
    summary = {"run_dir": str(run.run_dir), "best_epoch": run.best_epoch, "monitor": monitor,
               "best_value": run.best_value, "test": test, "test_baseline": test_base, "epochs_run": run.epoch,
               "stopped": stopped, "train_seconds": round(seconds, 3), "task": data.task,
               "rows": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
               "data": {"source": data.prep["source"], "sha256": data.prep["sha256"]}, "versions": versions()}
    write_json(run.run_dir / "summary.json", summary)
    progress.end()
    log(f"best epoch {run.best_epoch} ({monitor}={run.best_value:.4f}); test metrics of best.pt:")
    log(format_metrics(test, test_base))
    if cfg.train.plots:
        written = write_plots(run.run_dir, monitor, data.task, truth(data.prep, data.y[data.test]), scores,
                              data.prep["classes"])
        log(f"plots: {', '.join(p.name for p in written)} in {run.run_dir}")
    return summary


def write_plots(run_dir: Path, monitor: str, task: str, y_true: np.ndarray, scores: np.ndarray,
                classes: list | None) -> list[Path]:
    """PNG plots in the run folder: curves from metrics.csv, and the test split's predictions."""
    from .plots import curve_plots, prediction_plots

    return curve_plots(run_dir, monitor) + prediction_plots(run_dir, task, y_true, scores, classes)


CHECK_EVERY = 64


def _signalled(group: Any) -> bool:
    """A SIGINT or SIGTERM arrived; in a data-parallel group, on any rank, so that all stop at the same step."""
    return SIGNALS.signum is not None if group is None else group.any(SIGNALS.signum is not None)


def _clip(params: list[torch.Tensor], max_norm: float, fused: FusedStep | None) -> None:
    """clip_grad_norm_'s rule; on the fused path as two ops on the flat gradient rather than ops per layer."""
    if fused is None:
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    norm = torch.linalg.vector_norm(fused.flat_grad)
    fused.flat_grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))


def _check_diverged(run: Run, lo: int, hi: int, saver: Saver, group: Any = None) -> None:
    """Stop before a non-finite loss or weight reaches a checkpoint; the last good best.pt is written.

    `group`: the step losses are still each rank's own, so the window is summed over the ranks first (a copy):
    every rank then sees the same non-finite step and all stop together, rather than one stopping and the
    others waiting for it in the next all-reduce."""
    window = run.step_losses[lo:hi] if group is None else group.sum_(run.step_losses[lo:hi].clone())
    bad_loss = not bool(torch.isfinite(window).all())
    bad_weights = not bad_loss and hi == len(run.step_losses) and not bool(
        torch.stack([torch.isfinite(p).all() for p in run.parts.model.parameters()]).all())
    if bad_loss or bad_weights:
        saver.save_best()
        step = lo + int((~torch.isfinite(window)).nonzero()[0]) + 1 if bad_loss else hi
        what = "the training loss became non-finite" if bad_loss else "a weight became non-finite"
        kept = f"best.pt (epoch {run.best_epoch}) and " if run.best_epoch else ""
        tips = [f"a lower optimizer.lr (now {run.cfg.optimizer.get('lr')})", "train.grad_clip: 1.0"]
        if run.cfg.data.scale == "none":
            tips.append("data.scale: standard")
        raise Diverged(f"training diverged at epoch {run.epoch + 1}, step {step}: {what}; {kept}last.pt (epoch {saver.last_epoch}) "
                       f"kept. Try {', '.join(tips)} in a new run")


def format_metrics(values: dict[str, float], base: dict[str, float]) -> str:
    return "\n".join(f"  {k:<9} {v:.4f}" + (f"   (baseline {base[k]:.4f})" if k in base else "")
                     for k, v in values.items())


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """What reproduces a run; read from package metadata, so nothing is imported for it."""
    from importlib.metadata import version

    return {"python": platform.python_version(), "nntrain": version("nntrain"), "torch": str(torch.__version__),
            **{name: version(name) for name in ("numpy", "pandas", "scikit-learn")}}
