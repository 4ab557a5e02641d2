"""Writes that never leave half a file: NAME.tmp-PID renamed over the target, with the stop signals held off
during a save; an output file the user names, refused where it would overwrite a run's own files."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from nntrain.errors import UserError, first_line
from nntrain.plaindata import strict_json
from nntrain.runs.folders import (
    RUN_FILES,
    is_run_folder,
)


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

    try:
        with signals_held():
            write_atomic(path, lambda f: torch.save(obj, f), durable=True)
    except (OSError, RuntimeError) as e:
        reason = getattr(e, "strerror", None) or first_line(e)
        if isinstance(e, RuntimeError) and _free_bytes(path.parent) < 2**20:
            reason = f"No space left on device (torch: {first_line(e, 80)})"  # torch's words for a full disk
        kept = [p.name for p in (path.parent / "best.pt", path.parent / "last.pt") if p.is_file()]
        said = f"the earlier checkpoints in {path.parent} are intact ({', '.join(kept)})" if kept else "none was saved"
        raise UserError(f"cannot write {path}: {reason}; {said}") from None


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_held(dropped: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then arrive; `dropped`: those that came meanwhile are
    dropped instead, as what they would stop is finished (an export's files are written)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets them
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
        if dropped:
            for s in signal.sigpending() & STOP_SIGNALS:
                signal.sigwait({s})  # taken off the pending set, never delivered
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 2**63


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


def read_summary(run_dir: Path) -> dict:
    """A run folder's summary.json ({} where it has none yet); ValueError where it is not JSON."""
    import json

    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    return summary if isinstance(summary, dict) else {}


def write_json(path: Path, obj: Any) -> None:
    write_run_file(path, json_bytes(obj))


def write_text(path: Path, text: str) -> None:
    write_run_file(path, text.encode())


def write_run_file(path: Path, data: bytes) -> None:
    """A run folder's file, whole or not at all; a full disk is a UserError naming it."""
    write_output(path, lambda f: f.write(data), str(path))
