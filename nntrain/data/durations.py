"""Durations: lengths of time written h:mm:ss or m:ss (1:02:03, 45:30, 125:30, -0:30), or a column of time
deltas (Parquet's and Arrow's duration type, Excel's [h]:mm:ss cells, pandas' timedelta64), read as one number:
seconds. Two fields are minutes and seconds (45:30 is 2,730 s), three are hours, minutes and seconds, as race
results and call logs write them. A text column whose every value is a time of day (13:45) is read as one
(dates.py) before it is asked whether it holds durations: a column of them has a value past 23:59 or mixes
m:ss with h:mm:ss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nntrain.data.tables import where
from nntrain.errors import UserError, quoted

FIELDS = r"^([+-]?)(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$"
EXAMPLE = "1:30 is 90 s, 1:02:03 is 3,723 s"
LOOK = 100  # distinct values looked at before the whole column


def is_duration_column(s: pd.Series) -> bool:
    """Time deltas, or text whose every distinct value is a duration."""
    if pd.api.types.is_timedelta64_dtype(s):
        return True
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return False
    values = pd.Series(s.dropna().unique())
    if values.empty:
        return False
    if pd.api.types.infer_dtype(values.head(LOOK), skipna=True) == "timedelta":
        return pd.api.types.infer_dtype(values, skipna=True) == "timedelta"
    text = values.astype(str)
    # a column of names or levels fails on its first values: the rest (up to millions) is read only for durations
    return bool(_text_seconds(text.head(LOOK)).notna().all() and _text_seconds(text).notna().all())


def seconds(s: pd.Series, header_line: int) -> np.ndarray:
    """Each value's seconds, float64 (NaN where missing); a value that is no duration is an error naming it."""
    if pd.api.types.is_timedelta64_dtype(s) or pd.api.types.infer_dtype(s, skipna=True) == "timedelta":
        return pd.to_timedelta(s).dt.total_seconds().to_numpy(np.float64, na_value=np.nan)
    out = _text_seconds(s.astype("string"))
    bad = (out.isna() & s.notna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"column {quoted(s.name)}: {quoted(s.iloc[i])} at {where(header_line, i)} is not a duration (h:mm:ss or "
            f"m:ss), as the column's training values were"
        )
    return out.to_numpy(np.float64, na_value=np.nan)


def _text_seconds(text: pd.Series) -> pd.Series:
    """Seconds of each value written h:mm:ss or m:ss, missing where a value is not (minutes or seconds past 59)."""
    f = text.str.strip().str.extract(FIELDS)
    first, second = (pd.to_numeric(f[i], errors="coerce").to_numpy(np.float64, na_value=np.nan) for i in (1, 2))
    third = pd.to_numeric(f[3], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    three = ~np.isnan(third)
    with np.errstate(invalid="ignore"):
        ok = (second <= 59) & (~three | (third < 60))
    total = np.where(three, first * 3600 + second * 60 + np.nan_to_num(third), first * 60 + second)
    sign = np.where(f[0].to_numpy(object, na_value="") == "-", -1.0, 1.0)
    return pd.Series(np.where(ok, sign * total, np.nan), index=text.index)
