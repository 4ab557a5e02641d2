"""A column's raw values, read the same way when the preprocessing is fitted (fitting.py) and when it is
applied (encoding.py): numbers out of text, a date column's parts, level names, and what encoding reads as
unknown (Report). Below both, so the walk from a table to its matrix goes down, never back and forth."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from nntrain.data import dates, durations
from nntrain.data.tables import where
from nntrain.errors import UserError, listed, quoted

# Spellings of true and false (case aside): a column holding nothing else is one 1/0 column (is_flag_column), not a
# level per spelling; any numeric column reads read_csv's TRUE / FALSE (FLAGS) as 1 and 0.
TRUTHS = {"true": 1.0, "t": 1.0, "yes": 1.0, "y": 1.0, "1": 1.0, "false": 0.0, "f": 0.0, "no": 0.0, "n": 0.0, "0": 0.0}
FLAGS = {k: TRUTHS[k] for k in ("true", "false")}
SPELLED = "yes/no, y/n, true/false, t/f, 1/0"
MISSING = "(missing)"  # the level a missing string becomes under data.impute: auto


def py(v: Any) -> Any:
    """numpy scalars -> Python scalars, so they survive weights_only loading and JSON."""
    return v.item() if hasattr(v, "item") else v


def numeric_column(s: pd.Series, header_line: int) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    as_num = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    bad = as_num.isna() & s.notna()
    if bad.any():  # TRUE / FALSE with a blank (pandas keeps Python bools) or as text: 1 and 0, as read_csv reads them
        flags = truth_values(s, FLAGS)
        as_num, bad = as_num.fillna(flags), bad & flags.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"column {quoted(s.name)}: {quoted(s.iloc[i])} at {where(header_line, i)} is not a number")
    return as_num.to_numpy(dtype=np.float64, na_value=np.nan)


def truth_values(s: pd.Series, spellings: dict[str, float] = TRUTHS) -> pd.Series:
    """Each value as 1.0 (true: a bool, 1, or a spelling of it), 0.0 (false) or NaN (missing, or none of them);
    each distinct value looked at once."""
    idx, uniques = pd.factorize(s)
    read = np.array([_truth(v, spellings) for v in uniques] + [np.nan], dtype=np.float64)  # [-1]: missing
    return pd.Series(read[idx], index=s.index, name=s.name)


def _truth(v: Any, spellings: dict[str, float]) -> float:
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.number)) and v in (0, 1)):
        return float(v)
    return spellings.get(v.strip().casefold(), np.nan) if isinstance(v, str) else np.nan


def is_flag_column(s: pd.Series) -> bool:
    """True and false alone, however spelled (yes, Y, TRUE, t and 1 beside them; case aside), and both: one 1/0
    column, not a level per spelling. A column of numbers is none: 0 and 1 are a number's already."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return False
    read = truth_values(s)
    return bool(read.notna().sum() == s.notna().sum() and read.nunique() == 2)


