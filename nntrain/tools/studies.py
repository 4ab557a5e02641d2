"""Where a sweep's study lives and how its workers share it: the storage URL (checked, its password masked),
the claim lock under which a worker counts trials and starts one, and the heartbeat that tells a dead
worker's trial (kill -9, a lost machine) from a live one, so that the trial is failed and run again; a trial
that Ctrl-C stops is failed and queued again at once, so that the same sweep command run again goes on with it.

Optuna hands out trials, but on SQLite two processes can pop the same one (its docs advise against SQLite
for parallel work), and a worker cannot know how many trials the others started. So the step "are there
fewer than N trials? then start one" runs under a lock: a file lock beside the SQLite file, a PostgreSQL
advisory lock on a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

from nntrain.errors import UserError, first_line
from nntrain.runs.folders import PREVIOUS, pid_lock

DEFAULT_HEARTBEAT = 30  # seconds between a running trial's heartbeats; stale after twice that


def storage_url(url: str | None, default: str) -> str:
    """The study's database: --storage as given (sqlite:///FILE, its folder made, or postgresql://...), checked;
    else `default`."""
    if url is None:
        return default
    if url.startswith("sqlite:///"):  # its folder made, as fit makes runs_dir: the claim lock's file goes there
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--storage {url}: cannot make its folder {folder}: {e.strerror}") from None
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://")):
        raise UserError(f"--storage {masked(url)}: use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    from sqlalchemy.engine import make_url

    try:
        make_url(url).port  # noqa: B018 - parsing the port is the check (postgresql://u:p@host:notaport/db)
    except (ValueError, TypeError) as e:
        raise UserError(f"--storage {masked(url)}: not a database URL ({first_line(e)})") from None
    return url


def masked(url: str) -> str:
    """The storage URL with its password masked, for messages and logs: user:PASSWORD@ (the password may hold an
    unencoded @, so up to the last @), :PASSWORD@ with no user, and ?password=..."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    return re.sub(r"(://[^:/@]*):[^/]*@", r"\1:***@", url, count=1)


@contextlib.contextmanager
def claim_lock(url: str, study: str, log: Callable[[str], None] = lambda m: None) -> Iterator[None]:
    """Held while a worker counts the study's trials and starts one; says so when another worker holds it."""
    if url.startswith("sqlite:///"):
        with _file_lock(url.removeprefix("sqlite:///") + ".lock", log):
            yield
        return
    import sqlalchemy as sa

    key = int(hashlib.sha256(f"nntrain-sweep:{study}".encode()).hexdigest()[:15], 16)
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        conn_cm = engine.connect()
    except (ImportError, sa.exc.SQLAlchemyError) as e:
        raise UserError(f"--storage {masked(url)}: cannot open it: {first_line(e)}") from None
    try:
        with conn_cm as conn:
            if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                log(f"waiting for another worker of study {study}, which holds its claim lock (PostgreSQL)")
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: str, log: Callable[[str], None]) -> Iterator[None]:
    fd = pid_lock(
        Path(path), lambda holder: log(f"waiting for the study's claim lock ({path}), held by process {holder}")
    )
    try:
        yield
    finally:
        os.close(fd)  # closing drops the lock


def open_storage(url: str, heartbeat: int) -> Any:
    """An RDBStorage that records running trials' heartbeats and, when one goes stale, fails it and queues it
    again with the same parameters (Optuna's retry callback; at most 3 times a trial)."""
    argument = next(
        a
        for a in ("heartbeat_stale_trial_callback", "failed_trial_callback")
        if a in inspect.signature(optuna.storages.RDBStorage).parameters
    )
    engine = {"engine_kwargs": {"connect_args": {"timeout": 60}}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: in Optuna since 2.8
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat, **{argument: _retry(max_retry=3)}, **engine
        )


