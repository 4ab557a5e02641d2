"""Numbers written as spreadsheets export them, in a text file's columns that pandas left as text: with a
decimal comma (42,0; 1.234,5), commas or apostrophes grouping thousands (1,234.5; 1'234.5), a currency or percent
sign ($12, 12.5%), an accountant's parentheses for a negative ((1,234)), among marks of missing values (?, -).
readers.py calls it on every delimited file it reads, unless data.decimal is given. Also what else such an export
holds: a total row, empty columns with no name, a header repeated below (files joined), a quoted cell across
lines."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pandas as pd

from nntrain.errors import UserError, listed, quoted

# a number with a decimal comma, its thousands grouped by points, spaces or not: 42,0  -3,75  1.234,5  1 234,5
DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}([. ]\d{3})+|\d+)(,\d+)?([eE][+-]?\d+)?")
# a number with a decimal point, its thousands grouped by commas (or apostrophes, as Swiss tables write them):
# 1,234.5  -12,000  1'234.5  0.5, and Indian grouping (lakhs, crores): 1,23,456.5
THOUSANDS_COMMA = re.compile(r"[+-]?(\d{1,3}([,']\d{3})+|\d{1,2}(,\d{2})+,\d{3}|\d+)(\.\d+)?([eE][+-]?\d+)?")
# a comma that may group thousands as well as mark decimals (1,299; never 0,299 nor 1,2999)
EITHER = re.compile(r"[+-]?[1-9]\d{0,2},\d{3}")
# Beside a number: currency signs and a percent sign (dropped: 12.5% is 12.5), and the spaces that group
# thousands in French tables (non-breaking, thin); missing-value marks beyond pandas' own NA, NULL, ...
SIGNS = "$€£¥₹%\u00a0\u202f\u2009"
# The ISO codes of the currencies tables most often hold, before or after an amount (CHF 1'299, 1,299.00 USD);
# letters that name no currency (ABC 12) leave a column text
_CODES = "USD|EUR|GBP|CHF|JPY|CNY|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|INR|BRL|MXN|ZAR|HKD|SGD|KRW|TRY|RUB"
CURRENCY_CODE = re.compile(rf"^(?:{_CODES})\s*|\s*(?:{_CODES})$")
# A cell of spaces is one too ("" once stripped; pandas reads only an empty one as missing), and so are a report's
# dashes (en, em): else one such cell turns a column of numbers into categories.
MARKS = ("?", "-", "--", ".", "n.a.", "N.A.", "na", "#N/A", "#VALUE!", "#DIV/0!", "", "\u2013", "\u2014")
# A whole number written with a leading zero (02134, 007, 01) is a code or a label: as a number it loses its
# zeros, and the labels 01 and 1 become one class. 0 itself, 0.5 and a zero-padded amount (000123.45) are numbers.
ZERO_LED = r"\s*0\d+\s*$"
# counts written short, as web pages and exports show them: 1.2k, 450K, 3M, 2.5B (M and B capital: 5m is minutes)
SUFFIXED = re.compile(r"[+-]?(\d+(\.\d+)?|\.\d+) ?[kKMB]?")
SCALES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}


def marks_among_labels(y: pd.Series, classes: list | None = None) -> pd.Series:
    """Where a text target holds a missing-value mark (?, -, #N/A) that is no class: fit's, among labels with a
    letter or digit (yes, no, ?; a target of signs alone, + and -, keeps them as classes); eval's, a mark that is
    none of the run's `classes`."""
    if not (y.dtype == object or pd.api.types.is_string_dtype(y.dtype)):
        return pd.Series(False, index=y.index)
    marked = y.isin(MARKS)
    if classes is not None:
        return marked & ~y.isin([str(c) for c in classes])
    labels = pd.Series(y[~marked].dropna().unique()).astype(str)
    return marked & bool(labels.str.contains(r"[^\W_]", regex=True).any())


def zero_led(values: pd.Series) -> pd.Series:
    """Whether each value, as text, is a whole number written with a leading zero before another digit."""
    return values.astype("string").str.match(ZERO_LED).fillna(False).astype(bool)


def zeros_kept(s: pd.Series, then: str, role: str = "") -> str:
    """fit's note on a column of numbers written with leading zeros, kept as text, and `then` read so."""
    first = str(s[zero_led(s).to_numpy()].iloc[0]).strip()
    return (
        f"column {quoted(s.name)}{role}: numbers written with leading zeros (such as {quoted(first)}) kept as text, "
        f"as written: {then}"
    )


def numbers_in_text(
    frame: pd.DataFrame, name: str, notes: list[str], sep: str, before: str | None = None, keep: tuple = ()
) -> str | None:
    """Text columns whose every value is a number written with a decimal comma, or with commas grouping its
    thousands, or with a currency or percent sign, become numbers, in place, with a note; so do numbers among
    missing-value marks (?, -). Columns in `keep` stay text, and so do those with a value written with a leading
    zero (02134). Where every comma may group thousands as well
    (1,299), another column of the file decides (1.234,5 or 1,234.5), else `before` (what the training file's
    commas were), else a comma-separated file's comma groups thousands (a file whose decimals are commas
    separates its fields otherwise), else the reader refuses. Returns what the file's commas are (decimal or
    thousands) where its numbers show it or decide it, else None."""
    found: dict[str, list[str]] = {"decimal": [], "thousands": [], "signs": [], "suffixes": []}
    unsure, marked = [], {}
    for col in frame.columns:
        s = frame[col]
        if col in keep or not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        head = _cleaned(s.dropna().head(100))  # a text column (names, levels) fails here already
        head = head[~head.isin(MARKS)]
        if head.empty or not (head.str.fullmatch(DECIMAL_COMMA) | head.str.fullmatch(THOUSANDS_COMMA)).all():
            if not head.empty and head.str.fullmatch(SUFFIXED).all():
                _suffixed(frame, col, found, marked)
            continue
        values = _cleaned(s)
        marks = values.isin(MARKS)
        kind = _comma_kind(values[values.notna() & ~marks])
        if kind is None or zero_led(values).any():  # codes (02134): kept text, as written
            continue
        if kind == "either":
            unsure.append(col)
            continue
        frame[col] = _as_number(values.mask(marks), kind)
        if kind != "plain" or (values != s.astype("string").str.strip()).any():
            found["signs" if kind == "plain" else kind].append(col)
        if marks.any():
            marked[col] = sorted(values[marks].unique())
    shown = "decimal" if found["decimal"] and not found["thousands"] else "thousands" if found["thousands"] else None
    decided = shown or before or ("thousands" if sep == "," else None)
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
    return shown or (decided if unsure else None)


# A spreadsheet's total (or mean) below its rows, labelled in one of its cells
MEAN = re.compile(r"mean|average|avg\.?|mittelwert|durchschnitt|moyenne", re.IGNORECASE)
TOTAL = re.compile(rf"(grand |sub)?totals?:?|sum|summe|gesamt|total g[ée]n[ée]ral|{MEAN.pattern}", re.IGNORECASE)


def without_total(frame: pd.DataFrame, name: str, notes: list[str], said: list[str] | None = None) -> pd.DataFrame:
    """The frame without its last rows where a text cell of each labels it a total or a mean (Total, Sum, Average;
    up to 3: a total above a mean) and no other row of that column holds the label, with a note: such a row is no
    row of data. A column the label alone kept text becomes numbers again. At predict (`said`: its warnings) the
    rows are the user's, each to predict: the last row is kept, with a warning, its label a missing value in a
    column of numbers."""
    for _ in range(1 if said is not None else 3):
        frame, found = _one_total(frame, name, notes, said)
        if not found:
            break
    return frame


def _one_total(frame: pd.DataFrame, name: str, notes: list[str], said: list[str] | None) -> tuple[pd.DataFrame, bool]:
    if len(frame) < 3:
        return frame, False
    for col in frame.columns:
        label = frame[col].iloc[-1]
        if isinstance(label, str) and TOTAL.fullmatch(label.strip()) and not (frame[col].iloc[:-1] == label).any():
            cell = f"{quoted(label)} in column {quoted(col)}"
            kind = "a mean" if MEAN.fullmatch(label.strip()) else "a total"
            if said is None:
                notes.append(f"{name}: its last row, {cell}, dropped ({kind}, not data)")
                frame = frame.iloc[:-1].copy()
            else:
                said.append(
                    f"{name}: its last row (row {len(frame):,}), {cell}, looks like {kind}; predicted all the same"
                )
            rest = frame[col].iloc[: len(frame) - (said is not None)]
            number = pd.to_numeric(rest, errors="coerce")
            if number.notna().sum() == rest.notna().sum() and rest.notna().any() and not zero_led(rest).any():
                frame[col] = pd.to_numeric(frame[col], errors="coerce")
            return frame, True
    return frame, False


def without_empty_unnamed(frame: pd.DataFrame, name: str, notes: list[str]) -> pd.DataFrame:
    """The frame without the columns whose header cell is empty (pandas names them 'Unnamed: 5') and that hold no
    value: the empty columns a spreadsheet saves as CSV right of its table where formatting reached (every line
    ending ';;'), said in a note. One of values stays a column."""
    empty = [i for i, c in enumerate(frame.columns) if re.fullmatch(r"Unnamed: \d+", str(c)) and frame[c].isna().all()]
    if not empty:
        return frame
    notes.append(
        f"{name}: its {len(empty)} column(s) with no name and no value (columns {listed([i + 1 for i in empty])}) "
        f"left out"
    )
    return frame.drop(columns=frame.columns[empty])


def spans_lines(frame: pd.DataFrame) -> bool:
    """Whether a quoted cell holds a line break (a comment typed with Enter): the rows below it then start on
    later lines than their number says, so messages give rows alone."""
    for c in frame.columns:
        with contextlib.suppress(AttributeError):  # TRUE / FALSE with a blank: Python bools, no text
            if frame[c].dtype in (object, "str") and frame[c].str.contains("\n", regex=False).any():
                return True
    return False


def no_repeated_header(frame: pd.DataFrame, shown: str, header_line: int) -> None:
    """Refuse rows that repeat the header, as files joined one after another (cat jan.csv feb.csv) hold: they
    would make every column of numbers text (categories, a class named after the target). Only where every column
    not named by a number is text, as such a row makes them; the first column narrows the rows to compare."""
    named = [c for c in frame.columns if pd.isna(pd.to_numeric(str(c), errors="coerce"))]
    if not named or any(not (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])) for c in named):
        return
    rows = frame.index[(frame[named[0]] == named[0]).fillna(False).to_numpy()]  # names as the header holds them
    for c in named[1:]:
        rows = rows[(frame.loc[rows, c] == c).fillna(False).to_numpy()]
    if len(rows):
        at = [frame.index.get_loc(r) for r in rows]
        s = "" if len(at) == 1 else "s"
        line = "sheet row" if header_line < 0 else "line"  # where()'s: a sheet's header row negated
        raise UserError(
            f"{shown}: row{s} {listed([i + 1 for i in at], most=5)} ({line}{s} "
            f"{listed([i + 1 + abs(header_line) for i in at], most=5)}) repeat{'s' if not s else ''} the header "
            f"({'tables pasted' if header_line < 0 else 'files joined'} one after another?): remove "
            f"{'that' if not s else 'those'} {line.split()[-1]}{s}"
        )


