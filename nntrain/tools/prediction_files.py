"""Predictions written to a file in the format its suffix names (predict -o): CSV (also for no suffix or an unknown
one), TSV, Parquet, Feather, Excel and JSON Lines, text and JSON Lines compressed too; a table format nntrain
cannot write is refused before any work."""

from __future__ import annotations

import bz2
import functools
import gzip
import json
import lzma
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nntrain.data.readers import FEATHER, JSON_LINES, PARQUET, TEXT
from nntrain.errors import UserError, first_line
from nntrain.tools.inference import spreadsheet_safe

# -o's suffix names the format predictions are written in, by the suffixes data/readers.py reads: delimited
# text (no suffix, or another, is CSV), Parquet, Feather, .xlsx, JSON Lines, and text or JSON Lines compressed
ARROW = {**dict.fromkeys(PARQUET, "Parquet"), **dict.fromkeys(FEATHER, "Feather")}
PACKED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
NOT_WRITTEN = (".xls", ".xlsm", ".xlsb", ".ods", ".json", ".zip", ".orc", ".avro", ".h5", ".hdf5", ".pkl", ".pickle")
WRITTEN = ".csv, .tsv, .parquet, .feather, .xlsx or .jsonl file (.csv.gz, .jsonl.gz: compressed)"
Writer = Callable[[Any, Iterable[pd.DataFrame]], int]


def prediction_writer(path: Path | None, raw: bool = False) -> Writer:
    """How predictions go to `path` (None: CSV to stdout), checked before any work: write(f, frames) writes
    the frames (one, or a chunk at a time) to the open file f and gives the rows written. CSV, TSV and Excel
    cells that a spreadsheet would run as formulas are escaped (spreadsheet_safe) unless `raw`."""
    suffixes = [s.lower() for s in (path.suffixes[-2:] if path is not None else [])]
    packed = suffixes.pop() if suffixes and suffixes[-1] in PACKED else ""
    kind = suffixes[-1] if suffixes else ""
    if kind in NOT_WRITTEN or (packed and (kind in ARROW or kind == ".xlsx")):
        raise UserError(f"-o {path}: nntrain does not write {kind}{packed} files; name a {WRITTEN}")
    if kind in ARROW:
        return functools.partial(_write_arrow, path=path, kind=ARROW[kind])
    if kind == ".xlsx":
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            raise UserError(f"-o {path}: writing .xlsx needs openpyxl: pip install 'nntrain[excel]'") from None
        return functools.partial(_write_excel, path=path, raw=raw)
    if kind in JSON_LINES:
        write: Writer = _write_jsonl
    else:
        write = functools.partial(_write_text, sep=TEXT.get(kind, ","), raw=raw)
    return functools.partial(_packed, write=write, packed=PACKED[packed], name=path.name) if packed else write


def _packed(f: Any, frames: Iterable[pd.DataFrame], write: Writer, packed: Callable, name: str) -> int:
    # gzip stores a file name in its header (what `gunzip -N` restores): the target's, not the temporary file's
    # that is written and then renamed to it
    with gzip.GzipFile(name, "wb", fileobj=f) if packed is gzip.open else packed(f, "wb") as out:
        return write(out, frames)


def _write_text(f: Any, frames: Iterable[pd.DataFrame], sep: str, raw: bool) -> int:
    written = 0
    for i, frame in enumerate(frames):
        (frame if raw else spreadsheet_safe(frame)).to_csv(f, sep=sep, index=False, header=i == 0)
        written += len(frame)
    return written


def _write_jsonl(f: Any, frames: Iterable[pd.DataFrame]) -> int:
    """One JSON object a row. Floats are written in full (their shortest exact form; DataFrame.to_json keeps
    10 decimals at most), missing or infinite ones as null; other columns as to_json writes them."""
    written = 0
    for frame in frames:
        floats = {
            c: frame[c].to_numpy(dtype=float, na_value=math.nan)
            for c in frame.columns
            if pd.api.types.is_float_dtype(frame[c])
        }
        others = frame.drop(columns=list(floats)).to_json(orient="records", lines=True, force_ascii=False)
        rows = [json.loads(line) for line in others.splitlines()] if others.strip() else [{}] * len(frame)
        lines = []
        for i, row in enumerate(rows):
            record = {c: _number(floats[c][i]) if c in floats else row[c] for c in frame.columns}
            lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
        f.write("".join(lines).encode())
        written += len(frame)
    return written


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _write_arrow(f: Any, frames: Iterable[pd.DataFrame], path: Path, kind: str) -> int:
    """Parquet or Feather (Arrow IPC), a chunk at a time, in the first chunk's column types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink, schema, written = None, None, 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if sink is None:
                schema = table.schema
                sink = pq.ParquetWriter(f, schema) if kind == "Parquet" else pa.ipc.new_file(f, schema)
            sink.write_table(table)
            written += len(frame)
    except (pa.ArrowException, TypeError, ValueError) as e:  # labels of mixed types, say
        raise UserError(f"-o {path}: cannot write it as {kind}: {first_line(e)}; name a .csv file") from None
    finally:
        if sink is not None:
            sink.close()
    return written


def _write_excel(f: Any, frames: Iterable[pd.DataFrame], path: Path, raw: bool) -> int:
    """One sheet, `predictions`; a sheet holds at most 1,048,576 rows (the header's among them)."""
    written = 0
    with pd.ExcelWriter(f, engine="openpyxl") as book:
        for i, frame in enumerate(frames):
            try:
                (frame if raw else spreadsheet_safe(frame)).to_excel(
                    book, sheet_name="predictions", startrow=written + (i > 0), header=i == 0, index=False
                )
            except ValueError as e:  # a sheet too large; a character openpyxl refuses
                raise UserError(f"-o {path}: cannot write it as Excel: {first_line(e)}; name a .csv file") from None
            written += len(frame)
    return written
