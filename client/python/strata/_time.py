"""Timestamps and durations: everything the API accepts, converted to the store's int64
microseconds since the Unix epoch (UTC).

Accepted timestamps: ``datetime`` / ``pandas.Timestamp`` / ``numpy.datetime64`` (naive ones
are UTC, as in the CLI where a missing zone means UTC), ISO 8601 strings, ``datetime.date``
(midnight UTC), and integers only together with an explicit ``ts_unit`` ("s", "ms", "us",
"ns"): a bare integer is ambiguous, and one that lands outside 1990-2200 in its unit is
refused as a unit mistake unless allow_any_ts (the store's guard, as in the CLI). A column
must not mix naive and tz-aware values."""
import datetime as _dt
import numbers

import numpy as np
import pandas as pd

from . import _core
from .errors import InvalidArgument

TS_MAX = _core.TS_MAX
TS_MIN = -TS_MAX - 1
_UNIT_US = {"s": 1_000_000, "ms": 1000, "us": 1}


def _check(v, ts_unit, us, what):
    """The store's plausibility guard on one integer timestamp (InvalidArgument)."""
    try:
        _core.check_ts(str(int(v)), ts_unit, int(us))
    except InvalidArgument as e:
        raise InvalidArgument(f"{what}: {e.message} (allow_any_ts=True accepts it)",
                              e.code) from None


def _ints_to_us(v, ts_unit, what, allow_any):
    """int64 array in ts_unit to microseconds, guarded unless allow_any."""
    if ts_unit is None:
        raise InvalidArgument(f"{what}: integer timestamps need ts_unit='s', 'ms', 'us' "
                              "or 'ns'")
    if ts_unit == "ns":
        us = v // 1000
    elif ts_unit in _UNIT_US:
        us = v * _UNIT_US[ts_unit]
        if len(v) and np.abs(v).max() > TS_MAX // _UNIT_US[ts_unit]:
            i = int(np.argmax(np.abs(v)))
            raise InvalidArgument(f"{what}: integer timestamp {int(v[i])} in {ts_unit} "
                                  "overflows")
    else:
        raise InvalidArgument(f"{what}: unknown ts_unit {ts_unit!r} (s, ms, us, ns)")
    if not allow_any and len(us):
        bad = (us < _core.TS_PLAUSIBLE_MIN) | (us >= _core.TS_PLAUSIBLE_MAX)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _check(v[i], ts_unit, us[i], f"{what} row {i}")
    return us


def _int_to_us(v, ts_unit, what, allow_any=False):
    if ts_unit is None:
        raise InvalidArgument(f"{what}: integer timestamp {v!r} needs ts_unit='s', 'ms', "
                              "'us' or 'ns'")
    if ts_unit == "ns":
        us = int(v) // 1000
    elif ts_unit in _UNIT_US:
        us = int(v) * _UNIT_US[ts_unit]
    else:
        raise InvalidArgument(f"{what}: unknown ts_unit {ts_unit!r} (s, ms, us, ns)")
    if not -TS_MAX - 1 <= us <= TS_MAX:
        raise InvalidArgument(f"{what}: integer timestamp {v} in {ts_unit} overflows")
    if not allow_any:
        _check(v, ts_unit, us, what)
    return us


