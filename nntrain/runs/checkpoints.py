"""Checkpoints: what they hold (plain data that loads with weights_only=True), their structure checked on
load, the split's rows, and the Saver that writes last.pt and best.pt in the background."""

from __future__ import annotations

import functools
import json
import os
import pickle
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nntrain.errors import UserError, first_line
from nntrain.runs.files import atomic_save, read_summary
from nntrain.runs.folders import PREVIOUS

CHECKPOINT_FORMAT = 1


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """What reproduces a run; read from package metadata, so nothing is imported for it."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        **{name: version(name) for name in ("nntrain", "torch", "numpy", "pandas", "scikit-learn")},
    }


def _why_none(path: Path) -> str:
    """Why a run folder lacks a checkpoint, where its files say: a bag's folder (its split.json says so) that lost
    the bag.json that makes it one, or a run that diverged before its first best epoch (summary.json)."""
    try:
        bag = json.loads((path.parent / "split.json").read_text()).get("bag")
    except (OSError, ValueError, AttributeError):
        bag = None
    if bag:
        return f": {path.parent} is a bag of {bag} members whose bag.json is missing; train the bag again"
    try:
        summary = read_summary(path.parent)
    except (OSError, ValueError):
        return ""
    if summary.get("status") != "diverged":
        return ""
    said = str(summary.get("stopped") or "training diverged").split(":")[0]
    return f": the run diverged before it saved one ({said}; summary.json says what to try)"


def load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True; a corrupt or unsafe file is a UserError, never a traceback."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found{_why_none(path)}")
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
# used; what resume alone reads is state.RESUME_KEYS.
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
    if not split_path.is_file() and ckpt.get("run_id"):
        raise UserError(f"{split_path}: not there; the run's rows are listed in it: put it back")
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
        self.clock: Callable[[], float] = time.monotonic  # stacked members share one (stacked_runs.py)
        self.last = self.clock()
        self.best: dict | None = None  # a copy of the state at the newest best epoch, not yet on disk
        self.last_epoch = run.epoch  # the epoch last.pt holds
        # A stacked member keeps its last.pt before each save as last.prev.pt: a kill -9 between two members'
        # saves leaves them one save apart, and the ones ahead resume from their previous (run_groups.py).
        self.keep_previous = False

    def best_changed(self) -> None:
        if self.run.writes:
            self.best = snapshot(self.run.state())

    def due(self) -> bool:
        return self.clock() - self.last >= self.run.cfg.train.checkpoint_every

    def save_best(self) -> None:
        if self.best is not None and self.run.writes:
            atomic_save(self.best, self.run.run_dir / "best.pt")
            self.best = None

    def save(self) -> None:
        self.save_best()  # best first: last.pt never names a best epoch that best.pt does not hold
        if self.run.writes:  # in a data-parallel group, rank 0 alone
            last = self.run.run_dir / "last.pt"
            if self.keep_previous and last.is_file():
                os.replace(last, self.run.run_dir / PREVIOUS)
            atomic_save(self.run.state(), last)
        self.last, self.last_epoch = self.clock(), self.run.epoch
