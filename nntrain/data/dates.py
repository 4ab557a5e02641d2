"""Dates and times: which columns hold them, and their numeric parts (year, month, day of month, day of week,
day of year, hour of day (all a column of times of day has), days since the training split's earliest value,
and the sine and cosine of month, day of week, day of year and hour over their cycles). A date is never one
level per distinct value.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pandas as pd

from nntrain.errors import quoted

TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?: ?(?:Z|UTC|[+-]\d{2}:?\d{2}))?"
# How a column writes its dates (its "order", kept in the checkpoint so that predict reads them as fit did):
# iso: 2013-01-01, 2013-1-1, 2013-01-01 05:00, 2013-01-01T05:00:00.5Z, 2013-01-01 05:00:00+01:00
# ymd: 2013/01/31, 2013.01.31; dmy: 31/01/2013, 31.01.2013, 31-01-2013, 31/01/13; mdy: 01/31/2013, 1/31/13 (each
# with a time or not)
# named: 31 Jan 2013, 31-January-2013, Jan 31, 2013 (English month names)
ISO_LIKE = r"\d{4}-\d{1,2}-\d{1,2}" + TIME
YMD = r"(\d{4})([/.])(\d{1,2})\2(\d{1,2})(" + TIME + ")"
DAY_MONTH = r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(" + TIME + ")"  # day and month in either order
# A two-digit year (31/01/20) is read as Excel reads one: 00-29 are 2000-2029, 30-99 are 1930-1999.
CENTURY_TURNS = 30
MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
NAMED = rf"(?:\d{{1,2}}[ -]{MONTH}[ -]\d{{4}}|{MONTH} \d{{1,2}},? \d{{4}})" + TIME
# time: a time of day alone (13:45, 13:45:10.5, 1:45 PM), a column beside a date column: its hour parts only
CLOCK = r"(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?(?: ?([AaPp])\.?[Mm]\.?)?"
WRITTEN = {
    "iso": "2013-01-31",
    "ymd": "2013/01/31",
    "dmy": "31/01/2013",
    "mdy": "01/31/2013",
    "named": "31 Jan 2013",
    "time": "13:45",
}
# data.date_order's words for the two orders a table can leave open
SAID = {"day_first": "dmy", "month_first": "mdy"}
# The cycles' sine and cosine beside them: December next to January, Sunday next to Monday, 23:00 next to
# midnight. On the suite's four date tables (benchmarks/column_alternatives.py --kind cyclic, seeds 0-2) Chicago
# gained 0.023 R2, hotel_rates and weather 0.002; email lost 0.002 (2 of 785 test rows).
CYCLES = {"month": 12.0, "weekday": 7.0, "yearday": 365.25, "hour": 24.0}
PARTS = ("year", "month", "day", "weekday", "yearday", "hour", "days") + tuple(
    f"{part}_{f}" for part in CYCLES for f in ("sin", "cos")
)
SECONDS_PER_DAY = 86_400.0
# Distinct values looked at to decide; a column of dates has every one of them ISO-like.
SAMPLE = 2_000


def date_order(s: pd.Series) -> tuple[str | None, str]:
    """(how the column writes its dates, or None where it holds none; a note where its values leave day and
    month open). A datetime column is iso; text is a date column where every distinct value (a sample of them
    on big columns) is written one same way."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return "iso", ""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None, ""
    values = pd.Series(s.dropna().unique())
    if values.empty:
        return None, ""
    if len(values) > SAMPLE:
        values = values.sample(SAMPLE, random_state=0)
    text = values.astype(str).str.strip()
    for order, pattern in (("iso", ISO_LIKE), ("ymd", YMD), ("named", NAMED)):
        if text.str.fullmatch(pattern, case=False).all():
            return order, ""
    if _clock_seconds(text).notna().all():
        return "time", ""
    fields = text.str.extract(f"^{DAY_MONTH}$")
    if fields[0].isna().any():  # dates written in several ways (2020-01-05, 05/01/2020) or none
        if not (fields[0].notna() | _other_way(text)).all():
            return None, ""
        fields = fields[fields[0].notna()]
        if fields.empty:
            return "iso", ""  # ISO, 2013/01/31 and month names: each read as it reads best
    return _day_or_month_first(fields[0].astype(int), fields[2].astype(int), fields[1].iloc[0])


def _other_way(text: pd.Series) -> pd.Series:
    """The values written a way that says which field is the day (2013-01-31, 2013/01/31, 31 Jan 2013)."""
    return text.str.fullmatch(f"{ISO_LIKE}|{YMD}|{NAMED}", case=False)


