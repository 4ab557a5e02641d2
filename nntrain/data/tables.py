"""Read a table: a file of one of readers.py's formats or a scikit-learn bundled set, a delimited text file
checked for what pandas lets pass silently (duplicate or ragged columns, another delimiter), with the file's
sha256 computed on the side.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import ctypes
import dataclasses
import hashlib
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntrain.data.delimiters import SPACES, reader
from nntrain.data.digests import sha256_soon
from nntrain.data.readers import (
    BINARY,
    COMPRESSIONS,
    DELIMITERS,
    EXCEL,
    NAMES,
    Options,
    delimiter,
    is_text,
    kept_parts,
    kind_of,
    parquet_parts,
    parts_digest,
    read_frame,
    read_parts,
    read_text,
)
from nntrain.data.text_numbers import no_repeated_header, spans_lines
from nntrain.data.workbooks import read_excel
from nntrain.errors import UserError, did_you_mean, first_line, listed, quoted

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")


@dataclass
class Table:
    frame: pd.DataFrame
    source: str  # resolved path, or sklearn:NAME
    sha256: str
    header_line: int  # a text file's header line (1, or more where lines above it were skipped); -a sheet's; else 0
    notes: list[str] = field(default_factory=list)  # what reading it found (a delimiter, decimal commas)
    commas: str | None = None  # what its numbers show its commas are: decimal, thousands (readers.Options)
    sheet: str | None = None  # a workbook's sheet that was read
    sheets: dict[str, list[str]] = field(default_factory=dict)  # a workbook's every sheet: its column names
    parts: dict | None = None  # a folder's or glob's Parquet files: readers.kept_parts


def resolve_path(path: str, base: Path | None = None) -> Path:
    """A relative path is tried in the working directory, then beside the config, then one folder up
    (so configs/x.yaml can name data/x.csv from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or base is None:
        return p
    for folder in (base, base.parent):
        if (folder / p).exists():
            return folder / p
    return p


# Wider tables are not what an MLP on one machine is for, and pandas takes minutes on them. A plain CSV is refused
# from its header line, before it is parsed; a compressed CSV or a Parquet file once it is read.
MAX_COLUMNS = 20_000


def read_table(path: str, base: Path | None = None, key: str = "data.path", options: Options | None = None) -> Table:
    """A table file (readers.py's formats) or sklearn:NAME. `key` names the argument in messages; `options`: the
    config's data.sep, data.decimal and data.thousands, and the notes of what was found reading it."""
    if path.startswith("sklearn:"):
        return _read_sklearn(path.removeprefix("sklearn:"), key)
    p = resolve_path(path, base)
    parts = parquet_parts(path, p)
    if parts:  # a folder or glob of Parquet files, read whole (data.stream reads them a chunk at a time)
        kept = kept_parts(path, p, parts)  # stamped before they are read: one rewritten meanwhile then differs
        frame = read_parts(parts, key, path)
        return Table(frame, str(p.resolve()) if p.is_dir() else path, parts_digest(kept["files"]), 0, [], parts=kept)
    if p.exists() and not p.is_file() and not p.is_dir():  # /dev/zero, a pipe, a link to either
        raise UserError(f"{key}={path}: not a regular file (a device, pipe or socket); give a table file")
    if not p.is_file():
        looked = (
            "" if base is None else f" (also looked under {', '.join(dict.fromkeys(map(str, (base, base.parent))))})"
        )
        raise UserError(f"{key}={path}: file not found{looked}")
    digest = sha256_soon(p)  # already under way when fit started it before importing torch
    options = options or Options()
    shown = f"{key}={path}"
    text, excel = is_text(p), kind_of(p)[0] in EXCEL
    if text or excel:
        frame = _read_csv(p, shown, options) if text else read_excel(p, kind_of(p)[0], shown, options)
    else:
        frame = read_frame(p, shown)
    header_line = (1 + options.skip) * (1 if text and not spans_lines(frame) else -1 if excel else 0)  # where()
    if excel:  # a text file's is refused as it is read (_checked)
        no_repeated_header(frame, shown, header_line)
    sha256 = digest.result()
    if frame.shape[0] == 0:
        raise UserError(f"{key}={path}: the table has a header but no data rows")
    if frame.shape[1] > MAX_COLUMNS:
        raise UserError(
            f"{key}={path}: the table has {frame.shape[1]:,} columns; nntrain reads at most {MAX_COLUMNS:,}"
        )
    frame.columns = [str(c) for c in frame.columns]  # Parquet allows integer names; configs name columns in text
    if header_line or excel:
        frame.columns = _stripped(frame.columns, shown, options.notes)
    found = (options.notes, options.commas, options.sheet_read, options.sheets)
    return Table(frame, str(p.resolve()), sha256, header_line, *found)


def _stripped(columns: pd.Index, shown: str, notes: list[str]) -> list[str]:
    """A text file's or a sheet's column names without outer spaces (a config, or the command line, cannot name
    ' price '). A typed format's (Parquet: a streamed run reads its names as they are) are left as they are."""
    names = [c.strip() for c in columns]
    spaced = [c for c in columns if c != c.strip()]
    if not spaced:
        return names
    twice = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    if twice:
        raise UserError(f"{shown}: column names {listed(twice, quote=True)} differ only by outer spaces; rename one")
    notes.append(f"column names read without their outer spaces: {listed(spaced, most=4, quote=True)}")
    return names


NESTED = {list: "a list", tuple: "a list", np.ndarray: "a list", dict: "a mapping (struct)", set: "a set"}


def check_columns(frame: pd.DataFrame, shown: str) -> None:
    """Refuse a column nntrain cannot encode, naming it: complex, interval, period or sparse values, or cells
    holding lists, mappings or sets (Parquet list and struct columns; a DataFrame's object columns)."""
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_complex_dtype(col.dtype) or isinstance(
            col.dtype, (pd.IntervalDtype, pd.PeriodDtype, pd.SparseDtype)
        ):
            raise UserError(
                f"{shown}: column {quoted(name)} holds {col.dtype} values; nntrain reads numbers, text and dates"
            )
        if col.dtype == object:
            nested = col.map(lambda v: isinstance(v, tuple(NESTED))).to_numpy(dtype=bool)
            if nested.any():
                i = int(nested.argmax())
                kind = next(k for t, k in NESTED.items() if isinstance(col.iloc[i], t))
                raise UserError(
                    f"{shown}: column {quoted(name)}: row {i + 1} holds {kind}; nntrain reads numbers, text and "
                    f"dates: drop the column (data.drop) or flatten it into columns of its own"
                )


# Encodings tried after UTF-8, as Excel saves CSV and text: "Unicode text" as UTF-16 (with its byte order mark),
# "CSV" on Windows as Windows-1252; Latin-1 reads any byte.
ENCODINGS = {"utf-16": "UTF-16", "cp1252": "Windows-1252", "latin-1": "Latin-1"}


def _read_csv(p: Path, shown: str, options: Options) -> pd.DataFrame:
    if p.stat().st_size == 0:
        raise UserError(f"{shown}: the file is empty")
    with open(p, "rb") as f:
        head = f.read(4)
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff") and not kind_of(p)[1]
    if head in BINARY and not kind_of(p)[1]:  # a workbook saved under its old name: not ragged text
        raise UserError(f"{shown}: {BINARY[head]}, not delimited text: give it the suffix of its format")
    said, tries = len(options.notes), ["utf-16"] if utf16 else ["utf-8", "cp1252", "latin-1"]
    for encoding in tries:
        del options.notes[said:]  # what a failed try found
        options.encoding = encoding
        try:
            frame, sep, header = _read_delimited(p, shown, options)
            break
        except UnicodeDecodeError as e:
            if encoding == tries[-1]:  # Latin-1 reads any byte; a UTF-16 mark on other bytes
                raise UserError(f"{shown}: not a text file ({e.reason} at byte {e.start})") from None
    if encoding != "utf-8":
        options.notes.append(f"{p.name}: read as {ENCODINGS[encoding]} text (not UTF-8)")
    return _checked(frame, p, sep, header, shown, options)


def _read_delimited(p: Path, shown: str, options: Options) -> tuple[pd.DataFrame, str, list[str]]:
    compressed = bool(kind_of(p)[1])
    try:
        sep = delimiter(p, options)
        header = [] if compressed else _header(p, sep, shown, options)
        if len(header) > MAX_COLUMNS:
            raise UserError(f"{shown}: the header has {len(header):,} columns; nntrain reads at most {MAX_COLUMNS:,}")
        dupes = sorted(c for c, n in collections.Counter(header).items() if n > 1 and c)  # '': read_text's
        if dupes:
            raise UserError(f"{shown}: duplicate column name(s) {listed(dupes, most=10, quote=True)} in the header")
        return read_text(p, sep, options), sep, header
    except pd.errors.EmptyDataError:
        raise UserError(f"{shown}: the file has no header or data") from None
    except pd.errors.ParserError as e:
        raise UserError(f"{shown}: rows of unequal length: {e}".rstrip()) from None
    except UnicodeDecodeError:  # a ValueError too: _read_csv tries the next encoding
        raise
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, ValueError) as e:
        if not compressed:
            raise
        why = first_line(e) if str(e).strip() else "it ends early"  # a cut-off gzip: EOFError with no message
        raise UserError(f"{shown}: cannot read it as {COMPRESSIONS[kind_of(p)[1]]}: {why}") from None


