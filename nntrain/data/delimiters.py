"""How a text file's fields are separated: the delimiter sniffed from its first lines (the one that splits every
line into the same number of fields), and the lines above its header (a title, comments) found by it."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

import pandas as pd

from nntrain.config.data_section import SPACES

DELIMITERS = (",", ";", "\t", "|")
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", SPACES: "space"}


def reader(lines: Iterable[str], sep: str) -> Iterator[list[str]]:
    """The fields of each line as pandas splits them: by `sep`, or (SPACES) by runs of spaces and tabs, leading
    and trailing ones ignored; quotes keep a field's spaces ("New York")."""
    if sep != SPACES:
        return csv.reader(lines, delimiter=sep)
    return csv.reader((line.replace("\t", " ").strip() for line in lines), delimiter=" ", skipinitialspace=True)


def sniff(sample: str, expected: str, whole: bool = True) -> str:
    """The delimiter of a text sample: the one of DELIMITERS that splits every whole line of it into the same
    number of fields (more than one), the most fields winning; the suffix's own where it ties. Where none does,
    runs of spaces (SPACES: columns aligned, as R's write.table and pandas' to_string write them) where they split
    every line alike, or all but the header into one field more (its row names: delimiter() says so); else the
    suffix's own."""
    lines = [line for line in whole_lines(sample, whole) if line.strip()][:200]
    best, most = expected, 1
    for d in sorted(DELIMITERS, key=lambda d: d != expected):
        if (n := _fields(lines, d)) > most:
            best, most = d, n
    if most == 1 and (_fields(lines, SPACES) > 1 or unnamed_first(lines[:2], SPACES, lines[1:])):
        return SPACES
    return best


def whole_lines(sample: str, whole: bool) -> list[str]:
    lines = sample.splitlines()
    return lines if whole else lines[:-1] or lines  # the file's start only: its last line may be cut off


def _fields(lines: list[str], d: str) -> int:
    """The number of fields `d` splits every one of `lines` into; 0 where they differ."""
    try:
        counts = {len(row) for row in reader(lines, d)}
    except csv.Error:
        return 0
    return counts.pop() if len(counts) == 1 else 0


MAX_PREAMBLE = 30  # lines above a header looked through


def preamble(lines: list[str]) -> tuple[int, str | None]:
    """(the lines above the header, a delimiter) where a title, comments or blank lines stand above it: the
    fewest lines after which one delimiter splits every line into the same number of fields (more than one),
    while it splits every line above into fewer; else (0, None)."""
    body = [line for line in lines if line.strip()][:200]
    padded = [d for d in DELIMITERS if _fields(body, d) > 1]
    if padded:
        k = _padded_title(lines, padded[0])
        return (k, padded[0]) if k else (0, None)
    for k in range(1, min(MAX_PREAMBLE, len(lines) - 2) + 1):
        rest, above = [x for x in lines[k:] if x.strip()][:200], [x for x in lines[:k] if x.strip()]
        for d in DELIMITERS:
            n = _fields(rest, d)
            if n > 1 and all(len(row) < n for row in csv.reader(above, delimiter=d)):
                while not lines[k].strip():  # blank lines between them and the header
                    k += 1
                return k, d
    return 0, None


def unnamed_first(lines: list[str], d: str, body: list[str] = ()) -> bool:
    """A header one name short of the row below it (and of every line of `body`), which holds a number: R's row
    names, not a title above it."""
    rows = list(reader(lines, d))
    if len(rows) != 2:
        return False
    numbers = pd.to_numeric(pd.Series(rows[-1][1:]), errors="coerce").notna()
    short = len(rows[0]) == len(rows[1]) - 1 >= 2 and bool(numbers.any())
    return short and (not body or _fields(body, d) == len(rows[1]))


def _padded_title(lines: list[str], d: str) -> int:
    """The lines above the header of a file whose every line has the same fields, as a spreadsheet saved as CSV
    pads a title ("Sales report,,,"): where the first lines fill at most half as many cells as the fullest line
    (a margin column left empty counts in neither), the first line that fills as many as it; else 0."""
    filled = [sum(1 for c in row if c.strip()) for row in csv.reader(lines[: MAX_PREAMBLE + 1], delimiter=d)]
    width = max(filled, default=0)
    for k, cells in enumerate(filled):
        if cells == width:
            return k
        if cells > width / 2:
            return 0
    return 0
