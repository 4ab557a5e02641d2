"""The file formats a table comes in, read into a DataFrame: delimited text (its delimiter sniffed: comma,
semicolon, tab or pipe; lines above its header skipped; compressed too; tables.py checks its header and rows
and tries the encodings Excel saves in), JSON Lines, Parquet and Feather / Arrow IPC (Excel is workbooks.py's);
a folder's or glob's Parquet files listed, read whole and kept by path and stamp. A text file's numbers written as
spreadsheets export them are text_numbers.py's."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

from nntrain.config.data_section import EXCEL, SPACES
from nntrain.data.delimiters import DELIMITERS, NAMES, preamble, reader, sniff, unnamed_first, whole_lines
from nntrain.data.text_numbers import (
    numbers_in_text,
    points_grouping_thousands,
    without_empty_unnamed,
    without_total,
    zero_led,
)
from nntrain.errors import UserError, listed

COMPRESSIONS = {
    ".gz": "a gzip-compressed CSV",
    ".bz2": "a bzip2-compressed CSV",
    ".xz": "an xz-compressed CSV",
    ".zip": "a zip holding one CSV",
}
# suffix: the delimiter expected (a .dat file's columns are often aligned with spaces, which sniff finds)
TEXT = {"": ",", ".csv": ",", ".txt": ",", ".dat": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}
JSON_LINES = (".jsonl", ".ndjson")
PARQUET = (".parquet", ".pq")
FEATHER = (".feather", ".arrow", ".ipc")
SAMPLE_BYTES = 1 << 16  # the start of a text file the delimiter is sniffed from
SCAN_BYTES = 1 << 20  # the start of a text file looked at for numbers written with leading zeros
# the first bytes of files a suffix may misname as delimited text
BINARY = {
    b"PK\x03\x04": "a zip file (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"PAR1": "a Parquet file",
}


@dataclass
class Options:
    """How to read a file: data.sep, data.decimal, data.thousands and data.sheet as given (None: found from the
    file)."""

    sep: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    sheet: str | None = None
    notes: list[str] = field(default_factory=list)  # what was found, for the run's header
    encoding: str = "utf-8"  # tables.py tries UTF-8, then what Excel saves (UTF-16, Windows-1252)
    skip: int = 0  # lines above the header (a title, comments), found by delimiter()
    # what the file's commas are where its numbers show it (decimal, thousands); given, what they were in the
    # training file, for a new file whose numbers leave it open (1,299)
    commas: str | None = None
    text: tuple[str, ...] = ()  # columns read as text as they are (a run's text columns: a level 03 stays 03)
    sheet_key: str = "data.sheet"  # what names `sheet` in messages (predict's and eval's --sheet)
    # predict and eval: the sheet their run was trained on, read where a new workbook has it; none, a workbook of
    # several sheets is refused rather than read at its largest (fit's choice)
    run_sheet: str | None = None
    largest: bool = True
    sheet_read: str | None = None  # a workbook's sheet that was read (workbooks.py)
    sheets: dict[str, list[str]] = field(default_factory=dict)  # a workbook's every sheet: its column names
    # predict's warnings, where each row is to predict: a last row that looks like a total is kept, and said there
    # (None: dropped, as fit does, with a note)
    every_row: list[str] | None = None


def kind_of(p: Path) -> tuple[str, str]:
    """(the suffix that says the format, the compression suffix or '')."""
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        inner = suffixes[-2] if len(suffixes) == 2 else ""
        return (inner if inner in TEXT or inner in JSON_LINES else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), ""


def is_text(p: Path) -> bool:
    return kind_of(p)[0] in TEXT


def is_table(p: Path) -> bool:
    """A file whose suffix says it is a table (not a config): .csv, .tsv, .xlsx, .parquet, ..."""
    kind, compression = kind_of(p)
    return bool(kind or compression) and kind in (*TEXT, *JSON_LINES, *PARQUET, *FEATHER, *EXCEL) and kind != ".txt"


def read_frame(p: Path, shown: str) -> pd.DataFrame:
    """A JSON Lines, Parquet or Feather file as a DataFrame, by its suffix (tables.py reads text with read_text,
    workbooks.py reads Excel)."""
    kind = kind_of(p)[0]
    if kind in JSON_LINES:
        return guarded(lambda: pd.read_json(p, lines=True, dtype=False), shown, "JSON Lines (one object a line)")
    if kind in PARQUET:
        return guarded(lambda: pd.read_parquet(p), shown, "Parquet")
    if kind in FEATHER:
        return guarded(lambda: pd.read_feather(p), shown, "Feather / Arrow IPC")
    raise UserError(
        f"{shown}: '{''.join(p.suffixes[-2:]) or p.name}' files are not read; nntrain reads CSV / TSV (compressed "
        f"too), Excel (.xlsx), JSON Lines (.jsonl), Parquet and Feather / Arrow (.feather, .arrow)"
    )


def guarded(read, shown: str, what: str) -> pd.DataFrame:
    try:
        return read()
    except Exception as e:  # each library raises its own types for a damaged file
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{shown}: cannot read it as {what}: {why}") from None


def delimiter(p: Path, options: Options) -> str:
    """data.sep, else the delimiter sniffed from the start of the file (said in a note where it is not the one
    the suffix implies)."""
    if options.sep is not None:
        return options.sep
    kind, compression = kind_of(p)
    sample, whole = _sample(p, compression, options.encoding)
    lines = whole_lines(sample, whole)
    options.skip, found = preamble(lines)
    if options.skip == 1 and found and unnamed_first(lines[:2], found):
        _row_names(p, lines[1:2], found)
    if options.skip:
        padding = "".join(DELIMITERS) + " "  # a title a spreadsheet padded: 'Sales report', not 'Sales report,,,'
        above = [t for line in lines[: options.skip] if (t := line.strip(padding + "\r\n"))]
        options.notes.append(
            f"{p.name}: its first {options.skip} line(s), above the header, skipped (a title or comments: "
            f"{listed(above, most=2, quote=True)})"
        )
    sep = found or sniff("\n".join(lines), TEXT[kind])
    if sep == SPACES and unnamed_first(filled := [line for line in lines if line.strip()][:2], SPACES):
        _row_names(p, filled[1:], SPACES)
    if sep != TEXT[kind]:
        options.notes.append(
            f"{p.name}: fields separated by {NAMES[sep]}s (found from its first lines; data.sep sets it)"
        )
    return sep


def _row_names(p: Path, row: list[str], sep: str) -> None:
    n = len(next(reader(row, sep)))
    raise UserError(
        f"{p.name}: its header has {n - 1} names and its rows {n} fields: the first column (row names, as R's "
        f"write.table and pandas' to_string write them) has no name; write the table without them (write.csv, or "
        f"row.names = FALSE; index=False), or put a name and a {NAMES[sep]} before the header's first"
    )


def read_text(p: Path, sep: str, options: Options) -> pd.DataFrame:
    """A delimited text file with pandas, then its numbers written as spreadsheets do made numbers (unless
    data.decimal: text_numbers.py)."""
    decimal, thousands = options.decimal or ".", options.thousands
    if options.decimal == "," and sep != "," and thousands is None:
        thousands = "."  # a decimal comma's file groups thousands with a point, if at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        # dtype={} infers every column as usual; any dict makes pandas 3.1 keep one array per column instead of
        # copying them into one consolidated block at the end, which lowers the peak by a third (888 against
        # 1,226 MiB on a 1M x 50 table)
        frame = pd.read_csv(
            p,
            sep=sep,
            decimal=decimal,
            thousands=thousands,
            index_col=False,
            encoding=options.encoding,
            dtype=dict.fromkeys(options.text, str),
            skiprows=options.skip,
        )
    frame = without_total(without_empty_unnamed(frame, p.name, options.notes), p.name, options.notes, options.every_row)
    codes_as_text(p, sep, options, frame)
    parsed = [c for c in frame.columns if frame[c].dtype.kind == "f"]  # as pandas read them
    if options.decimal is not None:
        return frame
    shown = numbers_in_text(frame, p.name, options.notes, sep, options.commas, options.text)
    options.commas = shown or options.commas
    if shown == "decimal":
        read = {"sep": sep, "index_col": False, "encoding": options.encoding, "skiprows": options.skip}
        as_text = lambda columns: pd.read_csv(p, usecols=columns, dtype=str, **read)  # noqa: E731
        points_grouping_thousands(frame, parsed, as_text, p.name, options.notes)
    return frame


def codes_as_text(p: Path, sep: str, options: Options, frame: pd.DataFrame) -> None:
    """The columns pandas read as numbers though a value of theirs in the file's first SCAN_BYTES is written with
    a leading zero (02134, 01), read again as text, as written (fitting.column_kind reads them as categories, and
    says so): a zip code keeps its zero, the labels 01 and 1 stay two classes. Only the file's start is looked at:
    scanning all of it cost 40-80% of pandas' read of a file without such a value."""
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf" and c not in options.text]
    first = _first_rows(p, sep, options) if numeric else pd.DataFrame()
    found = [c for c in numeric if c in first and zero_led(first[c]).any()]
    if not found:
        return
    read = {"sep": sep, "index_col": False, "encoding": options.encoding, "skiprows": options.skip}
    raw = pd.read_csv(p, usecols=found, dtype=str, **read)
    for col in found:
        frame[col] = raw[col]  # by row label: a total row without_total dropped stays dropped