def _checked(frame: pd.DataFrame, p: Path, sep: str, header: list[str], shown: str, options: Options) -> pd.DataFrame:
    """The frame, refused where one column holds another delimiter or a row is short."""
    name, fields = str(frame.columns[0]), {len(str(v).split()) for v in frame.iloc[:5, 0]}  # as many in 5 rows
    spaced = len(name.split()) > 2 and min(fields, default=0) > 1 and sep not in (" ", SPACES)  # sniff found no count
    if frame.shape[1] == 1 and (spaced or any(d in name for d in DELIMITERS if d != sep)):
        other = f"another delimiter than {NAMES.get(sep, repr(sep))}s; set data.sep"
        how = 'spaces, but not as many on every line (quote a value that holds one: "New York")' if spaced else other
        raise UserError(f"{shown}: only one column, {quoted(name)}: the fields seem separated by {how}")
    no_repeated_header(frame, shown, 1 + options.skip)
    _trim_heap()
    # A short row comes back with its last fields NaN; only then is it worth reading the file again to find it.
    # A header of one field takes only the first of longer rows' fields.
    if header and (frame.iloc[:, -1].hasnans or len(header) == 1):
        ragged = _ragged_row(p, len(header), sep, shown, options)
        if ragged is not None:
            line, fields = ragged
            above = "; is the first line a title above the header?" if len(header) == 1 else ""
            raise UserError(f"{shown}: line {line} has {fields} fields, the header has {len(header)}{above}")
    return frame


