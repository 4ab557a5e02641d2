"""A message about a row of one chunk of a Parquet file (a streamed run's, or predict's of a folder) told of the
file and its row there."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nntrain.data.columns import Report
from nntrain.data.encoding import encode_table
from nntrain.data.tables import Table
from nntrain.errors import UserError


def encoded_chunk(rows: Table, prep: dict, whole: Callable[[], tuple[int, Table, str]]) -> Any:
    """Some rows of a chunk encoded; a bad value is named by its file and row there, `whole()` giving (the
    chunk's first row in its file, the chunk, the file)."""
    try:
        return encode_table(rows, prep, "data.path", Report(), part=True)
    except UserError as e:
        first, chunk, file = whole()
        raise in_chunk(e, chunk, prep, file, first) from None


ROW = re.compile(r"\brow (\d+)\b")  # where() writes a row of a table without line numbers (Parquet) so


def in_chunk(error: UserError, whole: Table, prep: dict, file: str, first: int) -> UserError:
    """A UserError met encoding some rows of a chunk of a Parquet file (from its row `first` + 1), told of the
    file and the row there: the whole chunk encoded again, its rows in place, meets the first bad one."""
    try:
        encode_table(whole, prep, "data.path", Report(), every_row=True, part=True)
    except UserError as again:
        return in_file(again, file, first)
    return error


def in_file(error: UserError, file: str, first: int) -> UserError:
    """A UserError met on a chunk of a Parquet file (from its row `first` + 1) whose message names a row of the
    chunk ("row 6"), told of the file and the row there ("p2.parquet, row 306"); else the error as it is."""
    text = str(error)
    m = ROW.search(text)
    return UserError(f"{text[: m.start()]}{file}, row {first + int(m[1]):,}{text[m.end() :]}") if m else error
