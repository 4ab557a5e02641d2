"""Run folders: creation without races, atomic checkpoint save, safe load, metrics.csv and summary.json."""

from __future__ import annotations

import csv
import fcntl
import functools
import io
import json
import os
import pickle
import platform
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from nntrain.errors import UserError, first_line, quoted
from nntrain.plaindata import strict_json

CHECKPOINT_FORMAT = 1
LOCK_FILE = ".lock"  # held (flock) by the one process that writes a run folder
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
        if isinstance(e, RuntimeError) and _free_bytes(path.parent) < 2**20:
            reason = f"No space left on device (torch: {first_line(e, 80)})"  # torch's words for a full disk
        kept = [p.name for p in (path.parent / "best.pt", path.parent / "last.pt") if p.is_file()]
        said = f"the earlier checkpoints in {path.parent} are intact ({', '.join(kept)})" if kept else "none was saved"
        raise UserError(f"cannot write {path}: {reason}; {said}") from None
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
    """Temporary files of a save that a kill interrupted: NAME.tmp-PID whose process is gone (a live PID's file
    is a save in progress, never touched), and plain NAME.tmp."""
    leftovers = [
        p
        for p in run_dir.iterdir()
        if (".tmp-" in p.name and not _alive(p.name.rsplit(".tmp-", 1)[1])) or p.name.endswith(".tmp")
    ]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return leftovers


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RunLock:
    """An exclusive flock on RUN/.lock, held by the one process that writes a run folder (fit, resume, a sweep
    trial) for as long as it does. The kernel drops it when the process dies, so a kill -9 leaves no stale
    lock; the file holds the holder's PID for the message a second writer gets. Within one process the lock
    is shared: it is a second process that must not write the folder."""

    _held: dict[Path, list] = {}  # resolved folder -> [fd, count], for this process

    def __init__(self, run_dir: Path):
        self.key, self.holding = Path(run_dir).resolve(), True
        if self.key in RunLock._held:
            RunLock._held[self.key][1] += 1
            return

        def busy(holder: str) -> None:
            raise UserError(
                f"{run_dir} is being written by process {holder} (a fit, a resume or a sweep trial); "
                f"wait for it to end, or stop it, and try again"
            )

        RunLock._held[self.key] = [pid_lock(self.key / LOCK_FILE, busy), 1]

    def release(self) -> None:
        held = RunLock._held.get(self.key)
        if held is None or not self.holding:
            return
        self.holding = False
        held[1] -= 1
        if held[1] == 0:
            del RunLock._held[self.key]
            os.close(held[0])  # closing the descriptor drops the flock


def pid_lock(path: Path, busy: Callable[[str], None]) -> int:
    """An exclusive flock on `path` (never through a link), with this process's PID written in it; its descriptor,
    whose closing drops the lock. When another process holds it, busy(its PID) is called: it raises to give up,
    or returns to wait for the lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise UserError(f"{path}: cannot open this lock file: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy(os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise UserError(f"{path}: cannot lock it: {e.strerror}") from None
        raise
    return fd


def _in_place(path: Path) -> Path:
    """A run file written in place (metrics.csv): never through a link, which would write the file it names."""
    if path.is_symlink():
        raise UserError(
            f"{path}: is a symbolic link (to {os.readlink(path)}); nntrain writes it in place and never "
            f"through a link: put the file itself there, then resume"
        )
    return path


def truncate_metrics(path: Path, epoch: int) -> None:
    """Drop rows past the checkpoint's epoch: their checkpoint was never written. Cut in place, not rewritten."""
    if not _in_place(path).is_file():
        return
    with open(path, "rb+") as f:
        header = f.readline()
        if not header:
            return
        keep = f.tell()
        for number, line in enumerate(iter(f.readline, b""), start=2):
            first = line.split(b",", 1)[0].strip()
            if not line.strip():
                break
            if not first.isdigit():
                shown = quoted(first.decode(errors="replace"), 20)
                raise UserError(
                    f"{path}: line {number} does not start with an epoch number ({shown}), so "
                    f"it is not a row nntrain wrote; remove or fix that line, then resume"
                )
            if int(first) > epoch:
                break
            keep = f.tell()
        f.truncate(keep)


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 2**63


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
    wrong = _malformed(ckpt)
    if wrong is not None:
        raise UserError(f"{path}: not a whole nntrain checkpoint: {wrong}; use the other checkpoint or retrain")
    return ckpt


# What every reader (eval, predict, params, export, resume) takes from a checkpoint, checked before any of it is
# used; what resume alone reads is session.RESUME_KEYS.
CHECKPOINT_TYPES = {
    "config": dict,
    "prep": dict,
    "n_inputs": int,
    "n_outputs": int,
    "task": str,
    "epoch": int,
    "model": dict,
}
PREP_KEYS = (
    "target",
    "task",
    "classes",
    "columns",
    "kinds",
    "categories",
    "impute",
    "shift",
    "scale",
    "encoded",
    "source",
    "sha256",
)


def _malformed(ckpt: dict) -> str | None:
    """What is missing or inconsistent in a checkpoint that torch loaded, in words; None when it is whole."""
    for key, kind in CHECKPOINT_TYPES.items():
        if not isinstance(ckpt.get(key), kind) or isinstance(ckpt.get(key), bool):
            return f"'{key}' is missing or not a {kind.__name__}"
    prep = ckpt["prep"]
    missing = [k for k in PREP_KEYS if k not in prep]
    if missing:
        return f"its preprocessing lacks {', '.join(missing)}"
    if not isinstance(prep["encoded"], list) or ckpt["n_inputs"] != len(prep["encoded"]):
        return f"n_inputs is {ckpt['n_inputs']:,}, which its preprocessing's columns do not make"
    outputs = (1,) if prep["task"] == "regression" else (1, len(prep["classes"] or ()))
    if ckpt["task"] != prep["task"] or ckpt["n_outputs"] not in outputs:
        return "its task and number of outputs disagree with its preprocessing"
    return None


