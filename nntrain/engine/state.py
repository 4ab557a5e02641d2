"""A run's state: its parts built from the config, started fresh or resumed from last.pt, and what a
checkpoint holds. The loop that moves the state on is loop.py's."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nntrain.config.loading import load_config
from nntrain.config.recipe import fix_auto
from nntrain.config.schema import Config, to_plain
from nntrain.data.cache import cached_data
from nntrain.data.moved import found_again
from nntrain.data.prepare import Prepared, load_data
from nntrain.data.reread import load_encoded
from nntrain.data.stream import Share
from nntrain.data.stream_reread import resumed_data
from nntrain.data.table_source import recorded
from nntrain.engine.device import auto_threads, select_device
from nntrain.engine.diagnostics import Diagnostics
from nntrain.engine.fused import plan
from nntrain.engine.parts import Parts, build_parts, follow_schedule
from nntrain.engine.resumed import config_going_on, rewrite_config
from nntrain.engine.stopping import SIGNALS
from nntrain.errors import ConfigError, UserError, in_one_line
from nntrain.model.embeddings import embeds_of, fit_edges, numerics_of
from nntrain.model.memory import check_fits
from nntrain.model.mlp import check_weights, load_weights, n_outputs
from nntrain.runs.checkpoints import CHECKPOINT_FORMAT, load_run_checkpoint, split_rows, versions
from nntrain.runs.files import atomic_save, read_summary, write_json, write_text
from nntrain.runs.folders import PREVIOUS, RunLock, clean_leftovers, create_run_dir, resolve_run_dir
from nntrain.runs.metrics_log import truncate_metrics


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
    lock: RunLock | None = None  # held while this process writes the run folder (rank 0 alone)
    run_id: str | None = None  # in every checkpoint and in split.json: another run's checkpoint is refused
    checkpoint: str = "last"  # the checkpoint it started from: rebuild_alone restores that one
    best_weights: dict | None = None  # the anneal's from_best: the model's state at the best epoch (loop.py)
    masks: torch.Generator | None = None  # a stacked member's own dropout masks (stacked_runs.py), on the CPU

    @property
    def writes(self) -> bool:
        """Rank 0 (or the only process) writes the run folder; the other ranks write nothing."""
        return self.group is None or self.group.writes

    @property
    def batch_size(self) -> int:
        stream = self.data.prep.get("stream")  # a streamed run holds none of its training rows
        return self.cfg.train.batch_rows(stream["rows"]["train"] if stream else len(self.data.train))

    @property
    def stopped_early(self) -> bool:
        """train.patience epochs without improvement, or the anneal schedule (schedules.py) at its end."""
        patience = self.cfg.train.patience
        return bool(patience and self.bad_epochs >= patience) or getattr(self.parts.scheduler, "finished", False)

    @property
    def ended(self) -> bool:
        """Nothing left to train: every epoch, or stopped early."""
        return self.epoch >= self.cfg.train.epochs or self.stopped_early

    def state(self) -> dict:
        p, d = self.parts, self.data
        return {
            "format": CHECKPOINT_FORMAT,
            "config": {**to_plain(self.cfg), "sweep": None},  # the search space is the study's, not the model's
            "prep": d.prep,
            "n_inputs": d.X.shape[1],
            "n_outputs": n_outputs(self.cfg, d.task, d.n_outputs),
            "task": d.task,
            "versions": versions(),
            "run_id": self.run_id,
            "epoch": self.epoch,
            "step": self.step,
            "model": _own(p.model.state_dict()),
            "optimizer": _own(p.optimizer.state_dict()),
            "scheduler": p.scheduler.state_dict() if p.scheduler else None,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "epoch_gen_state": self.epoch_gen_state,
            "step_losses": self.step_losses,
            "diag": self.diag.state() if self.diag is not None else self.diag_state,
            "rng": {
                "torch": torch.get_rng_state(),
                "shuffle": self.gen.get_state(),
                "masks": None if self.masks is None else self.masks.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
        }


def _own(state: Any) -> Any:
    """`state` with each tensor that is a view of a larger one (a stacked member's rows) copied out: saved as a
    view, a member's checkpoint would hold every member's weights."""
    if isinstance(state, dict):
        return {k: _own(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_own(v) for v in state]
    if isinstance(state, torch.Tensor) and state.untyped_storage().nbytes() > state.nelement() * state.element_size():
        return state.clone()
    return state


def _setup(
    cfg: Config, data: Prepared, device: torch.device, group: Any = None, stacked: bool = False
) -> tuple[Parts, int, str]:
    """The run's parts, thread count and the step's note. `stacked`: another engine steps the model (stacked_runs.py),
    so the parts are built without the written-out step's flat tensors."""
    if group and any(layer.batch_norm for layer in cfg.model.resolved_layers()):
        raise UserError(
            "model.batch_norm with several processes: each rank would normalise by its own shard's "
            "statistics; train batch-norm models in one process"
        )
    fusable, why = plan(cfg, data.task, embedded=bool(embeds_of(data.prep)))
    if cfg.train.engine == "fused" and not fusable:
        raise UserError(f"train.engine=fused: this model needs autograd ({why}); use engine: auto")
    fused = fusable and cfg.train.engine != "autograd" and not cfg.train.compile
    k = cfg.model.ensemble
    if k > 1 and (group or cfg.train.compile):
        raise UserError(
            f"model.ensemble={k}: its members train stacked in one process, without --nproc or train.compile"
        )
    n_in, n_out, bs = data.X.shape[1], n_outputs(cfg, data.task, data.n_outputs), cfg.train.batch_rows(len(data.train))
    check_fits(cfg, n_in, n_out, bs, len(data.X), device, numerics_of(data.prep))  # before any weight exists
    weighted = data.loss_weights is not None
    parts = build_parts(cfg, n_in, n_out, data.prep, device, fused and not stacked and k == 1, weighted, stacked)
    if stacked:  # the stacked engine chooses the group's threads (stacked_runs.Engine): no probe per member
        threads = cfg.train.threads or torch.get_num_threads()
    else:
        threads = cfg.train.threads or auto_threads(
            sum(p.numel() for p in parts.model.parameters()) * bs, group.local_world if group else 1
        )
        torch.set_num_threads(threads)
    note = (
        f"{k} members stacked, {'fused step' if fused else 'autograd under vmap'}"
        if k > 1
        else "fused step (forward and backward written out)"
        if fused
        else "autograd step under torch.compile (train.compile: true)"
        if cfg.train.compile
        else f"autograd step ({'train.engine: autograd' if fusable else why})"
    )
    return parts, threads, note


def configure(path: Path, overrides: list[str] = (), name: str | None = None) -> Config:
    """load_config; when the file has problems, add those that only the data reveals (bce on four classes),
    so one message holds them all."""
    try:
        return load_config(path, overrides, name=name)
    except ConfigError as e:
        if e.partial is not None:
            try:
                load_data(e.partial, path.parent)
            except UserError as more:
                e.add_data_problems(more.problems)
        raise e from None


def start(cfg: Config, config_dir: Path | None = None, stacked: bool = False, data: Prepared | None = None) -> Run:
    """A new run: data read and checked first, so a problem leaves no run folder behind. In a data-parallel
    group every rank reads the data; rank 0 makes the run folder and tells the others its name. `stacked`: the
    run is to be trained with others on the stacked engine (stacked_runs.py); `data`: prepared by the caller (a
    cross-validation fold's)."""
    if cfg.train.bag == "auto":  # a bag is fit's choice (tools/bagging.py); elsewhere auto is one model
        cfg.train.bag = 1
    if cfg.train.bag > 1:  # a bag is fit's (tools/bagging.py); --seeds, sweeps, cv and --nproc train one model
        cfg._notes.append(f"train.bag={cfg.train.bag} left out: this trains one model (`nntrain fit` trains bags)")
        cfg.train.bag = 0
    group = _group(cfg)
    device = group.device if group else select_device(cfg.device)
    data, keep = (data, lambda: None) if data is not None else cached_data(cfg, config_dir)
    fix_auto(cfg, len(data.train))
    if getattr(cfg.model.numeric_embedding, "name", None) == "piecewise_linear":
        fit_edges(data.X, data.train, data.prep)
    parts, threads, note = _setup(cfg, data, device, group, stacked)
    writes = not group or group.writes
    made = create_run_dir(cfg.runs_dir, cfg.name) if writes else None
    with _released_on_error(None, remove=made):
        lock = RunLock(made) if writes else None
    with _released_on_error(lock, remove=made):
        run_dir, run_id = made, uuid.uuid4().hex if writes else None
        if group:
            run_dir, run_id = Path(group.broadcast(str(made) if made else None)), group.broadcast(run_id)
        SIGNALS.armed = True  # from here a signal is saved as a resumable stop
        gen = torch.Generator().manual_seed(cfg.seed)
        run = Run(cfg, run_dir, data, parts, device, threads, note, gen, group=group, lock=lock, run_id=run_id)
        if writes:
            write_text(run_dir / "config.yaml", recorded(cfg, config_dir))
            split = {k: getattr(data, k).tolist() for k in ("train", "val", "test")}
            how = {"how": data.prep.get("split"), "files": data.prep.get("files", [])}
            write_json(run_dir / "split.json", {"run_id": run_id, **how, **split})
            atomic_save(run.state(), run_dir / "last.pt")  # epoch 0: a run stopped in its first epoch can resume
            keep()  # the prepared data, for the next fit of the same file
    return run


def rebuild_alone(run: Run) -> Run:
    """A run started or resumed `stacked` that trains alone after all: its parts built again for the lone engine,
    and its last.pt's states and RNGs restored into them (other runs' set-up moved the global RNG since)."""
    run.parts, run.threads, run.path_note = _setup(run.cfg, run.data, run.device, run.group)
    ckpt, _ = load_run_checkpoint(run.run_dir, run.checkpoint)
    run.gen = _restored(run.parts, ckpt, run.device, run.run_dir / f"{run.checkpoint}.pt")
    follow_schedule(run.parts.scheduler, run.cfg)
    return run


@contextlib.contextmanager
def _released_on_error(lock: RunLock | None, remove: Path | None = None) -> Iterator[None]:
    """On an error: the lock released, and `remove` (a run folder made a moment ago, half-written) deleted."""
    try:
        yield
    except BaseException:
        if lock is not None:
            lock.release()
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)
        raise


