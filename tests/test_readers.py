"""The tables users have: one table written as a comma CSV, a semicolon CSV with decimal commas, a TSV, a gzip
CSV, Excel, JSON Lines, Feather, a comma CSV with quoted decimal commas, one with dollar signs and thousands
commas, one with a title and comments above its header, and a report workbook trains to the same test metric;
what the reader found is said; what it cannot decide is refused naming the key that decides it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nntrain.config.data_section import SEPARATORS
from nntrain.errors import UserError

from .conftest import make_table, write_config


def _table() -> pd.DataFrame:
    df = make_table(n=150, task="regression", cat=True)
    df["b"] = df["b"] * 1000  # thousands: a decimal-comma file groups them with points
    return df


WRITERS = {
    "comma.csv": lambda df, p: df.to_csv(p, index=False),
    "semicolon.csv": lambda df, p: df.to_csv(p, index=False, sep=";", decimal=","),
    "table.tsv": lambda df, p: df.to_csv(p, index=False, sep="\t"),
    "table.csv.gz": lambda df, p: df.to_csv(p, index=False),
    "table.xlsx": lambda df, p: df.to_excel(p, index=False),
    "table.jsonl": lambda df, p: df.to_json(p, orient="records", lines=True, double_precision=15),
    "table.feather": lambda df, p: df.to_feather(p),
    "quoted.csv": lambda df, p: df.map(lambda v: repr(v).replace(".", ",") if isinstance(v, float) else v).to_csv(
        p, index=False
    ),
    "dollars.csv": lambda df, p: df.map(lambda v: f"${v:,}" if isinstance(v, float) else v).to_csv(p, index=False),
    "titled.csv": lambda df, p: p.write_text("Sales report 2024\n# one row a sale\n\n" + df.to_csv(index=False)),
    "report.xlsx": lambda df, p: _report(df, p),
}


def _report(df: pd.DataFrame, p) -> None:
    """A workbook as reports come: a sheet of notes first, a title above the table's header."""
    with pd.ExcelWriter(p) as w:
        pd.DataFrame({"about": ["prices", "from the shop"]}).to_excel(w, sheet_name="notes", index=False)
        pd.DataFrame([["Sales report 2024"]]).to_excel(w, sheet_name="table", index=False, header=False)
        df.to_excel(w, sheet_name="table", index=False, startrow=2)