def load_run_checkpoint(run_dir: Path, name: str) -> tuple[dict, dict]:
    """(RUN/NAME.pt, RUN/split.json), the checkpoint refused when it is another run's: the run id it holds must
    be the one in split.json. The split is read once, for the caller too (a 1M-row split takes 0.2 s)."""
    path = run_dir / f"{name}.pt"
    ckpt = load_checkpoint(path)
    split_path = run_dir / "split.json"
    try:
        split = json.loads(split_path.read_text()) if split_path.is_file() else {}
        mine = split.get("run_id")
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{split_path}: cannot read it: {first_line(e)}") from None
    theirs = ckpt.get("run_id")
    if (mine or theirs) and mine != theirs:
        raise UserError(
            f"{path}: is the checkpoint of another run ({theirs or 'one without an id'}), not of this folder's "
            f"({mine or 'one without an id'}); put this run's own {name}.pt back, or use the other run's "
            f"folder"
        )
    return ckpt, split


def split_rows(split: dict, run_dir: Path, *parts: str) -> list[list[int]]:
    """The row indices of the named splits from a run's split.json, or a UserError when it lacks them."""
    missing = [p for p in parts if not isinstance(split.get(p), list)]
    if missing:
        raise UserError(f"{run_dir / 'split.json'}: missing or without the {', '.join(missing)} rows; retrain")
    return [split[p] for p in parts]


def resolve_run_dir(run_dir: str | None, runs_root: str = "runs") -> Path:
    """The given run folder, or the newest one under runs/."""
    if run_dir is not None:
        path = Path(run_dir)
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        if (path / "cv.json").is_file():
            raise UserError(f"{path}: a cross-validation folder: give one of its runs ({path}/fold1); cv.json has all")
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
        self.path = _in_place(path)
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with open(path, newline="") as f:
                self.fields = next(csv.reader(f))

    def append(self, row: dict[str, Any]) -> None:
        """One row (and the header first), written in one go; a failed write leaves the file as it was."""
        new = self.fields is None
        fields = list(row) if new else self.fields
        text = io.StringIO(newline="")
        # extrasaction: a resume that turns train.diagnostics on keeps the header the run started with
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _fmt(v) for k, v in row.items()})
        size = self.path.stat().st_size if self.path.exists() else None
        try:
            with open(self.path, "ab") as f:
                f.write(text.getvalue().encode())
        except OSError as e:
            if size is None:
                self.path.unlink(missing_ok=True)  # no file rather than an empty one
            else:
                os.truncate(self.path, size)
            kept = "its earlier rows are intact" if size else "no row of it was kept"
            raise UserError(f"cannot write {self.path}: {e.strerror}; {kept}") from None
        self.fields = fields


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


# What nntrain keeps in a run folder; none of them is ever an output the user names with -o.
RUN_FILES = frozenset(
    {
        "config.yaml",
        "split.json",
        "summary.json",
        "metrics.csv",
        "best.pt",
        "last.pt",
        LOCK_FILE,
        "tensorboard",
        "curves.png",
        "diagnostics.png",
        "confusion_matrix.png",
        "roc.png",
        "pr.png",
        "pred_vs_true.png",
        "residuals.png",
    }
)
# Keys a resume may change; anything else would train a different model than the checkpoint holds.
RESUMABLE = ("train.", "device")


def is_run_folder(path: Path) -> bool:
    return (path / "config.yaml").is_file() and any((path / f).is_file() for f in ("last.pt", "best.pt"))


def output_file(out: Path, force: bool = False, inputs: Iterable[str | Path] = (), shown: str | None = None) -> Path:
    """A file the user named with -o, checked before anything is computed or written: its folder exists; it is
    neither a folder, nor one of the inputs, nor one of the files nntrain keeps in a run folder (RUN_FILES);
    and an existing file (or a link) is replaced only with --force."""
    out, shown = Path(out), shown or f"-o {out}"
    if not out.parent.is_dir():
        raise UserError(f"{shown}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"{shown}: is a folder; name the file to write")
    for given in inputs:
        if out.exists() and Path(given).exists() and os.path.samefile(out, given):
            raise UserError(f"{shown}: that is the input file {given}; write the output to another file")
    if is_run_folder(out.parent) and (out.name in RUN_FILES or ".tmp" in out.name):
        what = " (it is the run's checkpoint)" if out.name in ("best.pt", "last.pt") else ""
        raise UserError(
            f"{shown}: {out.name} belongs to the run folder {out.parent}{what}; write the output outside it"
        )
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(f"{shown}: {out} exists; add --force to replace it, or choose another file")
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
    write_run_file(path, json_bytes(obj))


def write_text(path: Path, text: str) -> None:
    write_run_file(path, text.encode())


def write_run_file(path: Path, data: bytes) -> None:
    """A run folder's file, whole or not at all; a full disk is a UserError naming it."""
    write_output(path, lambda f: f.write(data), str(path))


STATIC = ("config", "prep", "versions")  # parts of a checkpoint that training never changes


def snapshot(state: dict) -> dict:
    """A copy of a checkpoint's contents that later steps cannot change: tensors cloned, containers copied; the
    static parts shared (a deepcopy of the preprocessing took most of a small model's end of epoch)."""
    return {k: v if k in STATIC else _copied(v) for k, v in state.items()}


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    if hasattr(value, "detach"):  # a tensor
        return value.detach().clone()
    return value


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
            self.best = snapshot(self.run.state())

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
