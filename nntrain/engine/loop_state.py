"""What every epoch of a run uses, prepared once per fit (Loop: the data on the device, the batches, the step,
the saver, where results go), the header fit prints, and how a run is told to stop after an epoch (Halt)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nntrain import metrics as M
from nntrain.config.components import record
from nntrain.config.recipe import described
from nntrain.config.schema import Config, loss_args, loss_name
from nntrain.engine.diagnostics import Diagnostics
from nntrain.engine.progress import Lines
from nntrain.engine.state import Run
from nntrain.engine.steps import make_step
from nntrain.engine.stopping import SIGNALS
from nntrain.engine.stream_epoch import streamed
from nntrain.errors import UserError
from nntrain.model.heads import Rows
from nntrain.model.mlp import param_table
from nntrain.runs.checkpoints import Saver
from nntrain.runs.metrics_log import MetricsLog

CHECK_EVERY = 64  # steps between the loop's host syncs: the divergence check, a data-parallel signal check


@dataclass(frozen=True)
class Halt:
    """Why a run ends before train.epochs: what a should_stop hook returns (a sweep's pruner), or early stop."""

    status: str  # one of folders.STATUSES
    reason: str  # in words, for the log and summary.json's "stopped"


ShouldStop = Callable[[int, dict], "Halt | None"]  # (epoch, metrics row) -> stop after this epoch, or not


def tensorboard_writer() -> Any:
    """TensorBoard's SummaryWriter class, or a UserError when the package is missing: asked before a run folder
    is made, so that a missing package leaves none behind."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError('--tensorboard needs the tensorboard package: pip install -e ".[tensorboard]"') from None
    return SummaryWriter


def run_tensorboard(run: Run) -> Any:
    """The run's TensorBoard writer, under RUN/tensorboard."""
    SummaryWriter = tensorboard_writer()  # noqa: N806
    # purge_step drops events of epochs a resume runs again, so curves never double back
    return SummaryWriter(str(run.run_dir / "tensorboard"), purge_step=run.epoch + 1 if run.epoch else None)


@dataclass
class Loop:
    """What every epoch of a run uses: the data on the device, the batches, the step, where results go."""

    X: torch.Tensor
    y: torch.Tensor
    train_rows: torch.Tensor  # batches index X through these: no copy of the training rows
    loss_weights: torch.Tensor | None  # each row's weight in the loss; None: all the same
    val: Rows
    batch: int
    steps: int
    sizes: torch.Tensor  # rows in each step's batch
    rows: int  # their sum: the rows an epoch trains on
    monitor: str
    step: Callable[[torch.Tensor], torch.Tensor]  # a batch's row indices -> its loss, the update done
    interrupted: Callable[[int], bool]  # asked before each step
    saver: Saver
    metrics_log: MetricsLog | None
    log: Callable[[str], None]
    progress: Lines
    tb: Any
    should_stop: ShouldStop | None
    val_out: torch.Tensor | None = None  # this epoch's validation outputs, when another engine worked them out
    step_scheduler: Any = None  # a schedule stepped after every step (onecycle), else None
    epoch: Callable[[Run, Any], float] | None = None  # a streamed run's epoch (stream_epoch.py); None: loop.py's


def prepare_loop(
    run: Run,
    log: Callable[[str], None],
    progress: Lines,
    tb: Any,
    should_stop: ShouldStop | None,
    step: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Loop:
    """`step`: given when another engine steps this run (stacked_runs.py's stacked members); else make_step's."""
    data, device = run.data, run.device
    X, y = torch.as_tensor(data.X, device=device), torch.as_tensor(data.y, device=device)
    lw = None if data.loss_weights is None else torch.as_tensor(data.loss_weights, device=device).float()
    n, bs = len(data.train), run.batch_size
    has_bn = any(layer.norm is not None for layer in run.parts.model.hidden)
    steps = math.ceil(n / bs) - (has_bn and n % bs == 1) if n else 0  # batch norm cannot normalise a batch of one row
    sizes = [min(bs, n - s * bs) for s in range(steps)]
    loop = Loop(
        X,
        y,
        torch.as_tensor(data.train, device=device),
        lw,
        Rows.take(X, y, lw, data.weights, data.val),
        bs,
        steps,
        torch.tensor(sizes, device=device, dtype=torch.float32),
        sum(sizes),
        M.monitor_name(run.cfg.train.monitor),
        step or make_step(run, X, y, lw),
        _interrupt_check(run.group),
        Saver(run),
        MetricsLog(run.run_dir / "metrics.csv") if run.writes else None,
        log,
        progress,
        tb,
        should_stop,
    )
    loop.step_scheduler = run.parts.scheduler if pace(run.cfg) == "step" else None
    return streamed(run, loop) if "stream" in data.prep else loop


def header(run: Run, loop: Loop, together: list[Run] | None = None) -> list[str]:
    """What a fit prints before its first epoch; `together`: the runs trained with `run` (a bag's members, whose
    folds differ in size by a row), whose row counts the rows line spans."""
    cfg, data, model = run.cfg, run.data, run.parts.model
    table = param_table(model)
    resumed = f" (resumed after epoch {run.epoch}, step {run.step})" if run.epoch or run.step else ""
    threads = f", {run.threads} thread(s)" if run.device.type == "cpu" else ""
    first = model.hidden[0].linear if model.hidden else model.out
    k = getattr(model, "n_shared", 1)  # model.shared_members: their output layers are one
    sizes = [first.in_features, *(layer.linear.out_features for layer in model.hidden), model.out.out_features // k]
    recipe = described(cfg)
    train = loop.rows if "stream" in data.prep else len(data.train)
    return [
        *(note if note.startswith("warning: ") else f"note: {note}" for note in [*cfg._notes, *data.notes]),
        f"run folder: {run.run_dir}{resumed}",
        *([recipe] if recipe else []),
        f"task: {data.task} ({data.task_reason}); loss {_loss(cfg, data.task)}; device {run.device}{threads}",
        f"rows: train {train}, {_sizes(together or [run])}; {_columns(data)}",
        f"{train} samples / batch {loop.batch} -> {loop.steps} iterations per epoch; {run.path_note}",
        f"model: {' -> '.join(map(str, sizes))}{_shared(k)}, {table['total']:,} parameters "
        f"({table['trainable']:,} trainable)" + _inputs(model, sizes[0]),
    ]


def _sizes(runs: list[Run]) -> str:
    """'val 25-26, test 32': each split's size over `runs`, a span where they differ."""
    from nntrain.runs.listing import span

    return ", ".join(f"{part} {span([len(getattr(r.data, part)) for r in runs])}" for part in ("val", "test"))


def _shared(k: int) -> str:
    if k == 1:
        return ""
    return f" x {k} members sharing the hidden layers (each its own input scaling and output layer)"


def _columns(data: Any) -> str:
    """How many columns the model reads, and from how many of the table's."""
    n, given = data.X.shape[1], len(data.prep.get("columns", [])) or data.X.shape[1]
    more = " (one-hot levels, date parts and 'was missing' indicators add columns)" if n > given else ""
    return f"{n} input columns from {given} of the table's{more}"


def _inputs(model: Any, width: int) -> str:
    """What the first layer's inputs are, where embeddings widen the input columns."""
    if not (hasattr(model, "num_embed") or hasattr(model, "embed")):
        return ""
    parts, rest = [], width
    if hasattr(model, "num_embed"):
        m, size = model.num_embed.weight.shape[0], model.num_embed.weight.shape[2]
        parts.append(f"{m} number(s) x {size} (their {'periodic' if model.num_embed.periodic else 'binned'} embedding)")
        rest -= m * size
    if hasattr(model, "embed"):
        dims = [t.embedding_dim for t in model.embed.tables]
        parts.append(f"{len(dims)} level-code column(s) -> {sum(dims)} (their embeddings)")
        rest -= sum(dims)
    if rest > 0:
        parts.append(f"{rest} other column(s) as they are")
    return f"; its {width} inputs: " + ", ".join(parts)


def start_diagnostics(run: Run, loop: Loop) -> None:
    """run.diag when train.diagnostics asks for it, with the sums of an epoch a checkpoint cut in the middle."""
    run.diag = Diagnostics(run.parts.model, loop.steps, loop.val.X) if run.cfg.train.diagnostics else None
    if run.diag is not None and run.step and run.diag_state:
        run.diag.load_state(run.diag_state)


def pace(cfg: Config) -> str:
    """When the config's schedule is stepped: "epoch", "step" or "value" (its record's `pace`)."""
    return record("scheduler", cfg.scheduler["name"]).pace


def _interrupt_check(group: Any) -> Callable[[int], bool]:
    """Asked before each step. In a group every rank must stop at the same step, so the ranks agree on it every
    CHECK_EVERY steps."""
    if group is None:
        return lambda s: SIGNALS.signum is not None
    return lambda s: s % CHECK_EVERY == 0 and group.any(SIGNALS.signum is not None)


def _loss(cfg: Config, task: str) -> str:
    """The loss as built: `cross_entropy (label_smoothing 0.1)`."""
    args = ", ".join(f"{k} {v}" for k, v in loss_args(cfg, task).items())
    return f"{loss_name(cfg, task)} ({args})" if args else loss_name(cfg, task)