GROUPED = r"[+-]?[1-9]\d{0,2}(\.\d{3})+|[+-]?\d+"  # 1.234, 1.234.567 or 12: points grouping thousands


def points_grouping_thousands(frame: pd.DataFrame, parsed: list[str], as_text, name: str, notes: list[str]) -> None:
    """In a file whose decimals are commas, a column of numbers with points (1.234, 12.345, 1.234.567; pandas
    reads the first two as decimals) groups thousands with them where every point has three digits after it.
    Columns still text are checked as they are; of `parsed` (those pandas read as decimals), only the ones whose
    values could have been so written are read again as text (`as_text(columns)`)."""
    text = {c: frame[c] for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)}
    again = [c for c in parsed if _could_be_grouped(frame[c])]
    if again:
        text.update(as_text(again).items())
    grouped = []
    for col, raw in text.items():
        raw = raw.astype("string").str.strip()
        values = raw.dropna()
        if values.str.contains(".", regex=False).any() and values.str.fullmatch(GROUPED).all():
            frame[col] = pd.to_numeric(raw.str.replace(".", "", regex=False)).astype("float64")
            grouped.append(col)
    if grouped:
        notes.append(
            f"{name}: {listed(grouped, most=8, quote=True)} read as numbers whose points group thousands (1.234 is "
            f"1234, as in the file's numbers with decimal commas; data.decimal='.' reads them as decimals)"
        )