def _group(cfg: Config) -> Any:
    from nntrain.engine.distributed import Group, launched

    return Group(cfg.device) if launched() else None


def resume(run_dir: Path, overrides: list[str] = (), stacked: bool = False, checkpoint: str = "last") -> Run:
    """Continue from last.pt with only the run folder: config, data rows, states and RNGs as they were.
    `stacked`: to be trained with others on the stacked engine (stacked_runs.py); `checkpoint`: "last.prev"
    for a member a save ahead of the others (run_groups.resume_many), or when a kill left no last.pt."""
    from nntrain.engine.distributed import rank

    run_dir = resolve_run_dir(str(run_dir))
    lock = RunLock(run_dir) if rank() == 0 else None  # before anything is read: another process may be writing
    with _released_on_error(lock):
        return _resumed(run_dir, overrides, lock, stacked, checkpoint)


def _refuse_failed(run_dir: Path) -> None:
    """A run that failed on a bad value (a streamed run's, met after an epoch had finished): a resume would meet
    it again, and the file that must change to mend it is refused once changed."""
    try:
        summary = read_summary(run_dir)
    except (OSError, ValueError):
        return  # an unreadable summary.json is no reason to refuse: the checkpoint is what a resume reads
    if summary.get("status") == "failed":
        epoch, why = summary.get("epochs_run"), " ".join(str(summary.get("stopped") or "").split())[:300]
        at = f" at epoch {epoch + 1}" if isinstance(epoch, int) else ""
        raise UserError(
            f"{run_dir}: cannot be resumed: it failed{at} on a data error ({why}); correct the value and fit again"
        )