def _test_r2(cli, workdir, path, *overrides):
    cfg = write_config(workdir / f"{path.name}.yaml", path, name=path.name.replace(".", "_"))
    r = cli("fit", cfg, *overrides, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["test"]["r2"], r


def test_one_table_in_every_format_trains_to_the_same_test_metric(workdir, cli):
    pytest.importorskip("openpyxl")
    df = _table()
    results = {}
    for name, write in WRITERS.items():
        write(df, workdir / name)
        results[name] = _test_r2(cli, workdir, workdir / name)
    results["told"] = _test_r2(
        cli, workdir, workdir / "semicolon.csv", "data.decimal=,", "data.sep=semicolon", "name=told"
    )
    reference = results["comma.csv"][0]
    for name, (r2, _) in results.items():
        assert r2 == pytest.approx(reference, abs=1e-6), name
    said = results["semicolon.csv"][1].stderr + results["semicolon.csv"][1].stdout
    assert "semicolon.csv: fields separated by semicolons" in said
    assert "'a', 'b', 'c', 'y' read as numbers written with a decimal comma" in said
    quoted = results["quoted.csv"][1]
    assert "decimal comma" in quoted.stderr + quoted.stdout and "separated by" not in quoted.stderr + quoted.stdout


def test_a_bag_says_what_reading_its_table_found_and_reads_it_so_again(workdir, cli):
    df = make_table(n=150, task="regression")
    df.to_csv(workdir / "semi.csv", index=False, sep=";", decimal=",")
    cfg = write_config(workdir / "c.yaml", workdir / "semi.csv", data={"target": "y", "sep": ";"}, train={"bag": 3})
    r = cli("fit", cfg)
    assert r.exit_code == 0, r.stderr
    assert "semi.csv: 'a', 'b', 'c', 'y' read as numbers written with a decimal comma" in r.stdout
    r = cli("eval", "runs/t", "--json")  # the bag's test rows read again, as the fit read them
    assert r.exit_code == 0, r.stderr


def test_a_comma_that_may_group_thousands_is_refused_naming_the_keys_then_read_as_told(workdir, cli):
    df = make_table(n=150, task="regression")
    df["price"] = [f"{v:,}" for v in (df["a"].abs() * 5000 + 1000).round().astype(int)]  # 1,299 or 1.299?
    df.loc[0, "price"] = "1,299"
    path = workdir / "prices.csv"
    df.to_csv(path, index=False, sep=";")  # its other numbers have points: pandas reads them, nothing decides
    cfg = write_config(workdir / "c.yaml", path, data={"target": "y"})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "Traceback" not in r.stderr + r.stdout
    assert "column 'price' holds numbers such as '1,299'" in r.stderr
    assert "set data.decimal=',' (decimal) or data.thousands=',' (thousands)" in r.stderr
    assert not (workdir / "runs").exists()
    r = cli("fit", cfg, "data.thousands=,", "--json")
    assert r.exit_code == 0, r.stderr
    run = json.loads(r.stdout)["run_dir"]
    prep = __import__("torch").load(f"{run}/best.pt", weights_only=False)["prep"]
    assert prep["kinds"]["price"] == "numeric" and prep["read"] == {"thousands": ","}
    r = cli("eval", run, "--data", path, "--json")  # eval reads a file as the run's were read
    assert r.exit_code == 0, r.stderr


def _read(path, **options):
    from nntrain.data.readers import Options
    from nntrain.data.tables import read_table

    return read_table(str(path), options=Options(**options))


def test_numbers_with_thousands_commas_currency_percent_and_missing_marks_are_numbers(tmp_path):
    price = [1299.0, 12.5, 1234567.25, 980.0, 15000.0]
    text = pd.DataFrame(
        {
            "price": ["$1,299", "$12.50", "$1,234,567.25", "$980", "$15,000"],
            "share": ["12.5%", "3%", "100%", "0.5%", "45%"],
            "profit": ["(1,299)", "$12.50", "($1,234,567.25)", "980", "(15,000)"],  # an accountant's negatives
            "count": ["1,299", "12", "1,234,567", "980", "15,000"],  # 1,299 alone: the file's commas decide
            "score": ["3.5", "?", "-", "7", "n.a."],
            "town": ["Bern", "Genf", "Basel", "Chur", "Biel"],
            "swiss": ["1'299", "12.5", "1'234'567.25", "980", "15'000"],
            "height": ["5'10", "6'1", "5'6", "5'11", "6'0"],  # feet and inches: text
        }
    )
    text.to_csv(tmp_path / "us.csv", index=False)
    table = _read(tmp_path / "us.csv")
    got = table.frame
    assert got["price"].tolist() == price and got["count"].tolist() == [1299, 12, 1234567, 980, 15000]
    assert got["share"].tolist() == [12.5, 3, 100, 0.5, 45] and got["town"].tolist() == text["town"].tolist()
    assert got["swiss"].tolist() == [1299, 12.5, 1234567.25, 980, 15000]
    assert got["profit"].tolist() == [-1299, 12.5, -1234567.25, 980, -15000]
    assert got["height"].tolist() == text["height"].tolist()
    assert got["score"].tolist()[0] == 3.5 and got["score"].isna().tolist() == [False, True, True, False, True]
    said = " ".join(table.notes)
    assert "'price', 'profit', 'count', 'swiss' read as numbers whose commas group thousands" in said
    assert "'share' read as numbers without their currency or percent signs" in said
    assert "column 'score': '-', '?', 'n.a.' read as missing" in said
    eu = pd.DataFrame(
        {
            "price": ["1.299,00 €", "12,50 €", "1.234.567,25 €", "980 €", "15.000 €"],
            "small": ["0,826", "0,5", "1,25", "0,001", "2"],  # 0,826: never a thousands comma
            "wide": ["1\u00a0299", "12,5", "1\u00a0234\u00a0567,25", "980", "15\u00a0000"],  # French groups
        }
    )
    eu["people"] = ["1.299", "12", "1.234.567", "980", "15.000"]  # pandas alone reads 1.299 and 15.000 as decimals
    eu["ratio"] = ["0.125", "1.5", "2.25", "0.5", "3"]  # a point with no three digits after it: a decimal point
    eu.to_csv(tmp_path / "eu.csv", index=False, sep=";")
    table = _read(tmp_path / "eu.csv")
    got = table.frame
    assert got["people"].tolist() == [1299, 12, 1234567, 980, 15000] and got["ratio"].tolist()[0] == 0.125
    assert "'people' read as numbers whose points group thousands" in " ".join(table.notes)
    assert got["price"].tolist() == price and got["small"].tolist() == [0.826, 0.5, 1.25, 0.001, 2.0]
    assert got["wide"].tolist() == [1299, 12.5, 1234567.25, 980, 15000]


def test_amounts_with_a_currency_code_and_a_typographic_minus_are_numbers_and_codes_of_letters_text(tmp_path):
    text = pd.DataFrame(
        {
            "usd": ["1,299 USD", "12.50 USD", "1,234,567.25 USD", "980 USD", "15,000 USD"],
            "chf": ["CHF 1'299", "CHF 12.50", "CHF 1'234'567.25", "CHF 980", "CHF 15'000"],
            "change": ["\u22121.5", "2.5", "\u22123", "0", "+4"],  # U+2212, as typeset tables and web pages write it
            "part": ["ABC 12", "ABC 7", "XYZ 3", "ABC 980", "XYZ 15"],  # letters that are no currency: a code
        }
    )
    text.to_csv(tmp_path / "codes.csv", index=False)
    table = _read(tmp_path / "codes.csv")
    got = table.frame
    assert got["usd"].tolist() == [1299, 12.5, 1234567.25, 980, 15000]
    assert got["chf"].tolist() == [1299, 12.5, 1234567.25, 980, 15000]
    assert got["change"].tolist() == [-1.5, 2.5, -3, 0, 4] and got["part"].tolist() == text["part"].tolist()
    eu = pd.DataFrame({"eur": ["EUR 1.299,00", "EUR 12,50", "EUR 980,10", "EUR 15.000,00", "EUR 7,50"], "n": range(5)})
    eu.to_csv(tmp_path / "eu.csv", index=False, sep=";")
    assert _read(tmp_path / "eu.csv").frame["eur"].tolist() == [1299, 12.5, 980.1, 15000, 7.5]
    # SAP's trailing minus and India's grouping in lakhs (was: both columns text, each value its own level)
    sap = pd.DataFrame({"betrag": ["1.234,50-", "12,00", "980,10-", "15.000,00", "7,50"], "n": range(5)})
    sap.to_csv(tmp_path / "sap.csv", index=False, sep=";")
    assert _read(tmp_path / "sap.csv").frame["betrag"].tolist() == [-1234.5, 12, -980.1, 15000, 7.5]
    inr = pd.DataFrame({"price": ["₹1,23,456", "₹12,34,567.50", "₹980", "₹15,000", "₹1,00,00,000"], "n": range(5)})
    inr.to_csv(tmp_path / "inr.csv", index=False)
    assert _read(tmp_path / "inr.csv").frame["price"].tolist() == [123456, 1234567.5, 980, 15000, 10000000]


def test_a_blank_cell_or_a_dash_among_numbers_is_missing_not_the_column_turned_to_categories(tmp_path):
    # a cell of a space (a fixed-width export, a cell cleared in a sheet) or a typographic dash among numbers
    text = "x,y,z\n1.5,a,3\n , b,4\n2.5,c, \n\u2014,d,6\n3.5,e,\u2013\n"
    (tmp_path / "blank.csv").write_text(text, encoding="utf-8")
    table = _read(tmp_path / "blank.csv")
    got = table.frame
    assert got["x"].dtype == float and got["x"].isna().tolist() == [False, True, False, True, False]
    assert got["z"].dtype == float and got["z"].tolist()[:2] == [3, 4] and got["z"].isna().sum() == 2
    assert got["y"].tolist() == ["a", " b", "c", "d", "e"]  # text as it is: fit reads its levels without spaces
    said = " ".join(table.notes)
    assert "column 'x': cells of spaces, '\u2014' read as missing" in said


def test_a_workbook_s_text_cells_read_as_a_text_file_s_would(tmp_path):
    pytest.importorskip("openpyxl")
    text = pd.DataFrame(
        {
            "price": ["$1,299", "$12.50", "$1,234,567.25", "$980", "$15,000"],
            "share": ["12.5%", "3%", "100%", "0.5%", "45%"],
            "score": ["3.5", "?", "-", "7", "n.a."],
            "code": ["01", "02", "X", "04", "05"],
        }
    )
    text.to_excel(tmp_path / "text.xlsx", index=False)  # every cell a text cell
    text.to_csv(tmp_path / "text.csv", index=False)
    book, csv = _read(tmp_path / "text.xlsx"), _read(tmp_path / "text.csv")
    pd.testing.assert_frame_equal(book.frame, csv.frame)
    assert book.frame["price"].tolist() == [1299.0, 12.5, 1234567.25, 980.0, 15000.0]
    assert "'price' read as numbers whose commas group thousands" in " ".join(book.notes)
    comma = pd.DataFrame({"size": ["118,94", "99,12", "101,5"], "n": ["1,299", "2,100", "3,333"]})
    comma.to_excel(tmp_path / "comma.xlsx", index=False)
    assert _read(tmp_path / "comma.xlsx").frame["n"].tolist() == [1.299, 2.1, 3.333]  # as size's commas decide
    with pytest.raises(UserError, match="column 'n' holds numbers such as '1,299'"):
        comma[["n"]].to_excel(tmp_path / "open.xlsx", index=False)
        _read(tmp_path / "open.xlsx")
    assert _read(tmp_path / "open.xlsx", thousands=",").frame["n"].tolist() == [1299, 2100, 3333]
    pd.DataFrame([[1, 2, 3]] * 3, columns=["size", "size.1", "x"]).to_excel(tmp_path / "named.xlsx", index=False)
    assert list(_read(tmp_path / "named.xlsx").frame.columns) == ["size", "size.1", "x"]  # so named: kept
    pd.DataFrame([[1, 2, 3]] * 3, columns=["size", "size", "x"]).to_excel(tmp_path / "twice.xlsx", index=False)
    with pytest.raises(UserError, match="duplicate column name"):
        _read(tmp_path / "twice.xlsx")


def test_a_total_row_below_the_table_is_dropped_and_said(tmp_path):
    df = make_table(n=30, cat=True)
    total = {"a": df["a"].sum(), "color": "Total"}
    pd.concat([df, pd.DataFrame([total])]).to_csv(tmp_path / "sales.csv", index=False)
    table = _read(tmp_path / "sales.csv")
    pd.testing.assert_frame_equal(table.frame, df, check_dtype=False)
    assert "sales.csv: its last row, 'Total' in column 'color', dropped (a total, not data)" in table.notes
    numbers = df.astype({"a": object})
    numbers.loc[len(df)] = {"a": "Grand total", "b": df["b"].sum()}  # the label in a column of numbers
    numbers.to_csv(tmp_path / "numbers.csv", index=False)
    got = _read(tmp_path / "numbers.csv").frame
    assert len(got) == 30 and got["a"].dtype == float
    df.loc[[3, 29], "color"] = "Total"  # a level that is no label: kept
    df.to_csv(tmp_path / "level.csv", index=False)
    assert len(_read(tmp_path / "level.csv").frame) == 30


def test_a_total_and_a_mean_below_the_table_are_both_dropped_and_said(tmp_path):
    """A German export ends with a 'Summe' row and a 'Mittelwert' row below it: both are dropped (was: the mean
    row refused, "'Mittelwert' at row 32 is not a number", and the total kept)."""
    df = make_table(n=30)
    df["region"] = ["Nord", "Süd", "Ost"] * 10
    rows = [{**df.sum(numeric_only=True), "region": "Summe"}, {**df.mean(numeric_only=True), "region": "Mittelwert"}]
    pd.concat([df, pd.DataFrame(rows)]).to_csv(tmp_path / "umsatz.csv", index=False, sep=";", decimal=",")
    table = _read(tmp_path / "umsatz.csv")
    pd.testing.assert_frame_equal(table.frame, df, check_dtype=False)
    assert "umsatz.csv: its last row, 'Mittelwert' in column 'region', dropped (a mean, not data)" in table.notes
    assert "umsatz.csv: its last row, 'Summe' in column 'region', dropped (a total, not data)" in table.notes
    df.loc[[4, 29], "region"] = "Average"  # a level that is no label: kept
    df.to_csv(tmp_path / "level.csv", index=False)
    assert len(_read(tmp_path / "level.csv").frame) == 30


def test_a_header_repeated_inside_a_sheet_as_two_tables_pasted_is_refused_naming_its_sheet_row(tmp_path):
    """Two months' tables pasted one under the other in a sheet, headers and all: refused naming the row as the
    spreadsheet numbers it (was: every column of numbers read as text, a class named after the target)."""
    pytest.importorskip("openpyxl")
    df = make_table(n=30)
    with pd.ExcelWriter(tmp_path / "months.xlsx") as w:
        pd.DataFrame([["Sales 2024"]]).to_excel(w, index=False, header=False)
        df.iloc[:20].to_excel(w, index=False, startrow=2)
        df.iloc[20:].to_excel(w, index=False, startrow=23)
    with pytest.raises(UserError) as e:
        _read(tmp_path / "months.xlsx")
    assert str(e.value) == (
        "data.path=" + str(tmp_path / "months.xlsx") + ": row 21 (sheet row 24) repeats the header (tables pasted "
        "one after another?): remove that row"
    )


def test_a_header_repeated_below_as_files_joined_one_after_another_write_it_is_refused_naming_its_line(tmp_path):
    df = make_table(n=40)
    df["town"] = ["Bern", "Chur"] * 20
    df = df.rename(columns={"c": "2019"})  # a year as a column's name: its column stays numbers
    joined = df.iloc[:20].to_csv(index=False) + df.iloc[20:30].to_csv(index=False) + df.iloc[30:].to_csv(index=False)
    (tmp_path / "joined.csv").write_text("# sales\n" + joined)
    with pytest.raises(UserError) as e:
        _read(tmp_path / "joined.csv")
    assert str(e.value) == (
        "data.path=" + str(tmp_path / "joined.csv") + ": rows 21, 32 (lines 23, 34) repeat the header (files joined "
        "one after another?): remove those lines"
    )


def test_predict_keeps_a_last_row_that_looks_like_a_total_and_says_so(workdir, cli):
    """Fit drops a Total row below its table; predict's rows are the user's: each gets its prediction, in order,
    one that looks like a total with a warning naming it (was: dropped, the output a row short)."""
    import nntrain

    df = make_table(n=120, cat=True)
    df.to_csv(workdir / "train.csv", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.csv", data={"target": "y"}, train={"epochs": 1})
    assert cli("fit", cfg).exit_code == 0
    rows = df.drop(columns="y").head(5).astype({"a": object})
    rows.loc[4, "color"] = "Total"  # a shop named so, or a total: either way the user's row
    rows.to_csv(workdir / "text.csv", index=False)
    rows.loc[4, ["color", "a"]] = ["red", "Sum"]  # the label in a column of numbers: there a missing value
    rows.to_csv(workdir / "numbers.csv", index=False)
    run = nntrain.load("runs/t")
    for name, col, label in (("text.csv", "color", "Total"), ("numbers.csv", "a", "Sum")):
        r = cli("predict", "runs/t", workdir / name, "-o", workdir / f"{name}.out.csv")
        assert r.exit_code == 0, r.stderr
        assert len(pd.read_csv(workdir / f"{name}.out.csv")) == 5
        assert f"its last row (row 5), '{label}' in column '{col}', looks like a total" in r.stderr
        with pytest.warns(UserWarning, match="looks like a total"):
            assert len(run.predict(str(workdir / name))) == 5
    ok = cli("predict", "runs/t", workdir / "numbers.csv").stdout.splitlines()[1:5]
    rows.head(4).to_csv(workdir / "head.csv", index=False)
    assert ok == cli("predict", "runs/t", workdir / "head.csv").stdout.splitlines()[1:]  # the rows still aligned


def test_a_file_excel_saved_as_windows_1252_or_utf_16_reads_as_utf_8_would(tmp_path):
    df = make_table(n=40, cat=True)
    df["town"] = ["Zürich", "Genève", "Bâle", "€-zone"] * 10
    df.to_csv(tmp_path / "utf8.csv", index=False)
    df.to_csv(tmp_path / "windows.csv", index=False, encoding="cp1252")
    df.to_csv(tmp_path / "unicode.txt", index=False, sep="\t", encoding="utf-16")
    want = _read(tmp_path / "utf8.csv").frame
    for name, said in (("windows.csv", "Windows-1252"), ("unicode.txt", "UTF-16")):
        table = _read(tmp_path / name)
        pd.testing.assert_frame_equal(table.frame, want)
        assert f"{name}: read as {said} text (not UTF-8)" in table.notes


def test_a_workbook_or_parquet_file_named_as_csv_is_said_to_be_one_not_read_as_ragged_text(workdir, cli):
    pytest.importorskip("openpyxl")
    df = make_table(n=40)
    df.to_excel(workdir / "sales.csv", index=False)  # "Save as" kept the old name
    df.to_parquet(workdir / "rows.txt")
    for name, what in (("sales.csv", "a zip file (an Excel .xlsx workbook?)"), ("rows.txt", "a Parquet file")):
        r = cli("fit", name, "--target", "y")
        assert r.exit_code == 2, r.stderr
        assert f"data.path={name}: {what}, not delimited text: give it the suffix of its format" in r.stderr
    df.drop(columns="y").to_excel(workdir / "new.csv", index=False)
    make_table(n=40).to_csv(workdir / "t.csv", index=False)
    assert cli("fit", "t.csv", "--target", "y", "train.epochs=1", "train.bag=1").exit_code == 0
    p = cli("predict", "runs/t", "new.csv")
    assert p.exit_code == 2 and "new.csv: a zip file (an Excel .xlsx workbook?), not delimited text" in p.stderr


def test_a_workbook_reads_its_largest_sheet_or_the_one_data_sheet_names(workdir, cli):
    pytest.importorskip("openpyxl")
    df = make_table(n=120)
    with pd.ExcelWriter(workdir / "book.xlsx") as w:
        pd.DataFrame({"about": ["prices of 2024", "source: the shop"]}).to_excel(w, sheet_name="notes", index=False)
        df.to_excel(w, sheet_name="rows", index=False)
        df.head(60).to_excel(w, sheet_name="first half", index=False)
    table = _read(workdir / "book.xlsx")
    assert len(table.frame) == 120 and "book.xlsx: read its sheet 'rows' (the one with the most cells); its other " in (
        " ".join(table.notes)
    )
    assert len(_read(workdir / "book.xlsx", sheet="first half").frame) == 60
    cfg = write_config(workdir / "c.yaml", workdir / "book.xlsx")
    r = cli("fit", cfg, "data.sheet=Sheet1")
    assert r.exit_code == 2 and "data.sheet=Sheet1: no such sheet" in r.stderr and "first half" in r.stderr
    assert not (workdir / "runs").exists()


def test_data_sep_names_a_delimiter_and_refuses_what_is_not_one(workdir, cli):
    df = make_table(n=120)
    path = workdir / "pipes.txt"
    df.to_csv(path, index=False, sep="|")
    cfg = write_config(workdir / "c.yaml", path)
    r = cli("fit", cfg, "data.sep=pipe", "--json")
    assert r.exit_code == 0, r.stderr
    assert "separated by" not in r.stderr  # given, not found
    r = cli("fit", cfg, "data.sep=ab")
    assert r.exit_code == 2 and "data.sep" in r.stderr and "one character or comma, semicolon, tab, pipe" in r.stderr
    r = cli("fit", cfg, "data.sep=;")
    assert r.exit_code == 2 and "only one column" in r.stderr and "set data.sep" in r.stderr


def test_predict_reads_a_semicolon_file_for_a_run_trained_on_a_comma_csv(workdir, cli):
    df = make_table(n=120, task="regression")
    df.to_csv(workdir / "train.csv", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.csv")
    assert cli("fit", cfg).exit_code == 0
    df.drop(columns="y").head(5).to_csv(workdir / "new.csv", index=False, sep=";", decimal=",")
    df.drop(columns="y").head(5).to_csv(workdir / "same.csv", index=False)
    out = {}
    for name in ("new.csv", "same.csv"):
        r = cli("predict", "runs/t", workdir / name, "-o", workdir / f"{name}.out.csv")
        assert r.exit_code == 0, r.stderr
        out[name] = pd.read_csv(workdir / f"{name}.out.csv")["prediction"]
    assert out["new.csv"].tolist() == pytest.approx(out["same.csv"].tolist(), rel=1e-6)


def test_predict_reads_new_rows_as_the_training_file_was_read(workdir, cli):
    """A level 03 beside X in training stays 03 in a file of 03s alone (pandas would read 3); a comma that could be
    either (1,299) is read as the training file's commas were; a TRUE / FALSE column takes a blank."""
    df = make_table(n=150, task="regression")
    df["code"] = [["01", "02", "03", "X"][i % 4] for i in range(150)]
    df["y"] += df["code"].map({"01": 0.0, "02": 2.0, "03": 4.0, "X": -2.0})
    df["amount"] = [f"{v:,.2f}" for v in df["a"].abs() * 3000 + 1000]  # "1,234.56": its commas group thousands
    df["flag"] = df["b"] > 0
    df["open"] = (df["c"] > 0).astype(object)
    df.loc[0, "open"] = None  # TRUE / FALSE with a blank: levels True and False, which a new file reads so too
    df.to_csv(workdir / "train.csv", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.csv", data={"target": "y"}, train={"epochs": 2})
    assert cli("fit", cfg).exit_code == 0
    rows = df.drop(columns="y").iloc[[2, 6, 10]].reset_index(drop=True)  # code 03 in each
    rows["amount"] = ["1,299", "2,100", "1,050"]
    rows.to_csv(workdir / "all.csv", index=False, sep=";")
    rows["flag"] = rows["flag"].astype(object)
    rows.loc[1, "flag"] = None
    rows.to_csv(workdir / "blank.csv", index=False, sep=";")
    out = {}
    for name in ("all.csv", "blank.csv"):
        r = cli("predict", "runs/t", workdir / name, "-o", workdir / f"{name}.out")
        assert r.exit_code == 0, r.stderr
        assert "never seen" not in r.stderr + r.stdout
        out[name] = pd.read_csv(workdir / f"{name}.out")["prediction"]
    assert out["all.csv"][[0, 2]].tolist() == pytest.approx(out["blank.csv"][[0, 2]].tolist())
    prep = __import__("torch").load(workdir / "runs/t/best.pt", weights_only=False)["prep"]
    assert prep["read"] == {"commas": "thousands"} and prep["categories"]["code"] == ["01", "02", "03", "X"]


def test_labels_and_codes_written_with_leading_zeros_stay_as_written_in_fit_and_predict(workdir, cli):
    """Product codes 01, 1 and 10 are three classes (pandas reads 01 as 1: two); a zip code 02134 keeps its zero,
    a category; 0, 0.5 and -0.3 stay numbers; a file with a total row below, every field quoted, reads so too."""
    df = make_table(n=150)
    df["y"] = df["y"].map({0: "01", 1: "1", 2: "10"})
    df["zip"] = ["02134", "10001", "00501"] * 50
    df["share"] = ["0", "0.5", "-0.3"] * 50
    df["amount"] = ["000123.45", "000007.50", "000010.00"] * 50  # a zero-padded amount is a number
    df.to_csv(workdir / "train.csv", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.csv", data={"target": "y"}, train={"epochs": 1})
    r = cli("fit", cfg)
    said = r.stdout + r.stderr
    assert r.exit_code == 0, said
    assert "column 'zip': numbers written with leading zeros (such as '02134') kept as text, as written" in said
    assert "column 'y' (the target): numbers written with leading zeros (such as '01') kept as text" in said
    assert "3 distinct values in 'y'" in said
    prep = __import__("torch").load(workdir / "runs/t/best.pt", weights_only=False)["prep"]
    assert prep["classes"] == ["01", "1", "10"] and prep["categories"]["zip"] == ["00501", "02134", "10001"]
    assert prep["kinds"]["share"] == prep["kinds"]["amount"] == "numeric"
    df.drop(columns="y").head(6).to_csv(workdir / "new.csv", index=False)
    r = cli("predict", "runs/t", workdir / "new.csv", "-o", workdir / "out.jsonl")
    assert r.exit_code == 0, r.stderr
    assert "never seen" not in r.stderr
    out = pd.read_json(workdir / "out.jsonl", lines=True, dtype=False)
    assert list(out.columns[1:]) == ["proba_01", "proba_1", "proba_10"]
    assert set(out["prediction"]) <= {"01", "1", "10"} and len(out) == 6
    total = pd.concat([df.head(6).assign(name="Smith, J"), pd.DataFrame([{"zip": "Total", "a": df["a"][:6].sum()}])])
    total.to_csv(workdir / "total.csv", index=False, quoting=1)  # every field quoted, a comma inside some
    frame = _read(workdir / "total.csv").frame
    assert frame["zip"].tolist()[:3] == ["02134", "10001", "00501"] and len(frame) == 6
    assert frame["y"].tolist()[:3] == df["y"].head(3).tolist()
    assert frame["share"].dtype == float and frame["a"].dtype == float


def _plain(tmp_path: Path) -> tuple[pd.DataFrame, str, pd.DataFrame]:
    """A small table, its CSV text, and that text as read: what a file with lines above its header must give."""
    df = make_table(n=30)
    body = df.to_csv(index=False)
    (tmp_path / "plain.csv").write_text(body)
    return df, body, _read(tmp_path / "plain.csv").frame


def test_a_title_comments_or_blank_lines_above_the_header_are_skipped_and_lines_still_counted(tmp_path):
    df, body, want = _plain(tmp_path)
    (tmp_path / "title.csv").write_text("Sales report 2024, shop 3\n\n" + body)
    (tmp_path / "notes.csv").write_text("# exported by tool v1\n# units: EUR\n" + body)
    df.to_csv(tmp_path / "semi.csv", index=False, sep=";", decimal=",")
    (tmp_path / "semi_title.csv").write_text("Ventes 2024; magasin 3\n" + (tmp_path / "semi.csv").read_text())
    for name, above, lines in (("title.csv", 2, "'Sales report 2024, shop 3'"), ("notes.csv", 2, "'# exported")):
        table = _read(tmp_path / name)
        pd.testing.assert_frame_equal(table.frame, want)
        assert f"{name}: its first {above} line(s), above the header, skipped (a title or comments: {lines}" in (
            " ".join(table.notes)
        )
    pd.testing.assert_frame_equal(_read(tmp_path / "semi_title.csv").frame, _read(tmp_path / "semi.csv").frame)
    lines = make_table(n=400).to_csv(index=False).splitlines()
    (tmp_path / "ragged.csv").write_text("Report\n" + "\n".join([*lines[:300], "1,2", *lines[300:]]) + "\n")
    with pytest.raises(UserError, match=r"line 302 has 2 fields, the header has 4$"):  # the header: line 2
        _read(tmp_path / "ragged.csv")
    (tmp_path / "ragged.csv").write_text("Report\n" + "\n".join([*lines[:5], "1,2", *lines[5:]]) + "\n")
    with pytest.raises(UserError, match=r"line 2 has 4 fields, the header has 1; is the first line a title above"):
        _read(tmp_path / "ragged.csv")


def test_a_header_one_name_short_as_r_writes_row_names_is_refused_saying_so_not_read_from_the_first_row(tmp_path):
    df = make_table(n=30)
    names = [f"car {i}" for i in range(30)]  # R's write.table(sep=","): row names first, unnamed in the header
    text = ",".join(f'"{c}"' for c in df.columns) + "\n"
    text += "".join(f'"{n}",' + ",".join(map(str, row)) + "\n" for n, row in zip(names, df.itertuples(index=False)))
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(UserError) as e:
        _read(tmp_path / "r.csv")
    assert str(e.value) == (
        "r.csv: its header has 4 names and its rows 5 fields: the first column (row "
        "names, as R's write.table and pandas' to_string write them) has no name; write the table without them "
        "(write.csv, or row.names = FALSE; index=False), or put a name and a comma before the header's first"
    )
    (tmp_path / "title.csv").write_text("Sales, 2024, shop 3\n" + df.to_csv(index=False))  # 3 fields above 4: a title
    assert list(_read(tmp_path / "title.csv").frame.columns) == list(df.columns)


def test_a_table_whose_columns_are_aligned_with_spaces_is_read_column_by_column(tmp_path):
    """R's write.table (one space, quoted text), pandas' to_string and fixed-width exports (runs of spaces, values
    right-aligned) and .dat files: the fields are found parted by spaces (was: refused as one column, or a '.dat'
    suffix refused), a value holding a space when quoted."""
    df = make_table(n=30, cat=True).round(4)
    df["color"] = df["color"].replace("red", "dark red")
    df.to_csv(tmp_path / "r.txt", index=False, sep=" ")  # write.table(row.names = FALSE): "dark red" quoted
    (tmp_path / "aligned.dat").write_text(df.assign(color='"' + df.color + '"').to_string(index=False) + "\n")
    for name in ("r.txt", "aligned.dat"):
        table = _read(tmp_path / name)
        pd.testing.assert_frame_equal(table.frame, df, check_dtype=False)
        assert f"{name}: fields separated by spaces" in " ".join(table.notes)
    assert _read(tmp_path / "r.txt", sep=SEPARATORS["spaces"]).frame.shape == df.shape  # data.sep: spaces
    (tmp_path / "unquoted.txt").write_text(df.to_string(index=False) + "\n")  # dark red: one field more
    with pytest.raises(UserError, match=r"separated by spaces, but not as many on every line \(quote a value"):
        _read(tmp_path / "unquoted.txt")
    (tmp_path / "index.txt").write_text(df.drop(columns="color").to_string() + "\n")  # its row numbers unnamed
    with pytest.raises(UserError, match=r"its header has 4 names and its rows 5 fields: the first column \(row"):
        _read(tmp_path / "index.txt")
    pd.DataFrame({"sale price": [1.5, 2.5]}).to_csv(tmp_path / "one.csv", index=False)  # one column named so
    assert list(_read(tmp_path / "one.csv").frame.columns) == ["sale price"]


def test_a_title_a_spreadsheet_padded_with_delimiters_above_the_header_is_skipped(tmp_path):
    df, body, want = _plain(tmp_path)
    # Excel's "Save as CSV" gives every line the table's fields: the title, a blank row, a margin column
    (tmp_path / "padded.csv").write_text("Sales report,,,\n,,,\n" + body)
    table = _read(tmp_path / "padded.csv")
    pd.testing.assert_frame_equal(table.frame, want)
    assert "padded.csv: its first 2 line(s), above the header, skipped (a title or comments: 'Sales report')" in (
        " ".join(table.notes)
    )
    margin = "".join("," + line + "\n" for line in body.splitlines())
    (tmp_path / "margin.csv").write_text("Sales report,,,,\n" + margin)
    pd.testing.assert_frame_equal(_read(tmp_path / "margin.csv").frame, want)  # the empty margin left out
    (tmp_path / "empty_cell.csv").write_text(body.replace("a,b,c,y", "a,,c,y", 1))  # a header with a blank: no title
    assert _read(tmp_path / "empty_cell.csv").frame.shape == want.shape


def test_empty_columns_with_no_name_a_spreadsheet_saved_are_left_out_and_named_ones_of_values_kept(tmp_path):
    df, body, want = _plain(tmp_path)
    # Excel's CSV of a sheet whose formatting reached two columns right of the table: every line ends ";;"
    (tmp_path / "trailing.csv").write_text("".join(line + ",,\n" for line in body.splitlines()))
    table = _read(tmp_path / "trailing.csv")
    pd.testing.assert_frame_equal(table.frame, want)
    assert "trailing.csv: its 2 column(s) with no name and no value (columns 5, 6) left out" in " ".join(table.notes)
    header, *rows = body.splitlines()
    (tmp_path / "held.csv").write_text("\n".join([header + ",,", *(f"{r},{i}," for i, r in enumerate(rows))]))
    assert list(_read(tmp_path / "held.csv").frame.columns) == [*want.columns, "Unnamed: 4"]  # it holds values


def test_a_sheet_with_a_title_above_its_header_reads_from_the_header(tmp_path):
    pytest.importorskip("openpyxl")
    df = make_table(n=40)
    with pd.ExcelWriter(tmp_path / "report.xlsx") as w:
        pd.DataFrame([["Sales report 2024"], ["all shops"]]).to_excel(w, index=False, header=False)
        df.to_excel(w, index=False, startrow=3)
    table = _read(tmp_path / "report.xlsx")
    pd.testing.assert_frame_equal(table.frame, df, check_dtype=False)
    assert "report.xlsx: its first 3 row(s), above the header, skipped" in " ".join(table.notes)
    named = df.rename(columns={"a": "Unnamed: 0"}).astype({"c": str})  # one header cell left empty: no title
    named.to_excel(tmp_path / "plain.xlsx", index=False)
    assert _read(tmp_path / "plain.xlsx").frame.shape == df.shape


def test_a_message_on_a_sheet_names_the_row_as_the_spreadsheet_numbers_it(tmp_path):
    pytest.importorskip("openpyxl")
    from nntrain.config.schema import DataConfig
    from nntrain.data.prepare import prepare

    df = make_table(n=60)
    df["a"] = df["a"].astype(object)
    df.loc[40, "a"] = "see notes"
    with pd.ExcelWriter(tmp_path / "report.xlsx") as w:
        pd.DataFrame([["Sales report 2024"], ["all shops"]]).to_excel(w, index=False, header=False)
        df.to_excel(w, index=False, startrow=3)  # the header on sheet row 4: row 41 on sheet row 45
    with pytest.raises(UserError, match=r"column 'a': 'see notes' at row 41 \(sheet row 45\) is not a number"):
        prepare(_read(tmp_path / "report.xlsx"), DataConfig(path="report.xlsx", target="y"), 0)


def test_a_sheet_whose_table_starts_below_blank_rows_and_right_of_an_empty_column_reads_from_its_header(tmp_path):
    pytest.importorskip("openpyxl")
    df = make_table(n=40)
    with pd.ExcelWriter(tmp_path / "margin.xlsx") as w:  # a table typed from cell B3: a margin left and above
        df.to_excel(w, index=False, startrow=2, startcol=1)
    table = _read(tmp_path / "margin.xlsx")
    assert "margin.xlsx: its first 2 row(s), above the header, skipped" in " ".join(table.notes)
    assert list(table.frame.columns)[1:] == ["a", "b", "c", "y"] and len(table.frame) == 40
    pd.testing.assert_frame_equal(table.frame.iloc[:, 1:], df, check_dtype=False)


def test_a_message_counts_lines_from_the_top_of_a_file_with_a_title(tmp_path):
    from nntrain.config.schema import DataConfig
    from nntrain.data.prepare import prepare

    df = make_table(n=60)
    df["a"] = df["a"].astype(str)
    df.loc[7, "a"] = "see notes"
    path = tmp_path / "title.csv"
    path.write_text("Sales report 2024\n\n" + df.to_csv(index=False))  # the header on line 3: row 8 on line 11
    with pytest.raises(UserError, match=r"column 'a': 'see notes' at row 8 \(line 11\) is not a number"):
        prepare(_read(path), DataConfig(path=str(path), target="y"), 0)


def test_a_message_gives_no_line_that_a_quoted_cell_across_lines_would_make_wrong(tmp_path):
    from nntrain.config.schema import DataConfig
    from nntrain.data.prepare import prepare

    df = make_table(n=60)
    df["note"] = ["line one\nline two" if i % 10 == 0 else "ok" for i in range(60)]  # a comment typed with Enter
    df["a"] = df["a"].astype(str)
    df.loc[40, "a"] = "see notes"
    path = tmp_path / "notes.csv"
    df.to_csv(path, index=False)  # row 41 on line 46: five cells above it take two lines each
    with pytest.raises(UserError) as e:
        prepare(_read(path), DataConfig(path=str(path), target="y"), 0)
    assert "column 'a': 'see notes' at row 41 is not a number" in str(e.value)


def test_outer_spaces_in_a_text_file_s_column_names_are_dropped_and_said(tmp_path):
    df = make_table(n=30).rename(columns={"a": " a ", "y": "y "})
    df.to_csv(tmp_path / "spaced.csv", index=False)
    table = _read(tmp_path / "spaced.csv")
    assert list(table.frame.columns) == ["a", "b", "c", "y"]
    assert "column names read without their outer spaces: ' a ', 'y '" in table.notes
    df.rename(columns={"b": "a"}).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(UserError, match=r"twice.csv: column names 'a' differ only by outer spaces; rename one"):
        _read(tmp_path / "twice.csv")


def _multi(path) -> None:
    """The tester's workbook: a sheet of notes, the table, and a larger lookup sheet that the largest-sheet rule
    reads."""
    with pd.ExcelWriter(path) as w:
        pd.DataFrame({"note": ["read me"]}).to_excel(w, sheet_name="About", index=False)
        make_table(n=120, task="regression").to_excel(w, sheet_name="Data", index=False)
        pd.DataFrame({"x": range(1000), "z": range(1000)}).to_excel(w, sheet_name="Lookup", index=False)


def test_a_workbook_of_several_sheets_names_the_sheet_read_the_others_and_the_one_holding_the_target(workdir, cli):
    pytest.importorskip("openpyxl")
    _multi(workdir / "multi.xlsx")
    r = cli("fit", workdir / "multi.xlsx", "--target", "y")
    assert r.exit_code == 2 and r.stderr.strip() == (
        "Error: data.target=y: no such column in sheet 'Lookup' (the sheet read); columns are: x, z; sheet 'Data' "
        "holds 'y': set data.sheet=Data"
    )
    r = cli("fit", workdir / "multi.xlsx", "--target", "q")
    assert r.exit_code == 2 and r.stderr.strip() == (
        "Error: data.target=q: no such column in sheet 'Lookup' (the sheet read); columns are: x, z; nor do its "
        "other sheets 'About', 'Data' hold it"
    )
    assert not (workdir / "runs").exists()
    table = _read(workdir / "multi.xlsx")
    assert table.notes[0] == (
        "multi.xlsx: read its sheet 'Lookup' (the one with the most cells); its other sheets: 'About', 'Data' "
        "(data.sheet=NAME reads another)"
    )
    cfg = write_config(workdir / "c.yaml", workdir / "multi.xlsx", data={"target": "y", "sheet": "Data"})
    r = cli("fit", cfg, "train.epochs=1")
    assert r.exit_code == 0, r.stderr
    assert (
        "note: multi.xlsx: read its sheet 'Data' (data.sheet); its other sheets: 'About', 'Lookup' (data.sheet=NAME "
        "reads another)" in r.stdout
    )


def test_predict_and_eval_read_the_sheet_named_as_the_runs_or_the_one_given_and_refuse_to_guess(workdir, cli):
    """A new workbook's sheet of the name the run read (its largest there), else --sheet, else its only sheet; one
    of several is refused naming them (was: its largest sheet read, here its notes: 'missing columns')."""
    pytest.importorskip("openpyxl")
    df = make_table(n=120)
    with pd.ExcelWriter(workdir / "train.xlsx") as w:
        pd.DataFrame({"about": ["prices of 2024"]}).to_excel(w, sheet_name="notes", index=False)
        df.to_excel(w, sheet_name="data", index=False)
    cfg = write_config(workdir / "c.yaml", workdir / "train.xlsx", train={"epochs": 1, "plots": False})
    assert cli("fit", cfg).exit_code == 0
    notes = pd.DataFrame({f"note{i}": [f"line {j}" for j in range(40)] for i in range(4)})  # more cells than rows
    rows = df.head(5)
    rows.to_csv(workdir / "rows.csv", index=False)
    for book, name in (("new.xlsx", "data"), ("other.xlsx", "rows")):
        with pd.ExcelWriter(workdir / book) as w:
            notes.to_excel(w, sheet_name="notes", index=False)
            rows.to_excel(w, sheet_name=name, index=False)
    rows.to_excel(workdir / "one.xlsx", sheet_name="Sheet1", index=False)
    want = cli("predict", "runs/t", "rows.csv").stdout
    for args in (["new.xlsx"], ["other.xlsx", "--sheet", "rows"], ["one.xlsx"]):
        r = cli("predict", "runs/t", *args)
        assert r.exit_code == 0 and r.stdout == want, (args, r.stderr)
    r = cli("predict", "runs/t", "other.xlsx")
    assert r.exit_code == 2 and r.stderr.strip() == (
        "Error: INPUT=other.xlsx: the workbook has 2 sheets, 'notes', 'rows', and none is named 'data' as the run's "
        "was; name the sheet to read with --sheet=NAME"
    )
    r = cli("predict", "runs/t", "other.xlsx", "--sheet", "Rows")
    assert (
        r.exit_code == 2 and "--sheet=Rows: no such sheet in INPUT=other.xlsx; its sheets: 'notes', 'rows'" in r.stderr
    )
    r = cli("eval", "runs/t", "--data", "other.xlsx")
    assert r.exit_code == 2 and "Error: --data=other.xlsx: the workbook has 2 sheets" in r.stderr
    r = cli("eval", "runs/t", "--data", "other.xlsx", "--sheet", "rows", "--json")
    report = json.loads(r.stdout)
    assert (report["data"], report["rows"]) == ("other.xlsx", 5)
    assert report["metrics"] == json.loads(cli("eval", "runs/t", "--data", "rows.csv", "--json").stdout)["metrics"]
    r = cli("predict", "runs/t", "rows.csv", "--sheet", "rows")
    assert r.exit_code == 2 and "--sheet rows: INPUT=rows.csv is not an Excel workbook" in r.stderr


def test_data_sheet_on_a_file_that_is_no_workbook_is_refused_naming_the_key(workdir, cli):
    make_table(n=120).to_csv(workdir / "t.csv", index=False)
    r = cli("fit", write_config(workdir / "c.yaml", workdir / "t.csv"), "data.sheet=Data")
    said = (
        f"  - data.sheet=Data: names a sheet of an Excel workbook (.xlsx, .xlsm, .xls), and data.path="
        f"{workdir / 't.csv'} is not one; remove data.sheet (from the command line)"
    )
    assert r.exit_code == 2 and said in r.stderr.splitlines()
    assert not (workdir / "runs").exists()


def test_formulas_without_stored_results_and_an_empty_workbook_are_refused_saying_so(workdir, cli):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["a", "b", "y"])
    for i in range(60):
        book.active.append([i, i * 2, f"=A{i + 2}*3"])  # openpyxl stores the formula, no result
    book.save(workdir / "formula.xlsx")
    r = cli("fit", workdir / "formula.xlsx", "--target", "y")
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"Error: data.path={workdir / 'formula.xlsx'}: column(s) 'y' of sheet 'Sheet' hold formulas with no stored "
        "results, so every value reads as missing: the workbook was written by a program and never opened and saved "
        "in Excel or LibreOffice, which compute and store them. Open it there and save it (or export the sheet as "
        "CSV), or have the program write the values instead of formulas"
    )
    openpyxl.Workbook().save(workdir / "empty.xlsx")
    r = cli("fit", workdir / "empty.xlsx", "--target", "y")
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"Error: data.path={workdir / 'empty.xlsx'}: the workbook is empty: its only sheet, 'Sheet', holds no cells "
        "(no header, no rows)"
    )
    book = openpyxl.Workbook()
    book.create_sheet("rows").append(["a", "y"])  # a header, no rows
    book.save(workdir / "header.xlsx")
    with pytest.raises(UserError, match=r"sheet 'Sheet' is empty \(no header, no rows\); sheets with cells: 'rows'"):
        _read(workdir / "header.xlsx")
    with pytest.raises(UserError, match="the table has a header but no data rows"):
        _read(workdir / "header.xlsx", sheet="rows")
    assert not (workdir / "runs").exists()


def test_counts_written_short_with_k_m_or_b_are_read_as_numbers_saying_so(tmp_path):
    """1.2k, 450K, 3M, $2.5B as web pages and exports write counts and amounts (were text: one level per value);
    5m (minutes, metres) and codes such as 2B among other letters stay text, as does all of it under data.decimal."""
    (tmp_path / "s.csv").write_text(
        "views,price,run,flat,y\n1.2k,$3.5M,5m,2B,1\n450,$900K,12m,3A,0\n3M,?,7m,2B,1\n,$1.25B,9m,1C,0\n"
    )
    table = _read(tmp_path / "s.csv")
    assert table.frame["views"].tolist()[:3] == [1200.0, 450.0, 3_000_000.0] and pd.isna(table.frame["views"][3])
    assert pd.isna(table.frame["price"][2]) and table.frame["price"][[0, 1, 3]].tolist() == [3.5e6, 9e5, 1.25e9]
    assert table.frame["run"].tolist() == ["5m", "12m", "7m", "9m"] and table.frame["flat"][1] == "3A"
    assert "s.csv: 'views', 'price' read as numbers with their k, M or B suffixes (1.2k is 1200" in " ".join(
        table.notes
    )
    assert _read(tmp_path / "s.csv", decimal=".").frame["views"].tolist()[:3] == ["1.2k", "450", "3M"]


def test_a_run_trained_on_an_aligned_file_with_short_counts_predicts_from_one_written_alike(workdir, cli):
    """predict reads a new file as the run read its own: runs of spaces as the delimiter, 1.2k as 1200."""
    df = make_table(n=120, task="regression", cat=True).round(3)
    df["views"] = [f"{v / 10:.1f}k" if v % 3 else f"{v}" for v in range(100, 220)]
    quoted_color = df.assign(color='"' + df.color + '"')
    (workdir / "t.dat").write_text(quoted_color.to_string(index=False) + "\n")
    (workdir / "new.dat").write_text(quoted_color.drop(columns="y").head(7).to_string(index=False) + "\n")
    r = cli("fit", "t.dat", "--target", "y", "train.bag=1", "train.epochs=2", "--quiet")
    assert r.exit_code == 0 and "t.dat: fields separated by spaces" in r.stdout + r.stderr, r.stderr
    plain = df.drop(columns="y").head(7).assign(views=[v * 100 if v % 3 else v for v in range(100, 107)])
    plain.to_csv(workdir / "plain.csv", index=False)  # the same rows, 10.1k written 10100
    for name, out in (("new.dat", "p.csv"), ("plain.csv", "q.csv")):
        r = cli("predict", "runs/t", name, "-o", out)
        assert r.exit_code == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "p.csv"), pd.read_csv(workdir / "q.csv"))
    assert len(pd.read_csv(workdir / "p.csv")) == 7
