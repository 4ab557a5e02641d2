"""How a training run stops early: a signal (Ctrl-C, SIGTERM), a divergence, or a bad value a streamed run meets
mid-fit. Each is a Stop: the CLI prints its message and exits with its code."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nntrain.errors import Stop, UserError


class Diverged(Stop):
    """The loss or the weights went non-finite; the CLI exits 3."""

    exit_code = 3
    status = "diverged"  # summary.json's status (folders.STATUSES)


class DataFailed(UserError):
    """A bad value a streamed run met mid-fit (one the sample did not draw): the CLI exits 2, as for any bad
    data. A resume cannot get past it: the file must change, and a changed file is refused."""

    # summary.json's status (folders.STATUSES), and then --json's, where the folder is kept (an epoch had finished)
    kept = "failed"
    then = ""  # what became of the run folder (loop.train), on a line of its own

    def __str__(self) -> str:
        return super().__str__() + (f"\n{self.then}" if self.then else "")


class RanksDiverged(Stop):
    """Data-parallel ranks ended with different weights: a bug or a non-deterministic kernel, never a user error."""


class Interrupted(Stop):
    """SIGINT or SIGTERM arrived; last.pt holds the state at the step where training stopped."""

    prefix = "interrupted"
    status = "interrupted"

    def __init__(
        self, signum: int, run_dir: Path | None = None, epoch: int = 0, step: int = 0, together: list[Path] = ()
    ):
        """together: the run folders trained with run_dir on the stacked engine (each saved its last.pt); resumed
        together, they go on exactly as they would have."""
        self.exit_code = 128 + signum
        self.signum, self.run_dir, self.epoch, self.step = signum, run_dir, epoch, step
        self.together = list(together)
        name = signal.Signals(signum).name
        saved = f"last.pt saved in {len(together)} run folders" if together else "last.pt saved"
        self.said = f"{name} at epoch {epoch + 1}, step {step}; {saved}"
        folders = " ".join(f"--resume {d}" for d in together or [run_dir])
        super().__init__(
            f"{self.said}. Resume with: nntrain fit {folders}"
            if run_dir
            else f"{name} before a run folder was made; nothing to resume"
        )

    def also(self, waiting: list[Path]) -> Interrupted:
        """The same stop, whose resume command also names runs that were still waiting their turn (other groups
        of runs started together): resumed with the others, they train from their first epoch."""
        if self.run_dir is not None and waiting:
            folders = " ".join(f"--resume {d}" for d in [*(self.together or [self.run_dir]), *waiting])
            self.said += f"; {len(waiting)} run(s) not yet trained"
            self.args = (f"{self.said}. Resume with: nntrain fit {folders}",)
        return self

    def resume_with(self, command: str) -> Interrupted:
        """The same stop, finished by another command (a cross-validation's `nntrain cv --resume`)."""
        if self.run_dir is not None:
            self.args = (f"{self.said}. Resume with: {command}",)
        return self


class Signals:
    """SIGINT and SIGTERM while a run folder exists set a flag that the loop reads between steps (the first
    signal wins; a save in progress is never cut). Before the run folder exists there is nothing to save,
    so they stop at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    def handler(self, signum: int, frame: Any) -> None:
        if not self.armed:
            raise Interrupted(signum)
        if self.signum is None:
            self.signum = signum


SIGNALS = Signals()


@contextmanager
def catching_signals(then_ignore: bool = False):
    """SIGNALS' handler inside; afterwards the old handlers, or (then_ignore, for a command about to exit)
    none: a Ctrl-C after the run has finished has nothing left to stop, and must not kill the exit."""
    SIGNALS.signum, SIGNALS.armed = None, False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, SIGNALS.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_IGN if then_ignore else h)
        SIGNALS.signum, SIGNALS.armed = None, False