def _resumed(
    run_dir: Path, overrides: list[str], lock: RunLock | None, stacked: bool = False, checkpoint: str = "last"
) -> Run:
    if lock is not None:
        clean_leftovers(run_dir)
    _refuse_failed(run_dir)
    SIGNALS.armed = True
    if not (run_dir / "last.pt").is_file() and (run_dir / PREVIOUS).is_file():  # killed between the two renames
        checkpoint = PREVIOUS.removesuffix(".pt")
    path = run_dir / f"{checkpoint}.pt"
    ckpt, split = load_run_checkpoint(run_dir, checkpoint)
    ckpt = found_again(ckpt, run_dir)
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"{path}: cannot resume from it: it lacks {', '.join(missing)}; use --checkpoint best to eval")
    cfg = config_going_on(ckpt, overrides, run_dir)
    check_weights(cfg.model, ckpt, path)
    group = _group(cfg)
    device = group.device if group else select_device(cfg.device)
    data = _resumed_data(ckpt["prep"], split, run_dir, group)
    parts, threads, note = _setup(cfg, data, device, group, stacked)
    gen = _restored(parts, ckpt, device, path)
    follow_schedule(parts.scheduler, cfg)
    kept = {k: ckpt[k] for k in ("epoch", "step", "epoch_gen_state", "step_losses", "best_value", "best_epoch")}
    run = Run(
        cfg,
        run_dir,
        data,
        parts,
        device,
        threads,
        note,
        gen,
        group=group,
        bad_epochs=ckpt["bad_epochs"],
        diag_state=ckpt.get("diag"),
        lock=lock,
        run_id=ckpt.get("run_id"),
        checkpoint=path.stem,
        masks=_masks(ckpt),
        **kept,
    )
    if lock is not None and not (run.ended and not run.step):  # nothing to train: the folder stays as it is
        truncate_metrics(run_dir / "metrics.csv", ckpt["epoch"])
        rewrite_config(run_dir / "config.yaml", cfg)
    return run