def flag_column(s: pd.Series, header_line: int) -> np.ndarray:
    """A true/false column (is_flag_column in training) as 1 and 0, however each row spells it (predict's Y where
    training wrote yes); a missing value NaN, any other value an error naming its row."""
    read = truth_values(s)
    bad = (read.isna() & s.notna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        at = where(header_line, i)
        raise UserError(f"column {quoted(s.name)}: {quoted(s.iloc[i])} at {at} is not true or false ({SPELLED})")
    return read.to_numpy(dtype=np.float64)


def flag_note(s: pd.Series) -> list[str]:
    """fit's note on a column read as true/false, with the spellings it holds; none for a bool column (pandas')."""
    if pd.api.types.is_bool_dtype(s):
        return []
    read = truth_values(s)
    said = {
        side: listed(sorted({str(v).strip() for v in pd.unique(s[read == side])}), quote=True) for side in (1.0, 0.0)
    }
    return [
        f"column {quoted(s.name)} read as true/false, one 1/0 column (true: {said[1.0]}; false: {said[0.0]}); "
        f"data.categorical: [{s.name}] keeps each spelling a level"
    ]


def check_finite(v: np.ndarray, col: str, header_line: int) -> None:
    bad = np.isinf(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"column '{col}': infinite value {v[i]} at {where(header_line, i)}; fix or remove that row")


def distinct(names: list[str]) -> list[str]:
    """The matrix's column names, refused where two are one: a table's column named as nntrain names a part of
    another (`when.month` beside a date column `when`, `a.missing` beside a's missing-value indicator)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(
                f"column {quoted(name)}: nntrain gives that name to a part of another column (a date's part, a "
                "missing-value indicator or a level), and the table has a column of that name too; rename it or "
                "leave one out (data.drop)"
            )
        seen.add(name)
    return names


def source_names(prep: dict, col: str) -> list[str]:
    """A column's numeric sources: itself if numeric, its kept parts if a date, none otherwise."""
    kind = prep["kinds"][col]
    if kind == "date":
        return [dates.part_name(col, p) for p in prep["dates"][col]["parts"]]
    return [col] if kind == "numeric" else []


def numeric_names(prep: dict) -> list[str]:
    """The numeric sources, in the matrix's order: numeric columns, and each date column's kept parts."""
    return [name for col in prep["columns"] for name in source_names(prep, col)]


def raw_sources(df: pd.DataFrame, prep: dict, header_line: int, report: Report) -> dict[str, np.ndarray]:
    """Every numeric source before imputation, by name: numeric columns, and each date column's kept parts."""
    out = {}
    for col in prep["columns"]:
        kind = prep["kinds"][col]
        if kind == "numeric" and col in prep.get("durations", ()):
            out[col] = durations.seconds(df[col], header_line)
        elif kind == "numeric" and col in prep.get("flags", ()):
            out[col] = flag_column(df[col], header_line)
        elif kind == "numeric":
            out[col] = numeric_column(df[col], header_line)
        elif kind == "date":
            out.update(date_parts(df[col], prep, header_line, report))
    return out


def date_parts(s: pd.Series, prep: dict, header_line: int, report: Report) -> dict[str, np.ndarray]:
    col, fitted = str(s.name), prep["dates"][str(s.name)]
    secs = dates.seconds(s, fitted.get("order", "iso"), local=fitted.get("clock") == "local")  # older runs: UTC
    bad = dates.unreadable(s, secs)
    if bad.any():
        report.unseen(s, bad, header_line, "read as missing dates", what="not a date")
    parts = dates.parts(secs, fitted["origin"])
    out = {dates.part_name(col, p): parts[p] for p in fitted["parts"]}
    out[col] = secs  # its missing places feed the indicator column, where it has one
    return out


UNSEEN_ROWS = "row(s) with a value"
EVERY_ROW = "missing in every one of the"
# Report's notes read back: what they are about, their rows, the rest; `then` (what encoding did) has no ";"
UNSEEN_NOTE = re.compile(rf"(column .+?: )([\d,]+)( {re.escape(UNSEEN_ROWS)} .+?)(, such as .*)(; [^;]*)")
ABSENT_NOTE = re.compile(rf"(column\(s\) .+: {EVERY_ROW} )([\d,]+)( row\(s\), though .*)")


def _counted(note: str) -> tuple[tuple, int, Callable[[int], str]]:
    """(what the note is about, the rows it counts, the note with another count) of one of Report's notes."""
    if m := UNSEEN_NOTE.fullmatch(note):
        return ("unseen", m[1], m[3], m[5]), int(m[2].replace(",", "")), lambda n: f"{m[1]}{n:,}{m[3]}{m[4]}{m[5]}"
    if m := ABSENT_NOTE.fullmatch(note):
        return ("absent", m[1], m[3]), int(m[2].replace(",", "")), lambda n: f"{m[1]}{n:,}{m[3]}"
    return ("note", note), 0, lambda n: note


def summed_notes(chunks: list[list[str]]) -> list[str]:
    """Each chunk's notes (predict of a Parquet folder, a chunk at a time) as one input's: an unseen value's
    rows added up (the first chunk's example), a column missing in every row said only where it was in every
    chunk, each other note once."""
    made: dict[tuple, Callable[[int], str]] = {}
    rows: dict[tuple, int] = {}
    times: dict[tuple, int] = {}
    for note in (n for notes in chunks for n in dict.fromkeys(notes)):
        key, n, make = _counted(note)
        made.setdefault(key, make)
        rows[key], times[key] = rows.get(key, 0) + n, times.get(key, 0) + 1
    return [make(rows[k]) for k, make in made.items() if k[0] != "absent" or times[k] == len(chunks)]


def refuse_absent(notes: list[str]) -> None:
    """--strict on an input read a chunk at a time (CHUNK_STRICT): summed_notes' note of a column missing in every
    row of every chunk refused, as one input's Report refuses it."""
    for note in notes:
        if m := ABSENT_NOTE.fullmatch(note):
            raise UserError(f"{m[1]}{m[2]} row(s) (--strict)")


# Report's strict for one chunk of an input read a chunk at a time (predict of a Parquet folder): a value encoding
# reads as unknown is refused at once, a column missing in every row of the chunk is a note, refused at the end
# only where every chunk said it (refuse_absent): the other chunks may hold its values.
CHUNK_STRICT = "chunk"


@dataclasses.dataclass
class Report:
    """Values encoding reads as unknown (a level never seen in training, text in a date column) and columns
    missing in every new row: said in notes, or an error under strict (--strict)."""

    strict: bool | str = False  # or CHUNK_STRICT
    notes: list[str] = dataclasses.field(default_factory=list)
    empty: set = dataclasses.field(default_factory=set)  # columns absent() said are missing in every row

    def unseen(self, s: pd.Series, rows: np.ndarray, header_line: int, then: str, what: str = "never seen in training"):
        """`rows` of column `s` hold such values; `then` says what encoding did with them."""
        if s.name in self.empty:  # said once already: every row is missing, which the fill stands for
            return
        i = int(np.flatnonzero(rows)[0])
        example, col = MISSING if pd.isna(s.iloc[i]) else s.iloc[i], s.name
        if self.strict:
            at = where(header_line, i)
            raise UserError(f"column {quoted(col)}: value {quoted(example)} at {at}: {what} (--strict)")
        self.notes.append(
            f"column {quoted(col)}: {int(rows.sum()):,} {UNSEEN_ROWS} {what}, such as {quoted(example)}; {then}"
        )

    def absent(self, df: pd.DataFrame, columns: list[str]) -> None:
        """Columns of new rows that are missing in every row, which each had values in training: every row takes
        the column's fill (data.impute), so the predictions rest on the other columns alone."""
        empty = [c for c in columns if len(df) and df[c].isna().all()]
        if not empty:
            return
        self.empty.update(empty)
        which = f"column(s) {listed(empty, quote=True)}: {EVERY_ROW} {len(df):,} row(s)"
        if self.strict and self.strict != CHUNK_STRICT:
            raise UserError(f"{which} (--strict)")
        self.notes.append(
            f"{which}, though they had values in training; each row takes the training fill (data.impute), so the "
            f"predictions rest on the other columns alone"
        )


# numpy releases the GIL over a whole column, so on big tables the per-column work runs on every core.
THREADS = os.cpu_count() or 1


PARALLEL_ROWS = 100_000


def row_parts(n_rows: int) -> int:
    """How many threads work on a table of n_rows: THREADS from PARALLEL_ROWS rows on, else one."""
    return THREADS if n_rows >= PARALLEL_ROWS else 1


def map_rows(fn: Callable, items: Iterable, n_rows: int) -> list:
    """[fn(x) for x in items], on THREADS threads for tables of PARALLEL_ROWS rows or more; the first error in
    item order is raised, as a plain loop would."""
    if n_rows < PARALLEL_ROWS or THREADS == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, items))