def _retry(max_retry: int | None) -> Any:
    """Optuna's callback that queues a failed trial again with its parameters (its grid point), noting the failed
    one in the new trial's retry_history."""
    retry = (
        getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return retry(max_retry=max_retry)


def fail_and_queue_again(study: Any, trials: list[Any]) -> None:
    """Trials a signal stopped (or that never started): failed, and queued again with their parameters as a dead
    worker's are, so the same sweep command run again goes on with them (earlier_runs). No limit on these
    retries: a person stopped them, not a fault. A trial another worker already failed as stale was queued again
    there."""
    again = _retry(max_retry=None)
    for trial in trials:
        with contextlib.suppress(Exception):  # not when the database itself is what failed
            again(study, study.tell(trial, state=optuna.trial.TrialState.FAIL))


def earlier_runs(study: Any, trials: list[Any]) -> list[Path | None]:
    """Per trial, the run folder of the attempt a queued-again trial repeats (a signal or a dead worker stopped
    it), where one is here and holds a save to go on from; None for a new trial. The study read once."""
    known = {t.number: t for t in study.get_trials(deepcopy=False)}

    def folder(trial: Any) -> Path | None:
        tried = known[trial.number].system_attrs.get("retry_history", [])
        before = known.get(tried[-1]) if tried else None
        stored = before.user_attrs.get("run_dir") if before is not None else None
        path = Path(stored) if stored else None
        if path is None or not path.is_absolute():
            return None
        return path.resolve() if (path / "last.pt").is_file() or (path / PREVIOUS).is_file() else None

    return [folder(trial) for trial in trials]


def _diverged_in(folder: Path | None) -> str | None:
    """Why an earlier attempt's run diverged (its summary.json's words), where it had; else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text()) if folder else None
    except (OSError, ValueError):
        return None
    diverged = isinstance(summary, dict) and summary.get("status") == "diverged"
    return str(summary.get("stopped") or "diverged") if diverged else None


def not_diverged_before(study: Any, trials: list[Any], log: Callable) -> tuple[list[Any], list[Path | None]]:
    """(the trials to train, the folder each goes on in: earlier_runs'): a queued-again trial whose earlier
    attempt had diverged before the stop is told failed, as it ended, not trained from its last save to diverge
    again (a trial another worker failed as stale meanwhile stays as that worker left it)."""
    keep, folders = [], []
    for trial, folder in zip(trials, earlier_runs(study, trials)):
        why = _diverged_in(folder)
        if why is None:
            keep.append(trial)
            folders.append(folder)
            continue
        trial.set_user_attr("run_dir", str(folder))
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log(f"trial {trial.number}: failed: {why} (before the stop; not trained again)")
    return keep, folders


@contextlib.contextmanager
def beating(storage: Any, trial: Any, every: int) -> Iterator[None]:
    """The trial's heartbeat every `every` seconds, on a thread, for as long as it trains."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; a dead database ends the sweep elsewhere
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study: Any) -> None:
    """Running trials whose worker stopped beating are failed, and queued again (Optuna's callback)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" notices
        optuna.storages.fail_stale_trials(study)


def ask(study: Any, storage: Any, heartbeat: int) -> Any:
    """A new trial (a queued retry first), marked as one that beats and with its first heartbeat already given:
    a worker killed before its heartbeat thread starts still leaves a trial that goes stale."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns that heartbeats are meant for study.optimize; ours beat too
        trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr("heartbeat", heartbeat)
    return trial


def tally(trials: list[Any]) -> tuple[int, int, int]:
    """(trials that count toward the total, running ones that beat, waiting): a failed trial that was queued
    again counts once, as its retry. A running trial that never beat (an older nntrain's) is not waited for:
    it would never go stale."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    state = optuna.trial.TrialState
    counted = sum(1 for t in trials if not (t.state == state.FAIL and t.number in retried))
    running = sum(t.state == state.RUNNING and "heartbeat" in t.user_attrs for t in trials)
    return counted, running, sum(t.state == state.WAITING for t in trials)
