"""A DataFrame given through the Python API (nntrain.fit(config, data=frame)), stored once as Parquet under
RUNS_DIR/.data, named by a hash of its contents, so that eval, resume and the run folder's config.yaml can
read it again; removed on a refused fit only when this fit wrote it and no other fit or run uses it. A frame given
to predict, eval or explain becomes the Table a file reads to, its columns of mixed values as text."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from nntrain.data.tables import NESTED, Table, check_columns
from nntrain.errors import UserError
from nntrain.runs.files import write_output

STORED = re.compile(r"[0-9a-f]{32}\.parquet")  # the name frame_file gives a stored DataFrame


def frame_file(frame: pd.DataFrame, runs_dir: Path) -> Path:
    """Where a DataFrame is stored: RUNS_DIR/.data/SHA.parquet, named by its content (stored once); absolute, as
    the config.yaml of a run trained on it names it, so that `nntrain fit RUN/config.yaml` reads it from any
    folder (a run's summary and checkpoints name its table absolutely too)."""
    frame = named(frame)
    check_columns(frame, "data")
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    except TypeError as e:
        raise UserError(f"data: a column holds values that are not numbers, text or dates ({e})") from None
    head = json.dumps([list(frame.columns), [str(t) for t in frame.dtypes]]).encode()
    name = f"{hashlib.sha256(head + hashed).hexdigest()[:32]}.parquet"  # as STORED matches
    return runs_dir.resolve() / ".data" / name


def is_stored_frame(source: str) -> bool:
    """Whether a run's data file is a DataFrame that fit stored (RUNS_DIR/.data/SHA.parquet), not the user's file."""
    path = Path(source)
    return path.parent.name == ".data" and STORED.fullmatch(path.name) is not None


@contextlib.contextmanager
def stored(frame: pd.DataFrame, path: Path) -> Iterator[None]:
    """The DataFrame stored at `path` while a fit starts (the run folder's config.yaml then names it). A fit
    that fails before it starts removes the file only if this call wrote it and no other fit uses it: every
    starting fit holds a shared lock on the folder RUNS_DIR/.data, the one removing takes it exclusively (not
    waiting; busy: the file stays), and a run folder whose config.yaml names the file keeps it too."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError as e:
        raise UserError(f"data: the DataFrame cannot be stored under {path.parent}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        made = store(frame, path)
        try:
            yield
        except BaseException:
            if made and _alone(fd) and not _named_by_a_run(path):
                path.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)  # drops the lock


def _alone(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _named_by_a_run(path: Path) -> bool:
    """A run folder's config.yaml names the file: a run's, or a folder down, a cv fold's or a sweep trial's."""
    runs = path.parent.parent
    configs = [*runs.glob("*/config.yaml"), *runs.glob("*/*/config.yaml")]
    return any(path.name in c.read_text(errors="replace") for c in configs if c.is_file())


def store(frame: pd.DataFrame, path: Path) -> bool:
    """The DataFrame as Parquet at `path`, unless it is there already; True if this call wrote it (written
    under a name of its own, then linked into place only if no other fit got there first)."""
    if path.is_file():
        return False
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        write_output(tmp, lambda f: named(frame).to_parquet(f, index=False), "data (the DataFrame, as Parquet)")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except (ImportError, ValueError, TypeError, NotImplementedError) as e:  # pyarrow's Arrow*Error are these
        raise UserError(f"data: the DataFrame cannot be stored as Parquet: {e}") from None
    except OSError as e:
        raise UserError(f"data: the DataFrame cannot be stored at {path}: {e.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def named(frame: pd.DataFrame) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names):
        raise UserError("data: the DataFrame has duplicate column names")
    for name, dtype in zip(names, frame.dtypes):
        if pd.api.types.is_complex_dtype(dtype):
            raise UserError(
                f"data: column {name!r} holds complex numbers ({dtype}); give real numbers "
                f"(its real and imaginary parts as two columns, say)"
            )
    return frame.set_axis(names, axis=1).reset_index(drop=True)


def given_frame(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """A DataFrame given to fit, predict, eval or explain as a file's rows read: columns named as text, a column
    of mixed values as text (mixed_as_text); one without rows is refused, as a file without them is."""
    if len(frame) == 0:
        raise UserError(f"{key}: the DataFrame has no rows (columns but no data rows); give it one or more")
    return mixed_as_text(named(frame))


def frame_table(frame: pd.DataFrame, key: str) -> Table:
    """A DataFrame given to predict, eval or explain, as the Table a file reads to (given_frame)."""
    return Table(given_frame(frame, key), "DataFrame", "", 0)


# What infer_dtype says of an object column Parquet holds as it is (and one that holds lists is check_columns')
CLEAN = ("string", "empty", "boolean", "floating", "complex")


def mixed_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each object column of mixed Python values (1, "x", 2.5; a Timestamp beside text), or of values
    Parquet cannot hold, as a CSV reader sees it: its values as text, missing ones missing. The tabular code then
    decides, as for a file (a few numbers among text: categories). Other columns stay as they are."""
    out = frame
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        if column.dtype == object and _mixed(column):
            out = frame.copy() if out is frame else out
            out.isetitem(i, column.map(str, na_action="ignore").astype(object))
    return out


def _mixed(column: pd.Series) -> bool:
    import pyarrow as pa

    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind in CLEAN:
        return False
    values = column.dropna()
    if any(isinstance(v, tuple(NESTED)) for v in values):
        return False  # lists, mappings: refused by name (data/tables.check_columns)
    if kind.startswith("mixed"):  # mixed-integer-float (1, 2.5) is numbers, which Parquet holds
        return kind != "mixed-integer-float"
    try:
        pa.array(values, from_pandas=True)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return True
    return False


def indexed_like(frame: pd.DataFrame, data: object) -> pd.DataFrame:
    """Predictions on a DataFrame carry its index (`new["p"] = run.predict(new)["prediction"]` lines up)."""
    return frame.set_axis(data.index) if isinstance(data, pd.DataFrame) and len(data) == len(frame) else frame


def table_or_path(data: object) -> object:
    """A file path as text, or a DataFrame as a Table (typed columns, as from Parquet; a column of mixed values
    as text, as from a CSV file); None stays None. A DataFrame without rows is refused. Only Python passes anything
    but a path: a refusal names the API's argument, data (as fit's do), not the command line's INPUT or --data."""
    if data is None or isinstance(data, (str, Path)):
        return None if data is None else str(data)
    if not isinstance(data, pd.DataFrame):
        raise UserError(f"data: give a pandas DataFrame or a file path, not {type(data).__name__}")
    return frame_table(data, "data")