def categories(s: pd.Series) -> pd.Series:
    """Category names as strings, vectorized; 3 and 3.0 are the same zone. Integers are named as they are,
    never through float64 (19-digit codes would merge into one level no row holds)."""
    if pd.api.types.is_integer_dtype(s):
        out = s.astype(str).astype(object)
        out[s.isna().to_numpy()] = "nan"  # a nullable Int column's missing value, as a float column names it
        return out
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype(np.float64)
        integral = v.notna() & (v == v.round()) & (v.abs() < 2.0**63)
        out = v.astype(str).astype(object)
        out[integral] = v[integral].astype(np.int64).astype(str)
        return out
    return s.astype(str).str.strip()  # "red " typed beside "red" in a sheet is one level


def without_outer_spaces(s: pd.Series) -> pd.Series:
    """A column's text values without outer spaces ("yes " beside "yes" is one class), a blank one missing; its
    other values (numbers, dates) as they are."""
    if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
        return s
    text = s.str.strip()  # NaN where a value is no text
    return text.where(text.notna(), s).replace("", np.nan)


def case_spellings(counts: pd.Series) -> tuple[dict[str, str], list[list[str]]]:
    """Of text levels' row counts, those that differ only in case ('yes', 'Yes', 'YES' in a hand-typed sheet):
    (each other spelling: the most common one, where they have two letters or more; the one-letter groups, K and k,
    which stay apart: a chess piece's side, where the case is the value)."""
    counts = counts[[isinstance(v, str) for v in counts.index]]  # each level once, not each row
    merged, kept = {}, []
    if counts.empty:
        return merged, kept
    for _, group in counts.groupby(counts.index.str.casefold(), sort=True):
        spellings = sorted(group.index, key=lambda v: (-group[v], v))  # the most common first
        if len(spellings) > 1 and len(spellings[0]) == 1:
            kept.append(spellings)
        elif len(spellings) > 1:
            merged.update(dict.fromkeys(spellings[1:], spellings[0]))
    return merged, kept