def _resumed_data(prep: dict, split: dict, run_dir: Path, group: Any = None) -> Prepared:
    """The run's data as it started: its table read again, split as split.json says; a streamed run's evaluated
    rows (its training rows stream, stream_epoch.py), each rank reading its own row groups."""
    if "stream" in prep:
        return resumed_data(prep, Share.of(group))
    rows = (np.asarray(r, dtype=np.int64) for r in split_rows(split, run_dir, "train", "val", "test"))
    e = load_encoded(prep)
    return Prepared(e.X, e.y, *rows, prep, "as when the run started", loss_weights=e.loss_weights, weights=e.weights)


# What a resume reads besides what every reader does (runs.load_checkpoint checks those).
RESUME_KEYS = (
    "step",
    "optimizer",
    "scheduler",
    "rng",
    "best_value",
    "best_epoch",
    "bad_epochs",
    "epoch_gen_state",
    "step_losses",
)


def _masks(ckpt: dict) -> torch.Generator | None:
    """A stacked member's mask generator as its checkpoint left it (None: it has not trained stacked)."""
    state = ckpt["rng"].get("masks")
    if state is None:
        return None
    gen = torch.Generator()
    gen.set_state(state)
    return gen


def _restored(parts: Parts, ckpt: dict, device: torch.device, path: Path) -> torch.Generator:
    """The model, optimizer, scheduler and RNGs as the checkpoint left them; the shuffle generator."""
    load_weights(parts.model, ckpt, path)
    try:
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        if parts.scheduler is not None:
            parts.scheduler.load_state_dict(ckpt["scheduler"])  # restored, never stepped again (Lightning #4655)
        gen = torch.Generator()
        gen.set_state(ckpt["rng"]["shuffle"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: its optimizer, scheduler or RNG states are damaged ({in_one_line(e)})") from None
    return gen
