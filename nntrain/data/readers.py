"""The file formats a table comes in, read into a DataFrame: delimited text (its delimiter sniffed: comma,
semicolon, tab or pipe; compressed too; tables.py checks its header and rows and tries the encodings Excel
saves in), Excel (the sheet with most cells), JSON Lines, Parquet and Feather / Arrow IPC. Numbers written as
spreadsheets export them become numbers, said in a note: with a decimal comma ("42,0"), commas grouping
thousands ("1,234.5"), a currency or percent sign ("$12", "12.5%"), among marks of missing values ("?", "-");
where a comma could as well group thousands as mark decimals ("1,299" throughout) and nothing in the file
decides, the reader asks for data.decimal instead of guessing."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nntrain.errors import UserError, listed, quoted

COMPRESSIONS = {
    ".gz": "a gzip-compressed CSV",
    ".bz2": "a bzip2-compressed CSV",
    ".xz": "an xz-compressed CSV",
    ".zip": "a zip holding one CSV",
}
TEXT = {"": ",", ".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}  # suffix: the expected delimiter
DELIMITERS = (",", ";", "\t", "|")
EXCEL = (".xlsx", ".xlsm", ".xls")
JSON_LINES = (".jsonl", ".ndjson")
PARQUET = (".parquet", ".pq")
FEATHER = (".feather", ".arrow", ".ipc")
SAMPLE_BYTES = 1 << 16  # the start of a text file the delimiter is sniffed from
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


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


def read_frame(p: Path, shown: str, options: Options) -> pd.DataFrame:
    """A file other than delimited text as a DataFrame, by its suffix (tables.py reads text with read_text)."""
    kind = kind_of(p)[0]
    if kind in JSON_LINES:
        return _guarded(lambda: pd.read_json(p, lines=True, dtype=False), shown, "JSON Lines (one object a line)")
    if kind in PARQUET:
        return _guarded(lambda: pd.read_parquet(p), shown, "Parquet")
    if kind in FEATHER:
        return _guarded(lambda: pd.read_feather(p), shown, "Feather / Arrow IPC")
    if kind in EXCEL:
        return _read_excel(p, kind, shown, options)
    raise UserError(
        f"{shown}: '{''.join(p.suffixes[-2:]) or p.name}' files are not read; nntrain reads CSV / TSV (compressed "
        f"too), Excel (.xlsx), JSON Lines (.jsonl), Parquet and Feather / Arrow (.feather, .arrow)"
    )


def _guarded(read, shown: str, what: str) -> pd.DataFrame:
    try:
        return read()
    except Exception as e:  # each library raises its own types for a damaged file
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{shown}: cannot read it as {what}: {why}") from None


def _read_excel(p: Path, kind: str, shown: str, options: Options) -> pd.DataFrame:
    engine = "xlrd" if kind == ".xls" else "openpyxl"
    try:
        __import__(engine)
    except ImportError:
        raise UserError(
            f"{shown}: reading {kind} files needs the {engine} package: pip install 'nntrain[excel]' (or save the "
            f"sheet as CSV)"
        ) from None
    book = _guarded(lambda: pd.read_excel(p, sheet_name=None, engine=engine), shown, "an Excel workbook")
    if options.sheet is not None:
        if options.sheet not in book:
            raise UserError(f"data.sheet={options.sheet}: no such sheet in {shown}; its sheets: {listed(list(book))}")
        return book[options.sheet]
    name = max(book, key=lambda k: book[k].size)  # a workbook's notes or legend beside its table
    if len(book) > 1:
        options.notes.append(
            f"{p.name}: read its sheet {quoted(name)}, the largest of {listed(list(book), quote=True)} (data.sheet "
            f"names another)"
        )
    return book[name]


def delimiter(p: Path, options: Options) -> str:
    """data.sep, else the delimiter sniffed from the start of the file (said in a note where it is not the one
    the suffix implies)."""
    if options.sep is not None:
        return options.sep
    kind, compression = kind_of(p)
    sample, whole = _sample(p, compression, options.encoding)
    sep = sniff(sample, TEXT[kind], whole)
    if sep != TEXT[kind]:
        options.notes.append(
            f"{p.name}: fields separated by {NAMES[sep]}s (found from its first lines; data.sep sets it)"
        )
    return sep


def read_text(p: Path, sep: str, options: Options) -> pd.DataFrame:
    """A delimited text file with pandas, then its decimal-comma columns made numbers (unless data.decimal)."""
    decimal, thousands = options.decimal or ".", options.thousands
    if options.decimal == "," and sep != "," and thousands is None:
        thousands = "."  # a decimal comma's file groups thousands with a point, if at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        # dtype={} infers every column as usual; any dict makes pandas 3.1 keep one array per column instead of
        # copying them into one consolidated block at the end, which lowers the peak by a third (888 against
        # 1,226 MiB on a 1M x 50 table)
        frame = pd.read_csv(
            p, sep=sep, decimal=decimal, thousands=thousands, index_col=False, encoding=options.encoding, dtype={}
        )
    if options.decimal is None and _numbers_in_text(frame, p.name, options.notes, sep) == "decimal":
        _points_grouping_thousands(frame, p, sep, options)
    return frame


def sniff(sample: str, expected: str, whole: bool = True) -> str:
    """The delimiter of a text sample: the one of DELIMITERS that splits every whole line of it into the same
    number of fields (more than one), the most fields winning; the suffix's own where none does or it ties."""
    lines = sample.splitlines()
    if whole is False:  # the file's start only: its last line may be cut off
        lines = lines[:-1] or lines
    lines = [line for line in lines if line.strip()][:200]
    best, most = expected, 1
    for d in sorted(DELIMITERS, key=lambda d: d != expected):
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=d)}
        except csv.Error:
            continue
        if len(counts) == 1 and (n := counts.pop()) > most:
            best, most = d, n
    return best


