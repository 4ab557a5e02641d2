"""How `fit` shows its epochs (plain lines for a pipe, a log file or --quiet; a live rich progress bar on a
terminal) and how a metrics report reads. Display only: nothing here decides when a run stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nntrain import metrics as M


class Lines:
    """One line per epoch; with quiet, none (the run's header, warnings and result still print)."""

    def __init__(self, log: Callable[[str], None], quiet: bool = False):
        self.log, self.quiet = log, quiet

    def begin(self, epochs: int, done: int, steps: int, monitor: str = "val_loss") -> None:
        pass

    def step(self, s: int) -> None:
        pass

    def epoch(self, epoch: int, line: str, row: dict[str, Any]) -> None:
        """Show the finished epoch."""
        if not self.quiet:
            self.log(line)

    def end(self) -> None:
        pass


class Bar(Lines):
    """A bar over epochs with the current loss, validation metric and learning rate; a second bar over
    batches appears when an epoch takes more than a second. Epoch lines print above the bars."""

    def __init__(self, console: Any):
        super().__init__(lambda m: console.print(m, markup=False))
        self.console, self.monitor = console, "val_loss"
        self.progress: Any = None

    def begin(self, epochs: int, done: int, steps: int, monitor: str = "val_loss") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.steps, self.monitor = steps, monitor
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.epochs = self.progress.add_task("epoch", total=epochs, completed=done, info="")
        self.batches = self.progress.add_task("batch", total=steps, visible=False, info="")
        self.t0 = time.perf_counter()

    def step(self, s: int) -> None:
        if time.perf_counter() - self.t0 > 1.0:
            self.progress.update(self.batches, completed=s, visible=True)

    def epoch(self, epoch: int, line: str, row: dict[str, Any]) -> None:
        self.log(line)
        shown = row.get(self.monitor, row.get("val_loss"))
        info = f"loss {row['train_loss']:.4f}  {self.monitor} {shown:.4f}  lr {row['lr']:.3g}"
        self.progress.update(self.epochs, completed=epoch, info=info)
        self.progress.update(self.batches, completed=0)
        self.t0 = time.perf_counter()

    def end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def format_metrics(values: dict[str, float], base: dict[str, float]) -> str:
    """One metric a line, with the trivial baseline beside it where there is one; then a warning where the model
    does no better than that baseline."""
    lines = [
        f"  {k:<17} {M.shown(v)}" + (f"   (baseline {M.shown(base[k])})" if k in base else "")
        for k, v in values.items()
    ]
    return "\n".join(lines + [w for w in [M.no_better(values, base)] if w])