def refuse_streaming(data_cfg: Any) -> None:
    """data.stream=true where the table is read into memory: fit of one model streams (engine/streamed.py); a
    sweep asks before its study exists."""
    if getattr(data_cfg, "stream", None) is True:
        raise UserError(
            "data.stream=true: only `nntrain fit` of one model streams its table; cross-validation, sweeps, --seeds, "
            "bags and lr-find read it into memory: set data.stream=false (or auto)"
        )


def read_tables(data_cfg: Any, config_dir: Path | None) -> tuple[Table, dict, list[dict]]:
    """data.path, with the rows of data.val_path and data.test_path after its own: (the table, the rows each
    given file holds, the files as the checkpoint records them)."""
    refuse_streaming(data_cfg)
    table = read_table(data_cfg.path, config_dir, options=read_options(data_cfg))
    frames, given, files, start = [table.frame], {}, [], len(table.frame)
    seen = [("data.path", table.source, table.sha256)]
    for part in ("val", "test"):
        path = getattr(data_cfg, f"{part}_path")
        if path is None:
            continue
        extra = read_table(path, config_dir, key=f"data.{part}_path", options=read_options(data_cfg))
        table.notes += extra.notes
        for earlier, source, sha256 in seen:
            if extra.source == source or extra.sha256 == sha256:
                raise UserError(
                    f"data.{part}_path={path}: the same {'file' if extra.source == source else 'content'} as "
                    f"{earlier}; every {part} row would also be a row of {earlier}: name a file of other rows"
                )
        seen.append((f"data.{part}_path", extra.source, extra.sha256))
        if sorted(extra.frame.columns) != sorted(table.frame.columns):
            lacks = sorted(set(table.frame.columns) - set(extra.frame.columns))
            more = sorted(set(extra.frame.columns) - set(table.frame.columns))
            raise UserError(
                f"data.{part}_path={path}: its columns differ from data.path's"
                + (f"; it lacks {listed(lacks, quote=True)}" if lacks else "")
                + (f"; it adds {listed(more, quote=True)}" if more else "")
            )
        frames.append(extra.frame[table.frame.columns])
        given[part] = np.arange(start, start + len(extra.frame))
        files.append({"part": part, "source": extra.source, "sha256": extra.sha256, "rows": len(extra.frame)})
        if extra.parts:  # a folder or glob: its files, to read them again (data/reread.py)
            files[-1]["parts"] = extra.parts
        start += len(extra.frame)
    if given:
        frame = pd.concat(frames, ignore_index=True)
        table = dataclasses.replace(table, frame=frame)
    return table, given, files