def _day_or_month_first(first: pd.Series, second: pd.Series, sep: str) -> tuple[str | None, str]:
    """A field above 12 is the day; where both stay at 12 or less, a constant field is the day (monthly rows on
    the 1st), else dots are day first (31.01.2013, as every table that writes them) and the others month first."""
    if min(first.min(), second.min()) < 1 or max(first.max(), second.max()) > 31:
        return None, ""
    big_first, big_second = first.max() > 12, second.max() > 12
    if big_first and big_second:
        return None, ""
    if big_first or big_second:
        return ("dmy" if big_first else "mdy"), ""
    if first.nunique() == 1 < second.nunique():
        return "dmy", "every value's first field is the same"
    if second.nunique() == 1 < first.nunique():
        return "mdy", "every value's second field is the same"
    return ("dmy" if sep == "." else "mdy"), "no value has a field above 12"


def several_ways(s: pd.Series) -> list[str]:
    """An example of each way a date column's values are written, where they are written more than one way
    (2020-01-05, 05/01/2020, Jan 5, 2020); else []."""
    text = pd.Series(s.dropna().unique()).astype(str).str.strip()
    text = text.sample(SAMPLE, random_state=0) if len(text) > SAMPLE else text
    ways = [text[text.str.fullmatch(p, case=False)] for p in (ISO_LIKE, YMD, NAMED, DAY_MONTH)]
    seen = [w.iloc[0] for w in ways if len(w)]
    return seen if len(seen) > 1 else []


def fit_notes(s: pd.Series, order: str, open_because: str) -> list[str]:
    """fit's notes on how a date column is written: several ways, day or month first."""
    col, ways = str(s.name), several_ways(s) if order != "time" else []
    out = [f"column {quoted(col)}: dates written {len(ways)} ways ({', '.join(ways)}), each read as the date it is"]
    return (out if ways else []) + ([order_note(col, order, open_because)] if order in ("dmy", "mdy") else [])


def is_date_column(s: pd.Series) -> bool:
    return date_order(s)[0] is not None


def column_order(s: pd.Series, said: str | None) -> tuple[str | None, str]:
    """data.date_order's word for the column (day_first, month_first) as an order, else date_order's."""
    return (SAID[said], "") if said else date_order(s)


