"""Excel workbooks (.xlsx, .xlsm, .xls) read into a DataFrame: the sheet data.sheet names, else the one with the
most cells (a sheet of notes or a legend beside the table), said in a note naming the others wherever there are
more; rows above its header skipped; its text cells' numbers read as a text file's are (text_numbers.py). An
empty sheet, and formulas a program wrote without their results, are refused."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pandas as pd

from nntrain.data.delimiters import MAX_PREAMBLE
from nntrain.data.readers import Options, guarded
from nntrain.data.text_numbers import numbers_in_text, without_total
from nntrain.errors import UserError, listed, quoted

FORMULAS_LOOKED_AT = 100  # the rows of an empty-looking column looked through for formulas


def read_excel(p: Path, kind: str, shown: str, options: Options) -> pd.DataFrame:
    """One sheet of a workbook; the sheet read and every sheet's column names are left in `options`."""
    return _excel_numbers(_read_sheet(p, kind, shown, options), p, options)


def _read_sheet(p: Path, kind: str, shown: str, options: Options) -> pd.DataFrame:
    engine = "xlrd" if kind == ".xls" else "openpyxl"
    try:
        __import__(engine)
    except ImportError:
        raise UserError(
            f"{shown}: reading {kind} files needs the {engine} package: pip install 'nntrain[excel]' (or save the "
            f"sheet as CSV)"
        ) from None
    book = guarded(lambda: pd.read_excel(p, sheet_name=None, engine=engine), shown, "an Excel workbook")
    name, why = _sheet_to_read(book, options, shown)
    _not_empty(book, name, shown, options.sheet_key)
    options.sheet_read, options.sheets = name, {n: _names(sheet) for n, sheet in book.items()}
    others = [n for n in book if n != name]
    if others:
        options.notes.append(
            f"{p.name}: read its sheet {quoted(name)} ({why}); its other sheets: {listed(others, quote=True)} "
            f"({options.sheet_key}=NAME reads another)"
        )
    frame, above = book[name], 0 if options.sheet is not None else _rows_above_header(book[name])
    options.skip = above  # rows above the header: messages count sheet rows from the top
    if above:
        options.notes.append(f"{p.name}: its first {above} row(s), above the header, skipped (a title or notes)")
        frame = guarded(lambda: pd.read_excel(p, sheet_name=name, header=above, engine=engine), shown, "a workbook")
    header = lambda: pd.read_excel(p, sheet_name=name, header=None, skiprows=above, nrows=1, engine=engine)  # noqa: E731
    _no_duplicate_names(frame, header, shown)
    if engine == "openpyxl":
        _no_formulas_without_results(p, name, frame, above, shown)
    return frame


def _sheet_to_read(book: dict[str, pd.DataFrame], options: Options, shown: str) -> tuple[str, str]:
    """(the sheet to read, why): the one named; else (predict, eval) the one of the run's sheet's name; else the
    only one; else the one with the most cells (a workbook's notes or legend beside its table), where fit reads
    it; predict and eval refuse to guess, naming the sheets."""
    if options.sheet is not None:
        if options.sheet not in book:
            raise UserError(
                f"{options.sheet_key}={options.sheet}: no such sheet in {shown}; its sheets: "
                f"{listed(list(book), quote=True)}"
            )
        return options.sheet, options.sheet_key
    if options.run_sheet in book:
        return options.run_sheet, "the name of the sheet the run was trained on"
    if len(book) == 1 or options.largest:
        return max(book, key=lambda k: book[k].size), "the one with the most cells"
    run = options.run_sheet
    trained = f"none is named {quoted(run)} as the run's was" if run else "the run was not trained on a workbook"
    raise UserError(
        f"{shown}: the workbook has {len(book)} sheets, {listed(list(book), quote=True)}, and {trained}; name the "
        f"sheet to read with {options.sheet_key}=NAME"
    )


def _not_empty(book: dict[str, pd.DataFrame], name: str, shown: str, key: str = "data.sheet") -> None:
    """Refuse a sheet with no cells at all (pandas reads it as a table of no columns)."""
    if book[name].shape[1]:
        return
    if all(sheet.shape[1] == 0 for sheet in book.values()):
        only = f"its only sheet, {quoted(name)}," if len(book) == 1 else f"every one of its sheets ({listed(book)})"
        raise UserError(f"{shown}: the workbook is empty: {only} holds no cells (no header, no rows)")
    others = [n for n, sheet in book.items() if sheet.shape[1]]
    raise UserError(
        f"{shown}: sheet {quoted(name)} is empty (no header, no rows); sheets with cells: {listed(others, quote=True)} "
        f"({key}=NAME reads one)"
    )