def to_us(v, ts_unit=None, what="ts", allow_any=False):
    """One timestamp to microseconds (None stays None). Integers need ts_unit and, unless
    allow_any, must land within 1990-2200."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        raise InvalidArgument(f"{what}: {v!r} is not a timestamp")
    if isinstance(v, (numbers.Integral, np.integer)):
        return _int_to_us(v, ts_unit, what, allow_any)
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit():
            return _int_to_us(int(s), ts_unit, what, allow_any)
        try:
            return _core.parse_ts(s)
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e.message}", e.code) from None
    if isinstance(v, (_dt.datetime, np.datetime64)):
        t = pd.Timestamp(v)
        if t is pd.NaT:
            raise InvalidArgument(f"{what}: NaT is not a timestamp")
        return t.value // 1000  # naive: as if UTC; aware: UTC nanoseconds
    if isinstance(v, _dt.date):
        return to_us(_dt.datetime(v.year, v.month, v.day), ts_unit, what)
    raise InvalidArgument(f"{what}: {type(v).__name__} {v!r} is not a timestamp")


def from_us(us):
    """Microseconds to a tz-aware pandas Timestamp (UTC)."""
    return pd.Timestamp(us * 1000, tz="UTC")


def us_to_datetime64(us, found=None):
    """int64 microseconds array to a tz-aware UTC datetime Series values (NaT where not
    found)."""
    a = np.asarray(us, dtype=np.int64).astype("datetime64[us]").astype("datetime64[ns]")
    if found is not None:
        a[~found] = np.datetime64("NaT")
    return pd.DatetimeIndex(a).tz_localize("UTC")


def _object_column_to_us(s, ts_unit, what, allow_any):
    kinds = {type(x) for x in s}
    if any(isinstance(x, (bool, np.bool_)) for x in s):
        raise InvalidArgument(f"{what}: booleans are not timestamps")
    if all(issubclass(k, (numbers.Integral, np.integer)) for k in kinds):
        return np.array([_int_to_us(x, ts_unit, what, allow_any) for x in s], dtype=np.int64)
    if all(issubclass(k, (_dt.datetime, np.datetime64)) for k in kinds):
        aware = {getattr(x, "tzinfo", None) is not None for x in s}
        if len(aware) > 1:
            raise InvalidArgument(f"{what}: the column mixes naive and tz-aware timestamps; "
                                  "make them all tz-aware (or all naive = UTC)")
    elif all(issubclass(k, str) for k in kinds):
        if any(x.strip().lstrip("-").isdigit() for x in s):
            return np.array([to_us(x, ts_unit, what, allow_any) for x in s], dtype=np.int64)
    else:
        raise InvalidArgument(f"{what}: mixed value types {sorted(k.__name__ for k in kinds)}")
    try:
        t = pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"{what}: {e}") from None
    return t.values.astype("datetime64[us]").view(np.int64)


def column_to_us(col, ts_unit=None, what="ts", allow_any=False):
    """A column (Series, array, list) of timestamps to a contiguous int64 array of us
    (integers: as in to_us)."""
    s = col if isinstance(col, pd.Series) else pd.Series(col)
    if len(s) and s.isna().any():
        row = int(np.flatnonzero(s.isna().to_numpy())[0])
        raise InvalidArgument(f"{what}: missing timestamp at row {row}")
    dt = s.dtype
    if isinstance(dt, pd.DatetimeTZDtype):
        v = s.values  # tz-aware data is held as UTC datetime64[ns]: no conversion pass
        return np.ascontiguousarray(v.astype("datetime64[us]").view(np.int64))
    if np.issubdtype(dt, np.datetime64):
        return np.ascontiguousarray(s.to_numpy().astype("datetime64[us]").view(np.int64))
    if pd.api.types.is_bool_dtype(dt):
        raise InvalidArgument(f"{what}: a boolean column is not timestamps")
    if pd.api.types.is_integer_dtype(dt):
        return np.ascontiguousarray(_ints_to_us(s.to_numpy(dtype=np.int64), ts_unit, what,
                                                allow_any))
    if pd.api.types.is_float_dtype(dt):
        raise InvalidArgument(f"{what}: float column is not timestamps (use datetime64, or "
                              "integers with ts_unit)")
    return _object_column_to_us(s, ts_unit, what, allow_any)


def to_duration_us(v, what="duration"):
    """A duration ("30d", timedelta, pandas/numpy timedelta) to microseconds; None and 0 are
    0 (no limit)."""
    if v is None:
        return 0
    if isinstance(v, str):
        try:
            return _core.parse_duration(v)
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e.message}", e.code) from None
    if isinstance(v, (_dt.timedelta, np.timedelta64)):
        us = pd.Timedelta(v).value // 1000
        if us < 0:
            raise InvalidArgument(f"{what}: negative duration")
        return us
    if isinstance(v, numbers.Integral) and not isinstance(v, bool) and v == 0:
        return 0
    raise InvalidArgument(f"{what}: {v!r} is not a duration (use '30d', '12h' or a timedelta)")