def _could_be_grouped(v: pd.Series) -> bool:
    """Whether decimals pandas read could be 1.234 and 12.345: each fraction at least 1 with three digits."""
    v = v.dropna().to_numpy()
    thousandths = v * 1000
    fraction = v != np.round(v)
    return bool(fraction.any() and (np.abs(v[fraction]) >= 1).all() and np.allclose(thousandths, np.round(thousandths)))


def _cleaned(s: pd.Series) -> pd.Series:
    """Without signs, currency codes and outer spaces, a typeset minus made '-'; an accountant's negative in
    parentheses, (1,234.5), and SAP's trailing one, 1.234,50-, with a minus in front. Literal replacements, each
    only where the column holds it: a regex over every value took 0.24 s a 300k-row column."""
    text = s.astype("string").str.strip()
    signs = [c for c in SIGNS if text.str.contains(c, regex=False).any()]
    for c in signs:
        text = text.str.replace(c, "", regex=False)
    text = text.str.strip() if signs else text
    if any(CURRENCY_CODE.search(v) for v in text.dropna().head(100)):  # its first values say so: no regex over all
        text = text.str.replace(CURRENCY_CODE, "", regex=True)
    if text.str.contains("\u2212", regex=False).any():  # a typeset minus sign (U+2212)
        text = text.str.replace("\u2212", "-", regex=False)
    if text.str.startswith("(").any():
        text = text.str.replace(r"^\((.+)\)$", r"-\1", regex=True)
    if text.str.endswith("-").any():  # SAP's trailing minus: 1.234,50-
        text = text.str.replace(r"^(\d[\d.,' ]*)-$", r"-\1", regex=True)
    return text


