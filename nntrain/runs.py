"""Run folders: creation without races, atomic checkpoint save, safe load, metrics.csv and summary.json."""

from __future__ import annotations

import copy
import csv
import functools
import os
import pickle
import platform
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import UserError, first_line
from .plain import strict_json

CHECKPOINT_FORMAT = 1
# How a run ended, summary.json's "status": all its epochs; early stopping; a sweep's pruner; a non-finite loss
# or weight; a signal (resumable with fit --resume).
STATUSES = ("completed", "early_stop", "pruned", "diverged", "interrupted")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """What reproduces a run; read from package metadata, so nothing is imported for it."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        **{name: version(name) for name in ("nntrain", "torch", "numpy", "pandas", "scikit-learn")},
    }


def create_run_dir(root: str | Path, name: str) -> Path:
    """runs/NAME, else NAME-2, NAME-3, ...: os.mkdir fails when the folder exists, so two runs never share one."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"runs_dir={root}: cannot create it: {e.strerror}") from None
    if not os.access(root, os.W_OK):
        raise UserError(f"runs_dir={root}: not writable")
    for k in range(1, 100_000):
        path = root / (name if k == 1 else f"{name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"runs_dir={root}: cannot create a run folder: {e.strerror}") from None
    raise UserError(f"runs_dir={root}: too many runs named {name}")


def write_atomic(path: Path, write: Callable[[BinaryIO], Any], durable: bool = False) -> None:
    """write(f) into NAME.tmp-PID beside the target, then rename it over the target: a reader, or a kill -9,
    sees the old file or the new one, never half of one. durable: fsync the file and the folder too."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through write_atomic, durably. SIGINT and SIGTERM wait until the save is done, so a second
    Ctrl-C cannot cut it; a kill -9 leaves at most a .tmp- file that the next start removes."""
    import torch

    blocked = _block_signals()
    try:
        write_atomic(path, lambda f: torch.save(obj, f), durable=True)
    except (OSError, RuntimeError) as e:
        reason = getattr(e, "strerror", None) or first_line(e)
        raise UserError(f"cannot write {path}: {reason}; the earlier checkpoints in {path.parent} are intact") from None
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _block_signals() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    return True


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Temporary files of a save that a kill interrupted."""
    leftovers = [p for p in run_dir.iterdir() if ".tmp-" in p.name or p.name.endswith(".tmp")]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return leftovers


def truncate_metrics(path: Path, epoch: int) -> None:
    """Drop rows past the checkpoint's epoch: their checkpoint was never written. Cut in place, not rewritten."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        header = f.readline()
        if not header:
            return
        keep = f.tell()
        for line in iter(f.readline, b""):
            if not line.strip() or int(line.split(b",", 1)[0]) > epoch:
                break
            keep = f.tell()
        f.truncate(keep)


def load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True; a corrupt or unsafe file is a UserError, never a traceback."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    import torch

    if path.stat().st_size == 0:
        raise UserError(f"{path}: checkpoint is empty (corrupt); use the other checkpoint or retrain")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(
            f"{path}: refused to load: the file holds objects that would run code when unpickled "
            f"({first_line(e, 200)}). Only load checkpoints you trust."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: checkpoint is corrupt or truncated ({first_line(e, 200)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an nntrain checkpoint")
    return ckpt


def resolve_run_dir(run_dir: str | None, runs_root: str = "runs") -> Path:
    """The given run folder, or the newest one under runs/."""
    if run_dir is not None:
        path = Path(run_dir)
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        if not (path / "config.yaml").is_file():
            raise UserError(f"{path}: not a run folder (no config.yaml)")
        return path
    root = Path(runs_root)
    runs = [p for p in root.glob("*/") if (p / "best.pt").is_file()] if root.is_dir() else []
    if not runs:
        raise UserError(f"no runs found under {root}/; give a run folder, e.g. nntrain eval runs/phone")
    return max(runs, key=lambda p: (p / "config.yaml").stat().st_mtime)


class MetricsLog:
    """metrics.csv, one row per epoch; the header is fixed by the first row, or by the file when resuming."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with open(path, newline="") as f:
                self.fields = next(csv.reader(f))

    def append(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            # extrasaction: a resume that turns train.diagnostics on keeps the header the run started with
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def output_file(out: Path) -> Path:
    """A file the user named with -o: its folder must exist (nothing is made on a typo's behalf)."""
    if not out.parent.is_dir():
        raise UserError(f"-o {out}: folder {out.parent} does not exist")
    return out


def write_output(path: Path, write: Callable[[BinaryIO], Any], shown: str, durable: bool = False) -> None:
    """write_atomic for a file the user asked for; a disk or permission error names `shown` and is a UserError."""
    try:
        write_atomic(path, write, durable)
    except OSError as e:
        raise UserError(f"{shown}: cannot write it: {e.strerror}") from None


def json_bytes(obj: Any) -> bytes:
    """What write_json writes: strict, indented JSON and a newline."""
    return (strict_json(obj, indent=2) + "\n").encode()


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: f.write(json_bytes(obj)))


class Saver:
    """Writes best.pt and last.pt at most every train.checkpoint_every seconds, and always at the end, on a
    signal and on early stop. A small model's epoch takes milliseconds and a save about 2.5 ms: saving every
    epoch would add a quarter to the time. A kill -9 then loses at most that many seconds of training;
    resume reruns them to the same result."""

    def __init__(self, run: Any):
        self.run = run
        self.last = time.monotonic()
        self.best: dict | None = None  # a copy of the state at the newest best epoch, not yet on disk
        self.last_epoch = run.epoch  # the epoch last.pt holds

    def best_changed(self) -> None:
        if self.run.writes:
            self.best = copy.deepcopy(self.run.state())

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.run.cfg.train.checkpoint_every

    def save_best(self) -> None:
        if self.best is not None and self.run.writes:
            atomic_save(self.best, self.run.run_dir / "best.pt")
            self.best = None

    def save(self) -> None:
        self.save_best()  # best first: last.pt never names a best epoch that best.pt does not hold
        if self.run.writes:  # in a data-parallel group, rank 0 alone
            atomic_save(self.run.state(), self.run.run_dir / "last.pt")
        self.last, self.last_epoch = time.monotonic(), self.run.epoch