def seconds(s: pd.Series, order: str = "iso", local: bool = False) -> np.ndarray:
    """Seconds since 1970, NaN where missing or not a date written in the column's order. A value without a
    zone is read as UTC; one with a zone as that instant (UTC), or, `local`, as its own zone's wall clock
    (2020-01-01T00:00+01:00 is midnight of January 1st, as the same value written without its zone is)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        zoned = getattr(s.dt, "tz", None) is not None
        t = s.dt.tz_localize(None) if zoned and local else s if zoned else s.dt.tz_localize("UTC")
        return _epoch(t.dt.tz_localize("UTC") if t.dt.tz is None else t)
    if order == "time":  # seconds into the day, on 1970-01-01: only the hour parts vary
        return _clock_seconds(s.astype("string").str.strip()).to_numpy()
    text = s.astype("string").str.strip()
    text = _year_first(text, order) if order in ("ymd", "dmy", "mdy") else text
    text = text.str.replace(r" ?UTC$", "Z", regex=True)
    t = pd.to_datetime(text, format="mixed" if order == "named" else "ISO8601", utc=True, errors="coerce")
    if t.isna().sum() > s.isna().sum():  # a date ISO8601 cannot read (2013-1-1): any format, value by value
        t = t.fillna(pd.to_datetime(text.where(t.isna()), format="mixed", utc=True, errors="coerce"))
    return _far(text, _epoch(t)) + (_offsets(text) if local else 0.0)


def _epoch(t: pd.Series) -> np.ndarray:
    # in the values' own unit: through nanoseconds, a date past 2262 or before 1677 wraps by 584 years
    naive = t.dt.tz_convert(None).to_numpy()
    return ((naive - np.datetime64(0, "s")) / np.timedelta64(1, "s")).astype(np.float64)


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?Z?")


def _far(text: pd.Series, secs: np.ndarray) -> np.ndarray:
    """pandas before 3 reads an ISO date outside 1677-2262 as missing (its datetimes were nanoseconds); numpy's
    datetime64 reads it (9999-12-31 as "no end", 1500s dates) where pandas 3 reads it itself."""
    gone = np.flatnonzero(np.isnan(secs) & text.notna().to_numpy(bool))
    for i in gone if len(gone) else []:
        value = str(text.iloc[i])
        if ISO_DAY.fullmatch(value):
            with contextlib.suppress(ValueError):
                at = np.datetime64(value.removesuffix("Z").replace(" ", "T"), "us")
                secs[i] = (at - np.datetime64(0, "us")) / np.timedelta64(1, "s")
    return secs


def timestamps(secs: np.ndarray) -> pd.DatetimeIndex:
    """Seconds since 1970 as datetimes to the microsecond: years 1 to 9999 (nanoseconds span 1677-2262 only)."""
    return pd.DatetimeIndex(np.round(np.asarray(secs, np.float64) * 1e6).astype(np.int64).astype("datetime64[us]"))


def shown(secs: float) -> str:
    """A moment in seconds since 1970 as ISO text (the origin in fit's notes and the export sidecar)."""
    return timestamps(np.array([secs]))[0].isoformat()


def _offsets(text: pd.Series) -> np.ndarray:
    """Each value's zone offset in seconds (+01:00: 3600), 0 where it has none or is Z: written after a time."""
    f = text.str.extract(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)? ?([+-])(\d{2}):?(\d{2})$")
    sign = np.where(f[0].to_numpy(object, na_value="+") == "-", -1.0, 1.0)
    h, m = (pd.to_numeric(f[i], errors="coerce").fillna(0).to_numpy(np.float64) for i in (1, 2))
    return sign * (h * 3600 + m * 60)


def _clock_seconds(text: pd.Series) -> pd.Series:
    """Seconds since midnight of each time of day (13:45, 1:45 PM), missing where a value is none: an hour
    past 23 (a duration, 125:30) or 0 and past 12 with AM or PM, minutes or seconds past 59."""
    f = text.str.extract(f"^{CLOCK}$")
    h, m, sec = (pd.to_numeric(f[i], errors="coerce").to_numpy(np.float64, na_value=np.nan) for i in range(3))
    sec = np.where(f[2].notna().to_numpy(bool), sec, 0.0)
    half = f[3].str.lower().to_numpy(object, na_value=None)
    am, pm = half == "a", half == "p"
    with np.errstate(invalid="ignore"):
        ok = (h <= 23) & (m <= 59) & (sec < 60) & (~(am | pm) | ((h >= 1) & (h <= 12)))
    h = np.where(am | pm, h % 12 + 12 * pm, h)
    return pd.Series(np.where(ok, h * 3600 + m * 60 + sec, np.nan), index=text.index)


def _year_first(text: pd.Series, order: str) -> pd.Series:
    """ymd, dmy and mdy text as ISO (2013-01-31 and its time); a value written another way that says which field
    is the day stays as it is (2013-01-31, 31 Jan 2013); any other becomes missing (01/31/2013 in a dmy column)."""
    f = text.str.extract(f"^{YMD if order == 'ymd' else DAY_MONTH}$")
    year, month, day = {"ymd": (0, 2, 3), "dmy": (3, 2, 0), "mdy": (3, 0, 2)}[order]
    y = f[year]
    two = (y.str.len() == 2).fillna(False)
    if two.any():
        y = y.mask(two, np.where(pd.to_numeric(y, errors="coerce") < CENTURY_TURNS, "20", "19") + y)
    return (y + "-" + f[month].str.zfill(2) + "-" + f[day].str.zfill(2) + f[4]).fillna(text.where(_other_way(text)))


def unreadable(s: pd.Series, secs: np.ndarray) -> np.ndarray:
    """Rows that hold a value that is not a date (missing ones excluded)."""
    return np.isnan(secs) & s.notna().to_numpy()


def parts(secs: np.ndarray, origin: float) -> dict[str, np.ndarray]:
    """Each part of each value as float64 (NaN where the date is missing)."""
    ok = ~np.isnan(secs)
    t = timestamps(np.where(ok, secs, 0.0))
    out = {
        "year": t.year.to_numpy(dtype=np.float64),
        "month": t.month.to_numpy(dtype=np.float64),
        "day": t.day.to_numpy(dtype=np.float64),
        "weekday": t.day_of_week.to_numpy(dtype=np.float64),
        "yearday": t.day_of_year.to_numpy(dtype=np.float64),  # a holiday on its date, in one number
        "hour": (t.hour + t.minute / 60 + t.second / 3600).to_numpy(dtype=np.float64),
        "days": (secs - origin) / SECONDS_PER_DAY,
    }
    for part, period in CYCLES.items():
        angle = 2 * np.pi * out[part] / period
        out[f"{part}_sin"], out[f"{part}_cos"] = np.sin(angle), np.cos(angle)
    return {k: np.where(ok, v, np.nan) for k, v in out.items()}


def part_name(col: str, part: str) -> str:
    return f"{col}.{part}"


def order_note(col: str, order: str, open_because: str) -> str:
    """fit's note on a column read day first or month first; a warning where its values left that open."""
    first = f"{'day' if order == 'dmy' else 'month'} first ({WRITTEN[order]})"
    if not open_because:
        return f"column {quoted(col)}: dates written {first}"
    other = "month_first" if order == "dmy" else "day_first"
    return (
        f"warning: column {quoted(col)}: dates read {first}, a guess: {open_because}; "
        f"data.date_order: {{{col}: {other}}} reads them the other way"
    )