def _suffixed(frame: pd.DataFrame, col: str, found: dict, marked: dict) -> None:
    """The column as numbers where each of its values is a number, with k, K, M or B after it or none, and one at
    least has one (1.2k is 1200); else it stays as it is."""
    values = _cleaned(frame[col])
    marks = values.isin(MARKS)
    text = values[values.notna() & ~marks]
    if not text.str.fullmatch(SUFFIXED).all() or zero_led(text).any():
        return
    last = text.str[-1]
    if not last.isin(list(SCALES)).any():
        return
    scale = last.map(SCALES).fillna(1.0).astype("float64")
    number = pd.to_numeric(text.str.rstrip("kKMB ")).astype("float64") * scale
    frame[col] = number.reindex(frame.index)  # missing and marked cells: NaN
    found["suffixes"].append(col)
    if marks.any():
        marked[col] = sorted(values[marks].unique())


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
    for c in ". " if kind == "decimal" else ",'":  # the marks that group thousands
        if values.str.contains(c, regex=False).any():
            values = values.str.replace(c, "", regex=False)
    if kind == "decimal":
        values = values.str.replace(",", ".", regex=False)
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
    if found["suffixes"]:
        notes.append(
            f"{name}: {listed(found['suffixes'], most=8, quote=True)} read as numbers with their k, M or B suffixes "
            f"(1.2k is 1200, 3M is 3000000; data.decimal='.' keeps them as text)"
        )
    for col, marks in marked.items():
        shown = ", ".join(quoted(m) if m else "cells of spaces" for m in marks)
        notes.append(f"{name}: column {quoted(col)}: {shown} read as missing")