def _sample(p: Path, compression: str, encoding: str = "utf-8") -> tuple[str, bool]:
    """The start of the file as text (decompressed), and whether that is the whole file."""
    if compression == ".zip":
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            if not names:
                return "", True
            with z.open(names[0]) as f:
                raw = f.read(SAMPLE_BYTES + 1)
    else:
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(compression, open)
        with opener(p, "rb") as f:
            raw = f.read(SAMPLE_BYTES + 1)
    text = io.TextIOWrapper(io.BytesIO(raw[:SAMPLE_BYTES]), encoding=encoding, errors="replace", newline="").read()
    return text, len(raw) <= SAMPLE_BYTES


# a number with a decimal comma, its thousands grouped by points, spaces or not: 42,0  -3,75  1.234,5  1 234,5
DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}([. ]\d{3})+|\d+)(,\d+)?([eE][+-]?\d+)?")
# a number with a decimal point, its thousands grouped by commas (or apostrophes, as Swiss tables write them):
# 1,234.5  -12,000  1'234.5  0.5
THOUSANDS_COMMA = re.compile(r"[+-]?(\d{1,3}([,']\d{3})+|\d+)(\.\d+)?([eE][+-]?\d+)?")
# a comma that may group thousands as well as mark decimals (1,299; never 0,299 nor 1,2999)
EITHER = re.compile(r"[+-]?[1-9]\d{0,2},\d{3}")
# Beside a number: currency signs and a percent sign (dropped: 12.5% is 12.5), and the spaces that group
# thousands in French tables (non-breaking, thin); missing-value marks beyond pandas' own NA, NULL, ...
SIGNS = r"[$€£¥%\u00a0\u202f\u2009]"
MARKS = ("?", "-", "--", ".", "n.a.", "N.A.", "na", "#N/A", "#VALUE!", "#DIV/0!")