READ_KEYS = ("sep", "decimal", "thousands", "sheet")


def read_options(data_cfg: Any) -> Options:
    """data.sep, data.decimal, data.thousands and data.sheet (a config's, or a run's prep["read"] with what its
    file's commas were), as readers.py takes them."""
    if isinstance(data_cfg, dict):
        return Options(*(data_cfg.get(k) for k in READ_KEYS), commas=data_cfg.get("commas"))
    return Options(*(getattr(data_cfg, k) for k in READ_KEYS))


def _trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim): pandas' parse frees its chunk buffers into
    malloc's arenas, which kept them resident (320 MiB beside a 1M x 50 table, as the float32 matrix is made)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


@contextlib.contextmanager
def _any_field_size(shown: str) -> Iterator[None]:
    """The stdlib csv reader with no field limit (its default, 128 KiB, refused cells pandas read), its errors
    as the file's; the process-wide limit is put back after."""
    old = csv.field_size_limit(2**31 - 1)
    try:
        yield
    except csv.Error as e:
        raise UserError(f"{shown}: not a CSV file the reader can follow: {e}") from None
    finally:
        csv.field_size_limit(old)


def _header(p: Path, sep: str, shown: str, options: Options) -> list[str]:
    with open(p, newline="", encoding=options.encoding) as f, _any_field_size(shown or str(p)):
        for _ in range(options.skip):
            f.readline()
        return next(reader(f, sep), [])


def _ragged_row(p: Path, width: int, sep: str, shown: str, options: Options) -> tuple[int, int] | None:
    """pandas fills short rows with NaN silently; find the first row whose field count differs: (the physical
    line it ends on, its fields)."""
    with open(p, newline="", encoding=options.encoding) as f, _any_field_size(shown or str(p)):
        for _ in range(options.skip):
            f.readline()
        rows = reader(f, sep)
        for row in rows:
            if row and len(row) != width:
                return rows.line_num + options.skip, len(row)
    return None


def _read_sklearn(name: str, key: str = "data.path") -> Table:
    if name not in SKLEARN_DATASETS:
        raise UserError(
            f"{key}=sklearn:{name}: unknown dataset{did_you_mean(name, SKLEARN_DATASETS)}; "
            f"choose one of: {', '.join('sklearn:' + d for d in SKLEARN_DATASETS)}"
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    names = getattr(bunch, "target_names", None)
    if name in ("iris", "wine", "breast_cancer") and names is not None:
        frame["target"] = np.asarray(names)[frame["target"].to_numpy()]  # labels read as words in predictions
    return Table(frame, f"sklearn:{name}", hashlib.sha256(f"sklearn:{name}".encode()).hexdigest(), 0)


def where(header_line: int, i: int) -> str:
    """Rows are counted from 1 after the header; a CSV's line number is one more, or more by the lines above its
    header (header_line: the header's line number; a sheet's header row, negated; 0: rows have no line numbers)."""
    if header_line < 0:  # a sheet's rows as the spreadsheet numbers them
        return f"row {i + 1} (sheet row {i + 1 - header_line})"
    return f"row {i + 1} (line {i + 1 + header_line})" if header_line else f"row {i + 1}"
