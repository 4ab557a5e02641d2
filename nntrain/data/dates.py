"""Dates and times: which columns hold them, and their numeric parts (year, month, day of month, day of week,
day of year, hour of day, days since the training split's earliest value, and the sine and cosine of month, day
of week, day of year and hour over their cycles). A date is never one level per distinct value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# ISO-like: 2013-01-01, 2013-1-1, 2013-01-01 05:00, 2013-01-01T05:00:00.5Z, 2013-01-01 05:00:00+01:00
ISO_LIKE = r"\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?: ?(?:Z|UTC|[+-]\d{2}:?\d{2}))?"
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


def is_date_column(s: pd.Series) -> bool:
    """A datetime column, or text whose every distinct value (a sample of them on big columns) is ISO-like."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return True
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    values = pd.Series(s.dropna().unique())
    if values.empty:
        return False
    if len(values) > SAMPLE:
        values = values.sample(SAMPLE, random_state=0)
    text = values.astype(str).str.strip()
    return bool(text.str.fullmatch(ISO_LIKE).all())


def seconds(s: pd.Series) -> np.ndarray:
    """Seconds since 1970 (UTC; a value without a zone is read as UTC), NaN where missing or not a date."""
    if pd.api.types.is_datetime64_any_dtype(s):
        t = s if getattr(s.dt, "tz", None) is not None else s.dt.tz_localize("UTC")
    else:
        text = s.astype("string").str.strip().str.replace(r" ?UTC$", "Z", regex=True)
        t = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        if t.isna().sum() > s.isna().sum():  # a date ISO8601 cannot read (2013-1-1): any format, value by value
            t = t.fillna(pd.to_datetime(text.where(t.isna()), format="mixed", utc=True, errors="coerce"))
    naive = t.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    out = naive.astype(np.int64).astype(np.float64) / 1e9
    out[np.isnat(naive)] = np.nan
    return out


def unreadable(s: pd.Series, secs: np.ndarray) -> np.ndarray:
    """Rows that hold a value that is not a date (missing ones excluded)."""
    return np.isnan(secs) & s.notna().to_numpy()


def parts(secs: np.ndarray, origin: float) -> dict[str, np.ndarray]:
    """Each part of each value as float64 (NaN where the date is missing)."""
    ok = ~np.isnan(secs)
    t = pd.to_datetime(np.where(ok, secs, 0.0), unit="s")
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