def _numbers_in_text(frame: pd.DataFrame, name: str, notes: list[str], sep: str) -> str | None:
    """Text columns whose every value is a number written with a decimal comma, or with commas grouping its
    thousands, or with a currency or percent sign, become numbers, in place, with a note; so do numbers among
    missing-value marks (?, -). Where every comma may group thousands as well (1,299), another column of the
    file decides (1.234,5 or 1,234.5), else a comma-separated file's comma groups thousands (a file whose
    decimals are commas separates its fields otherwise), else the reader refuses. Returns what the file's commas
    are, where it shows: decimal or thousands."""
    found: dict[str, list[str]] = {"decimal": [], "thousands": [], "signs": []}
    unsure, marked = [], {}
    for col in frame.columns:
        s = frame[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        head = _cleaned(s.dropna().head(100))  # a text column (names, levels) fails here already
        head = head[~head.isin(MARKS)]
        if head.empty or not (head.str.fullmatch(DECIMAL_COMMA) | head.str.fullmatch(THOUSANDS_COMMA)).all():
            continue
        values = _cleaned(s)
        marks = values.isin(MARKS)
        kind = _comma_kind(values[values.notna() & ~marks])
        if kind is None:
            continue
        if kind == "either":
            unsure.append(col)
            continue
        frame[col] = _as_number(values.mask(marks), kind)
        if kind != "plain" or (values != s.astype("string").str.strip()).any():
            found["signs" if kind == "plain" else kind].append(col)
        if marks.any():
            marked[col] = sorted(values[marks].unique())
    decided = "decimal" if found["decimal"] and not found["thousands"] else "thousands" if found["thousands"] else None
    decided = decided or ("thousands" if sep == "," else None)
    if unsure and decided is None:
        col = unsure[0]
        value = frame[col][_cleaned(frame[col]).str.fullmatch(EITHER).fillna(False)].iloc[0]
        raise UserError(
            f"{name}: column {quoted(col)} holds numbers such as {quoted(value)} whose comma is a decimal mark or a "
            f"thousands separator: set data.decimal=',' (decimal) or data.thousands=',' (thousands)"
        )
    for col in unsure:
        values = _cleaned(frame[col])
        marks = values.isin(MARKS)
        frame[col] = _as_number(values.mask(marks), decided)
        found[decided].append(col)
        if marks.any():
            marked[col] = sorted(values[marks].unique())
    _said(found, marked, name, notes)
    return decided


def _points_grouping_thousands(frame: pd.DataFrame, p: Path, sep: str, options: Options) -> None:
    """In a file whose decimals are commas, a column of numbers with points (1.234, 12.345, 1.234.567; pandas
    reads the first two as decimals) groups thousands with them where every point has three digits after it:
    read again as text, made numbers so."""
    maybe = [c for c in frame.columns if frame[c].dtype.kind == "f" or pd.api.types.is_string_dtype(frame[c].dtype)]
    if not maybe:
        return
    raw = pd.read_csv(p, sep=sep, usecols=maybe, dtype=str, index_col=False, encoding=options.encoding)
    grouped = []
    for col in maybe:
        values = raw[col].dropna().str.strip()
        if (
            values.str.contains(".", regex=False).any()
            and values.str.fullmatch(r"[+-]?[1-9]\d{0,2}(\.\d{3})+|[+-]?\d+").all()
        ):
            frame[col] = pd.to_numeric(raw[col].str.strip().str.replace(".", "", regex=False)).astype("float64")
            grouped.append(col)
    if grouped:
        options.notes.append(
            f"{p.name}: {listed(grouped, most=8, quote=True)} read as numbers whose points group thousands (1.234 is "
            f"1234, as in the file's numbers with decimal commas; data.decimal='.' reads them as decimals)"
        )


def _cleaned(s: pd.Series) -> pd.Series:
    """Without signs and outer spaces; an accountant's negative in parentheses, (1,234.5), with a minus."""
    text = s.astype("string").str.replace(SIGNS, "", regex=True).str.strip()
    return text.str.replace(r"^\((.+)\)$", r"-\1", regex=True)


def _comma_kind(values: pd.Series) -> str | None:
    """decimal (1.234,5), thousands (1,234.5), either (1,299 throughout), plain (12 once its signs are left
    out), or None: not numbers."""
    if values.empty:
        return None
    comma = values.str.contains(",", regex=False)
    if values.str.fullmatch(DECIMAL_COMMA).all() and comma.any():
        return "either" if values[comma].str.fullmatch(EITHER).all() else "decimal"
    if values.str.fullmatch(THOUSANDS_COMMA).all():
        return "thousands" if values.str.contains(r"\d[,']\d").any() else "plain"
    return None


def _as_number(values: pd.Series, kind: str) -> pd.Series:
    if kind == "decimal":
        values = values.str.replace(r"[. ]", "", regex=True).str.replace(",", ".", regex=False)
    else:
        values = values.str.replace(r"[,']", "", regex=True)
    return pd.to_numeric(values).astype("float64")


def _said(found: dict[str, list[str]], marked: dict[str, list[str]], name: str, notes: list[str]) -> None:
    if found["decimal"]:
        notes.append(
            f"{name}: {listed(found['decimal'], most=8, quote=True)} read as numbers written with a decimal comma "
            f"(data.decimal=',' says so; data.decimal='.' keeps them as text)"
        )
    if found["thousands"]:
        notes.append(
            f"{name}: {listed(found['thousands'], most=8, quote=True)} read as numbers whose commas group "
            f"thousands (1,234.5; data.thousands=',' says so; data.decimal='.' keeps them as text)"
        )
    if found["signs"]:
        notes.append(
            f"{name}: {listed(found['signs'], most=8, quote=True)} read as numbers without their currency or "
            f"percent signs (12.5% is 12.5; data.decimal='.' keeps them as text)"
        )
    for col, marks in marked.items():
        notes.append(f"{name}: column {quoted(col)}: {listed(marks, quote=True)} read as missing")


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
        return files
    return None


def parts_digest(files: list[str]) -> str:
    """Of the files' names, sizes and modification times: hashing every byte of a folder of tables is not an
    option."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        st = Path(f).stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
