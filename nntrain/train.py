"""The training loop: data as tensors on the device, one permutation per epoch, best and last checkpoints."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .components import build, canonical
from .config import MAXIMIZE, Config, dump_yaml, loss_name, monitor_name, task_problems, to_plain
from .data import Prepared, prepare, read_table
from .errors import UserError
from .model import build_mlp, param_table
from .runs import CHECKPOINT_FORMAT, MetricsLog, atomic_save, create_run_dir, write_json

EVAL_CHUNK = 65536
CPU_THREADS = torch.get_num_threads()  # torch's default, before any run lowers it


class Diverged(Exception):
    """The loss or the weights went non-finite; the CLI exits 3."""

    exit_code = 3


def auto_threads(work_per_step: int) -> int:
    """Below about 4M multiply-adds a step, thread start-up costs more than it saves (measured on 2 cores:
    the phone model at batch 32 runs 2.7x faster on one thread than on two)."""
    return 1 if work_per_step < 4_000_000 else CPU_THREADS


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


def n_outputs(cfg: Config, task: str, n_classes: int) -> int:
    if task == "regression" or loss_name(cfg, task) == "bce":
        return 1
    return n_classes


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
    out = forward_all(model, X)
    loss = float(criterion(out, y)) if len(X) else float("nan")
    if prep["task"] == "regression":
        scale, shift = prep["target_scale"], prep["target_shift"]
        pred = out[:, 0].double().cpu().numpy() * scale + shift
        return M.regression(y.double().cpu().numpy() * scale + shift, pred, loss)
    return M.classification(y.cpu().numpy(), to_proba(out, cfg).double().cpu().numpy(), loss)


# ---------------------------------------------------------------- the run


@dataclass
class Parts:
    model: nn.Module
    criterion: Callable
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None


def build_parts(cfg: Config, n_in: int, n_out: int, task: str, device: torch.device) -> Parts:
    torch.manual_seed(cfg.seed)
    model = build_mlp(cfg.model, n_in, n_out).to(device)
    optimizer = build("optimizer", cfg.optimizer, model.parameters())
    sched = None if canonical("scheduler", cfg.scheduler["name"]) == "none" else build("scheduler", cfg.scheduler, optimizer)
    return Parts(model, make_criterion(cfg, task), optimizer, sched)


def load_data(cfg: Config, config_dir: Path | None) -> Prepared:
    table = read_table(cfg.data.path, config_dir)
    data = prepare(table, cfg.data, cfg.seed)
    data.prep.update(source=table.source, sha256=table.sha256)
    problems = task_problems(cfg, data.task, None if data.task == "regression" else len(data.prep["classes"]))
    if problems:
        raise UserError(problems, header=f"the config does not fit the data ({data.task}, {data.task_reason}):")
    for part, idx in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(idx) == 0:
            raise UserError(f"data: the {part} split is empty ({len(data.X)} rows); use more rows or other split sizes")
    return data


def fit(cfg: Config, config_dir: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Train per the config; return the summary that is also written to summary.json."""
    device = select_device(cfg.device)
    data = load_data(cfg, config_dir)  # every data problem surfaces before a run folder exists
    n_out = n_outputs(cfg, data.task, data.n_outputs)
    parts = build_parts(cfg, data.X.shape[1], n_out, data.task, device)
    n = len(data.train)
    bs = n if cfg.train.batch_size == "full" else min(cfg.train.batch_size, n)
    threads = cfg.train.threads or auto_threads(sum(p.numel() for p in parts.model.parameters()) * bs)
    torch.set_num_threads(threads)
    run_dir = create_run_dir(cfg.runs_dir, cfg.name)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    write_json(run_dir / "split.json", {k: getattr(data, k).tolist() for k in ("train", "val", "test")})

    X = torch.as_tensor(data.X, device=device)
    y = torch.as_tensor(data.y, device=device)
    Xtr, ytr = X[data.train], y[data.train]
    Xva, yva = X[data.val], y[data.val]
    steps = math.ceil(n / bs)
    has_bn = any(isinstance(m, nn.BatchNorm1d) for m in parts.model.modules())
    drop_last = has_bn and n % bs == 1  # batch norm cannot normalise a batch of one row
    table = param_table(parts.model)
    monitor = monitor_name(cfg)
    maximize = monitor in MAXIMIZE
    for note in cfg._notes:
        log(f"note: {note}")
    log(f"run folder: {run_dir}")
    log(f"task: {data.task} ({data.task_reason}); loss {loss_name(cfg, data.task)}; device {device}"
        + (f", {threads} thread(s)" if device.type == "cpu" else ""))
    log(f"rows: train {n}, val {len(data.val)}, test {len(data.test)}; {data.X.shape[1]} input features")
    log(f"{n} samples / batch {bs} -> {steps - drop_last} iterations per epoch")
    log(f"model: {' -> '.join([str(data.X.shape[1])] + [str(l.size) for l in cfg.model.resolved_layers()] + [str(n_out)])}, "
        f"{table['total']:,} parameters ({table['trainable']:,} trainable)")

    gen = torch.Generator().manual_seed(cfg.seed)
    metrics_log = MetricsLog(run_dir / "metrics.csv")
    best_value, best_epoch, bad_epochs = None, 0, 0
    l1_weights = [m.weight for m in parts.model.modules() if isinstance(m, nn.Linear)] if cfg.train.l1 else []
    base = {"format": CHECKPOINT_FORMAT, "config": to_plain(cfg), "prep": data.prep, "n_inputs": data.X.shape[1],
            "n_outputs": n_out, "task": data.task, "versions": versions()}
    t_start = time.perf_counter()
    for epoch in range(1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        lr = parts.optimizer.param_groups[0]["lr"]
        parts.model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for s in range(steps - drop_last):
            idx = perm[s * bs:(s + 1) * bs]
            out = parts.model(Xtr[idx])
            loss = parts.criterion(out, ytr[idx])
            if l1_weights:
                loss = loss + cfg.train.l1 * sum(w.abs().sum() for w in l1_weights)
            parts.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.train.grad_clip)
            parts.optimizer.step()
            total += loss.detach() * len(idx)
        train_loss = float(total) / (n - drop_last)  # the one host sync of the epoch's steps
        if not math.isfinite(train_loss):
            raise Diverged(f"epoch {epoch}: the training loss became {train_loss}; best.pt (epoch {best_epoch}) is "
                           f"kept. Try a lower optimizer.lr, train.grad_clip: 1.0, or scaled features")
        if parts.scheduler is not None:
            parts.scheduler.step()
        val = evaluate(parts.model, Xva, yva, cfg, data.prep, parts.criterion)
        value = val["loss"] if monitor == "val_loss" else val[monitor.removeprefix("val_")]
        improved = best_value is None or (value > best_value + cfg.train.min_delta if maximize
                                          else value < best_value - cfg.train.min_delta)
        if improved:
            best_value, best_epoch, bad_epochs = value, epoch, 0
        else:
            bad_epochs += 1
        row = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()},
               "lr": lr, "seconds": time.perf_counter() - t0}
        metrics_log.append(row)
        state = {**base, "epoch": epoch, "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
                 "scheduler": parts.scheduler.state_dict() if parts.scheduler else None,
                 "best_value": best_value, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                 "rng": {"torch": torch.get_rng_state(), "shuffle": gen.get_state(),
                         "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}}
        if improved:
            atomic_save(state, run_dir / "best.pt")
        atomic_save(state, run_dir / "last.pt")
        shown = " ".join(f"{k}={v:.4f}" for k, v in val.items())
        log(f"epoch {epoch:>3}/{cfg.train.epochs}  train_loss={train_loss:.4f}  val {shown}  lr={lr:.3g}"
            + ("  *" if improved else ""))
        if cfg.train.patience and bad_epochs >= cfg.train.patience:
            log(f"early stop: {monitor} has not improved for {bad_epochs} epochs")
            break
    seconds = time.perf_counter() - t_start

    best = torch.load(run_dir / "best.pt", map_location=device, weights_only=True)
    parts.model.load_state_dict(best["model"])
    test = evaluate(parts.model, X[data.test], y[data.test], cfg, data.prep, parts.criterion)
    test_base = M.baseline(data.task, _labels(data, data.test), data.prep)
    summary = {"run_dir": str(run_dir), "best_epoch": best_epoch, "monitor": monitor, "best_value": best_value,
               "test": test, "test_baseline": test_base, "epochs_run": epoch, "train_seconds": round(seconds, 3),
               "task": data.task, "rows": {"train": n, "val": len(data.val), "test": len(data.test)},
               "data": {"source": data.prep["source"], "sha256": data.prep["sha256"]}, "versions": versions()}
    write_json(run_dir / "summary.json", summary)
    log(f"best epoch {best_epoch} ({monitor}={best_value:.4f}); test metrics of best.pt:")
    log(format_metrics(test, test_base))
    return summary


def _labels(data: Prepared, idx: np.ndarray) -> np.ndarray:
    """Targets in the units the metrics use: class indices, or the original regression values."""
    if data.task == "regression":
        return data.y[idx].astype(np.float64) * data.prep["target_scale"] + data.prep["target_shift"]
    return data.y[idx]


def format_metrics(values: dict[str, float], base: dict[str, float]) -> str:
    return "\n".join(f"  {k:<9} {v:.4f}" + (f"   (baseline {base[k]:.4f})" if k in base else "")
                     for k, v in values.items())


def versions() -> dict[str, str]:
    import pandas
    import sklearn

    return {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "pandas": str(pandas.__version__), "scikit-learn": str(sklearn.__version__)}