def _names(sheet: pd.DataFrame) -> list[str]:
    """A sheet's column names: its first row's, or its header's below a title (_rows_above_header)."""
    above = _rows_above_header(sheet)
    return [str(n).strip() for n in (sheet.iloc[above - 1].tolist() if above else sheet.columns)]


def sheet_hint(column: str, sheet: str | None, sheets: dict[str, list[str]]) -> tuple[str, str]:
    """For a message that a column is not in a table: where the table is one sheet of several, (' in sheet X
    (the sheet read)', the sheets that hold the column and the key to read one, or that none does); else
    ('', '')."""
    if sheet is None or len(sheets) < 2:
        return "", ""
    holding = [n for n, names in sheets.items() if n != sheet and column in names]
    where = f" in sheet {quoted(sheet)} (the sheet read)"
    if not holding:
        return where, f"; nor do its other sheets {listed([n for n in sheets if n != sheet], quote=True)} hold it"
    holds = f"sheet {quoted(holding[0])} holds" if len(holding) == 1 else f"sheets {listed(holding, quote=True)} hold"
    return where, f"; {holds} {quoted(column)}: set data.sheet={holding[0]}"


def _no_formulas_without_results(p: Path, name: str, frame: pd.DataFrame, above: int, shown: str) -> None:
    """Refuse columns that read as empty because their cells hold formulas with no stored results: a program
    (openpyxl, a script) wrote them and no spreadsheet has computed them since, and pandas reads each as missing.
    Only a column missing in every row is looked at, in its first FORMULAS_LOOKED_AT rows."""
    empty = [i for i, c in enumerate(frame.columns) if frame[c].isna().all()]
    if not empty or frame.empty:
        return
    import openpyxl

    book = openpyxl.load_workbook(p, read_only=True)  # formulas as written, not their stored results
    try:
        rows = book[name].iter_rows(min_row=above + 2, max_row=above + 1 + FORMULAS_LOOKED_AT)
        formulas = collections.Counter(i for row in rows for i, cell in enumerate(row) if cell.data_type == "f")
    finally:
        book.close()
    held = [str(frame.columns[i]).strip() for i in empty if formulas[i]]
    if held:
        raise UserError(
            f"{shown}: column(s) {listed(held, quote=True)} of sheet {quoted(name)} hold formulas with no stored "
            f"results, so every value reads as missing: the workbook was written by a program and never opened and "
            f"saved in Excel or LibreOffice, which compute and store them. Open it there and save it (or export the "
            f"sheet as CSV), or have the program write the values instead of formulas"
        )


def _no_duplicate_names(frame: pd.DataFrame, header, shown: str) -> None:
    """Refused, as a text file's are: two columns of one name, which pandas renames size and size.1 (the sheet's
    header row, `header()`, is read again only where a name looks so renamed)."""
    renamed = [re.fullmatch(r"(.+)\.\d+", str(c)) for c in frame.columns]
    if not any(m and m.group(1) in frame.columns for m in renamed):
        return
    names = [str(v).strip() for v in header().iloc[0].tolist() if not pd.isna(v)]
    dupes = sorted(c for c, n in collections.Counter(names).items() if n > 1)
    if dupes:
        raise UserError(f"{shown}: duplicate column name(s) {listed(dupes, most=10, quote=True)} in the header")


def _excel_numbers(frame: pd.DataFrame, p: Path, options: Options) -> pd.DataFrame:
    """A sheet's text cells that hold numbers as spreadsheets write them, made numbers as in a text file
    (text_numbers.py); data.decimal='.' keeps them text, data.decimal=',' or data.thousands=',' says what a
    comma that could be either is."""
    frame = without_total(frame, p.name, options.notes, options.every_row)
    if options.decimal == ".":
        return frame
    said = "decimal" if options.decimal == "," else "thousands" if options.thousands == "," else None
    before = options.commas or said
    options.commas = numbers_in_text(frame, p.name, options.notes, "", before, options.text) or before
    return frame


def _rows_above_header(sheet: pd.DataFrame) -> int:
    """Rows above a sheet's header (a title, notes): where the first row read as the header leaves columns
    unnamed, the first of the next MAX_PREAMBLE rows whose every cell is text, while the rows above it fill at
    most half their cells; 0 otherwise. A column empty throughout (a margin left of a table typed from B3) is
    no cell of it."""
    if not any(str(c).startswith("Unnamed: ") for c in sheet.columns):
        return 0
    width = int(sheet.notna().any().sum())
    half = width / 2
    if sum(not str(c).startswith("Unnamed: ") for c in sheet.columns) > half:
        return 0
    for i, row in enumerate(sheet.head(MAX_PREAMBLE).itertuples(index=False)):
        cells = [v for v in row if not pd.isna(v)]
        if len(cells) == width and all(isinstance(v, str) for v in cells):
            return i + 1
        if len(cells) > half:
            return 0
    return 0