def _first_rows(p: Path, sep: str, options: Options) -> pd.DataFrame:
    """The whole lines in the file's first SCAN_BYTES (decompressed) as text, read as read_text reads the file."""
    with _opened(p, kind_of(p)[1]) as f:
        raw = f.read(SCAN_BYTES + 1)
    text = raw[:SCAN_BYTES].decode(options.encoding, errors="replace")
    text = text[: text.rfind("\n") + 1] if len(raw) > SCAN_BYTES else text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        try:
            return pd.read_csv(io.StringIO(text), sep=sep, index_col=False, dtype=str, skiprows=options.skip)
        except (ValueError, pd.errors.ParserError):  # cut inside a quoted field, or no row: none found there
            return pd.DataFrame()


def _sample(p: Path, compression: str, encoding: str = "utf-8") -> tuple[str, bool]:
    """The start of the file as text (decompressed), and whether that is the whole file."""
    with _opened(p, compression) as f:
        raw = f.read(SAMPLE_BYTES + 1)
    text = io.TextIOWrapper(io.BytesIO(raw[:SAMPLE_BYTES]), encoding=encoding, errors="replace", newline="").read()
    return text, len(raw) <= SAMPLE_BYTES


@contextlib.contextmanager
def _opened(p: Path, compression: str) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed (a zip's first file, as pandas reads it)."""
    if compression != ".zip":
        with {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(compression, open)(p, "rb") as f:
            yield f
        return
    with zipfile.ZipFile(p) as z:
        names = z.namelist()
        with z.open(names[0]) if names else io.BytesIO(b"") as f:
            yield f


def parquet_parts(path: str, resolved: Path) -> list[str] | None:
    """The Parquet files a data.path names as a folder (every .parquet under it) or a glob; None where it names
    one file (or nothing: the caller says so)."""
    import glob

    if any(c in path for c in "*?["):
        found = sorted(glob.glob(str(Path(path).expanduser()), recursive=True))
        files = [f for f in found if f.endswith(PARQUET) and Path(f).is_file()]
        if not files:
            raise UserError(f"{path}: the pattern matches no Parquet file (.parquet, .pq)")
        return files
    if resolved.is_dir():
        files = sorted(str(f) for f in resolved.rglob("*") if f.suffix in PARQUET and f.is_file())
        if not files:
            raise UserError(f"{path}: the folder holds no Parquet file (.parquet, .pq)")
        _no_other_tables(path, resolved)
        return files
    return None


def _no_other_tables(path: str, folder: Path) -> None:
    """Refuse a folder of Parquet files that also holds a table of another format (part3.csv): its rows would
    be left out without a word. Other files (Spark's _SUCCESS, .crc checksums, a README) are no tables."""
    others = sorted(
        str(f.relative_to(folder))
        for f in folder.rglob("*")
        if is_table(f) and f.suffix not in PARQUET and not f.name.startswith(("_", ".")) and f.is_file()
    )
    if others:
        raise UserError(
            f"{path}: the folder holds {listed(others, most=3)} beside its Parquet files; a folder's tables are read "
            f"from its Parquet files only: convert it to Parquet, or move it out"
        )


def same_columns(shown: str, first: str, columns: list[str], f: str, names: list[str]) -> None:
    """Refuse a Parquet file `f` of a folder or glob whose columns are not those of its `first` file (in any
    order): read together, the rows of one would lack a column, or a target, that the others hold."""
    if set(names) != set(columns):
        raise UserError(f"{shown}: {f} has other columns than {first}: {sorted(set(names) ^ set(columns))}")


def read_parts(parts: list[str], key: str, path: str) -> pd.DataFrame:
    """A folder's (or a glob's) Parquet files read whole, each holding the first's columns, as a streamed run
    requires of them (in any order: pd.concat lines them up by name)."""
    frames: list[pd.DataFrame] = []
    for f in parts:
        frame = read_frame(Path(f), f"{key}={f}")
        frame.columns = [str(c) for c in frame.columns]  # Parquet allows integer names
        if frames:
            same_columns(f"{key}={path}", parts[0], list(frames[0].columns), f, list(frame.columns))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def kept_parts(path: str, resolved: Path, parts: list[str]) -> dict:
    """What an in-memory run keeps of the files a folder or glob names, as a streamed run keeps its own: data.path
    as an absolute folder or glob ("where", listed again to find a file added since), each file's absolute path
    and its stamp (to read them again from any working directory, and name the one that changed)."""
    glob = any(c in path for c in "*?[")
    where = os.path.abspath(os.path.expanduser(path) if glob else resolved)
    files = [os.path.abspath(f) for f in parts]
    return {"where": where, "files": files, "stamps": [stamp(f) for f in files]}


def parts_digest(files: list[str]) -> str:
    """Of the files' names, sizes and modification times: hashing every byte of a folder of tables is not an
    option."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        size, mtime = stamp(f)
        h.update(f"{f}|{size}|{mtime}\n".encode())
    return h.hexdigest()


def stamp(f: str) -> list[int]:
    """A file's size and modification time (ns): what parts_digest reads of it, and what a streamed run keeps of
    each file to name the one that changed."""
    st = Path(f).stat()
    return [st.st_size, st.st_mtime_ns]