def said_by_case(merged: dict[str, str]) -> str:
    """'yes' (also 'Yes', 'YES'), ... for a note."""
    groups = {one: [v for v, to in merged.items() if to == one] for one in dict.fromkeys(merged.values())}
    return ", ".join(f"{quoted(one)} (also {listed(others, quote=True)})" for one, others in sorted(groups.items()))


def labels_by_case(y: pd.Series, notes: list[str]) -> pd.Series:
    """A text target's labels that differ only in case as one class (case_spellings), with a note; one-letter ones
    apart, with a warning."""
    if not (y.dtype == object or pd.api.types.is_string_dtype(y)):
        return y
    merged, kept = case_spellings(y.value_counts())
    named = f"column {quoted(y.name)} (the target)"
    for spellings in kept:
        notes.append(
            f"warning: {named}: labels {' and '.join(map(quoted, spellings))} differ only in case; kept as "
            f"{len(spellings)} classes (one letter: its case may be the label)"
        )
    if not merged:
        return y
    notes.append(f"{named}: labels that differ only in case read as one class each: {said_by_case(merged)}")
    return y.replace(merged)


def levels_by_case(counts: pd.Series, col: str, notes: list[str]) -> pd.Series:
    """A column's training levels' row counts with the levels that differ only in case as one (case_spellings),
    with a note; encoding reads each spelling as that level."""
    merged, _ = case_spellings(counts)
    if not merged:
        return counts
    notes.append(f"column {quoted(col)}: levels that differ only in case read as one each: {said_by_case(merged)}")
    return counts.rename(index=merged).groupby(level=0).sum()


def text_columns(prep: dict) -> tuple[str, ...]:
    """The columns (the target too) whose training values were text, by their levels: a level that is no number,
    or one a number would be named otherwise (03, 1.50). A new file is read with these kept as text, or pandas
    would read its 03 as 3, a level never seen, where the training file had X beside it. True and False are
    no text: pandas reads TRUE / FALSE as them, in a new file as in the training file."""
    levels = {c: prep["categories"][c] + list(prep.get("rare", {}).get(c, [])) for c in prep.get("categories", {})}
    if prep["task"] != "regression":
        levels[prep["target"]] = [str(c) for c in prep["classes"]]
    return tuple(c for c, named in levels.items() if _any_text(pd.Series(named, dtype=object)))


def _any_text(levels: pd.Series) -> bool:
    levels = levels[~levels.isin([MISSING, "nan", "True", "False"])]
    number = pd.to_numeric(levels, errors="coerce")
    return bool((number.isna() | (categories(number) != levels)).any())
