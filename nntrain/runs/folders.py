"""Run folders: made without races, held by one writer (a lock the kernel frees when the process dies), the
leftovers of a killed save cleaned, found by name, and told apart from other folders by their files."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from nntrain.errors import UserError

PREVIOUS = "last.prev.pt"  # a stacked member's last.pt before its newest save (checkpoints.Saver)
LOCK_FILE = ".lock"  # held (flock) by the one process that writes a run folder
# How a run ended, summary.json's "status": all its epochs; early stopping; a sweep's pruner; a non-finite loss
# or weight; a signal (resumable with fit --resume); a bad value a streamed run met after an epoch had finished
# (not resumable: its file must change).
STATUSES = ("completed", "early_stop", "pruned", "diverged", "interrupted", "failed")


def create_run_dir(root: str | Path, name: str) -> Path:
    """runs/NAME, else NAME-2, NAME-3, ...: os.mkdir fails when the folder exists, so two runs never share one."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name (runs_dir=/dev/null), or a file among its parents
        said = "a file, not a folder" if isinstance(e, FileExistsError) else f"cannot create it: {e.strerror}"
        raise UserError(f"runs_dir={root}: {said}") from None
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
            unlock_file(self.key / LOCK_FILE, held[0])  # closing the descriptor drops the flock


def _forget_locks_in_child() -> None:
    """A forked child (a streamed run's DataLoader worker) closes its copies of the run locks' descriptors: a
    flock is held while any copy is open, so a worker outliving a killed fit would keep its folder locked."""
    for fd, _ in RunLock._held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    RunLock._held.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def pid_lock(path: Path, busy: Callable[[str], None]) -> int:
    """An exclusive flock on `path` (never through a link), with this process's PID written in it; its descriptor,
    whose closing drops the lock. When another process holds it, busy(its PID) is called: it raises to give up,
    or returns to wait for the lock. A holder removes the file when it lets go (unlock_file): a lock taken on a
    file already removed is taken again on the new one."""
    while True:
        fd = _locked(path, busy)
        try:
            if os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def unlock_file(path: Path, fd: int) -> None:
    """Remove the lock file, then let go of it: no finished folder keeps a .lock."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


def _locked(path: Path, busy: Callable[[str], None]) -> int:
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


def resolve_run_dir(run_dir: str | None, runs_root: str = "runs") -> Path:
    """The given run folder, or the newest one under runs/."""
    if run_dir is not None:
        path = Path(run_dir)
        if path.is_file():
            raise UserError(f"{path} is a file, not a run folder: give the folder a fit made (runs/NAME)")
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        if (path / "cv.json").is_file():
            raise UserError(
                f"{path}: a cross-validation folder: give one of its runs ({path}/fold1), cv.json has all; "
                f"nntrain cv --resume {path} finishes an interrupted one"
            )
        if not (path / "config.yaml").is_file():
            raise UserError(f"{path}: not a run folder (no config.yaml)")
        return path
    root = Path(runs_root)
    runs = [p for p in root.glob("*/") if (p / "best.pt").is_file()] if root.is_dir() else []
    if not runs:
        raise UserError(f"no runs found under {root}/; give a run folder, e.g. nntrain eval runs/phone")
    return max(runs, key=lambda p: (p / "config.yaml").stat().st_mtime)


# What nntrain keeps in a run folder; none of them is ever an output the user names with -o.
RUN_FILES = frozenset(
    {
        "config.yaml",
        "split.json",
        "summary.json",
        "metrics.csv",
        "best.pt",
        "last.pt",
        PREVIOUS,
        LOCK_FILE,
        "tensorboard",
        "curves.png",
        "diagnostics.png",
        "confusion_matrix.png",
        "roc.png",
        "pr.png",
        "pred_vs_true.png",
        "residuals.png",
        "calibration.png",
        "bag.json",
        "oof.csv",
    }
)
# Keys a resume may change; anything else would train a different model than the checkpoint holds.
RESUMABLE = ("train.", "device")


def folder_of(value: object, name: str = "run_dir") -> Path:
    """A run folder given to the Python API: a path, or what fit, load or cv returned (a Run, Bag or Folds stands
    for its run_dir); anything else refused naming the argument (it failed deep inside, as a TypeError)."""
    value = getattr(value, "run_dir", value)
    if not isinstance(value, (str, Path)):
        raise UserError(f"{name}: give a run folder's path (or the Run that fit returned), not {type(value).__name__}")
    return Path(value)


def folders_of(values: object) -> list[Path]:
    """resume_together's run_dirs, each as folder_of takes it; a string is no list (read letter by letter)."""
    if not isinstance(values, (list, tuple)):
        raise UserError(f"run_dirs: give a list of run folders (or Runs), not {type(values).__name__}")
    return [folder_of(v, "run_dirs") for v in values]


def is_run_folder(path: Path) -> bool:
    """A fit's folder: a run's (its checkpoints) or a bag's (bag.json; its members' folders hold theirs)."""
    return (path / "config.yaml").is_file() and any((path / f).is_file() for f in ("last.pt", "best.pt", "bag.json"))
