"""Columns between pandas/numpy and the C core: feature types to column kinds, DataFrame
columns to the buffers strata._core.put_columns writes, and the buffers strata._core.join
fills back to typed pandas columns. Kinds (one letter, as in client/python/src/py_data.c):
i int64 + mask, d float64 (NaN = missing), f float32 (NaN), v float32[n][dim] + mask,
l int64 lists (flat + offsets) + mask, s str list, b bytes list."""
import re

import numpy as np
import pandas as pd

from .errors import InvalidArgument, TypeMismatch

_VEC = re.compile(r"^f32\[(\d+)\]$")


def kind_of(ftype):
    """(kind, dim) of a feature type string."""
    m = _VEC.match(ftype)
    if m:
        return "v", int(m.group(1))
    kinds = {"i64": "i", "f64": "d", "f32": "f", "str": "s", "bytes": "b", "i64[]": "l"}
    if ftype not in kinds:
        raise InvalidArgument(f"unknown feature type {ftype!r}")
    return kinds[ftype], 0


def _is_na(x):
    return x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and x != x)


def _bad(name, ftype, s, detail=""):
    return TypeMismatch(f"column '{name}' ({s.dtype}) does not fit feature '{name}' of type "
                        f"{ftype}{': ' + detail if detail else ''}")


def _int_column(name, ftype, s):
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        raise _bad(name, ftype, s, "booleans are not integers")
    if pd.api.types.is_integer_dtype(dt):
        if isinstance(dt, np.dtype) and dt == np.uint64 and len(s) and s.max() > 2**63 - 1:
            raise _bad(name, ftype, s, "values above the int64 range")
        mask = s.isna().to_numpy() if pd.api.types.is_extension_array_dtype(dt) else None
        return s.to_numpy(dtype=np.int64, na_value=0), mask
    if dt == object:
        vals = s.to_numpy()
        na = np.array([_is_na(x) for x in vals], dtype=bool)
        ok = all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
                 for x in vals[~na])
        if not ok:
            raise _bad(name, ftype, s, "values that are not integers")
        out = np.zeros(len(vals), dtype=np.int64)
        out[~na] = vals[~na].astype(np.int64)
        return out, na
    raise _bad(name, ftype, s, "use an integer or nullable Int64 column")


def _float_column(name, ftype, s, dtype):
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        raise _bad(name, ftype, s, "booleans are not numbers")
    if pd.api.types.is_numeric_dtype(dt):
        return np.ascontiguousarray(s.to_numpy(dtype=dtype, na_value=np.nan))
    if dt == object:
        vals = s.to_numpy()
        na = np.array([_is_na(x) for x in vals], dtype=bool)
        import numbers
        if not all(isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
                   for x in vals[~na]):
            raise _bad(name, ftype, s, "values that are not numbers")
        out = np.full(len(vals), np.nan, dtype=dtype)
        out[~na] = vals[~na].astype(dtype)
        return out
    raise _bad(name, ftype, s, "use a numeric column")


def _object_list(name, ftype, s, types):
    vals = s.to_numpy(dtype=object)
    out = []
    for x in vals:
        if _is_na(x):
            out.append(None)
        elif isinstance(x, types):
            out.append(bytes(x) if isinstance(x, bytearray) else x)
        else:
            raise _bad(name, ftype, s, f"holds a {type(x).__name__}")
    return out


def _vec_column(name, ftype, s, dim):
    vals = s.to_numpy(dtype=object)
    mask = np.array([_is_na(x) if not isinstance(x, (list, tuple, np.ndarray)) else False
                     for x in vals], dtype=bool)
    out = np.full((len(vals), dim), np.nan, dtype=np.float32)
    for i in np.flatnonzero(~mask):
        try:
            a = np.asarray(vals[i], dtype=np.float32)
        except (TypeError, ValueError):
            raise _bad(name, ftype, s, f"row {i} is not a vector of numbers") from None
        if a.shape != (dim,):
            raise _bad(name, ftype, s, f"row {i} has shape {a.shape}, expected ({dim},)")
        out[i] = a
    return out, mask


def _list_column(name, ftype, s):
    vals = s.to_numpy(dtype=object)
    mask = np.zeros(len(vals), dtype=bool)
    parts, offs = [], np.zeros(len(vals) + 1, dtype=np.int64)
    for i, x in enumerate(vals):
        if not isinstance(x, (list, tuple, np.ndarray)) and _is_na(x):
            mask[i] = True
            a = np.zeros(0, dtype=np.int64)
        else:
            a = np.asarray(x)
            if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
                raise _bad(name, ftype, s, f"row {i} is not a list of integers")
            a = a.astype(np.int64)
        parts.append(a)
        offs[i + 1] = offs[i] + len(a)
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return (flat if flat.size else np.zeros(1, dtype=np.int64)), mask, offs


def put_column(name, ftype, col):
    """The (name, kind, data, mask, extra) tuple strata._core.put_columns writes for a
    column; raises TypeMismatch when the column cannot hold the feature's type."""
    s = col if isinstance(col, pd.Series) else pd.Series(col)
    kind, dim = kind_of(ftype)
    if kind == "i":
        data, mask = _int_column(name, ftype, s)
        return (name, kind, data, None if mask is None else mask.view(np.uint8), None)
    if kind in "df":
        return (name, kind, _float_column(name, ftype, s, np.float64 if kind == "d" else
                                          np.float32), None, None)
    if kind == "s":
        return (name, kind, _object_list(name, ftype, s, str), None, None)
    if kind == "b":
        return (name, kind, _object_list(name, ftype, s, (bytes, bytearray)), None, None)
    if kind == "v":
        data, mask = _vec_column(name, ftype, s, dim)
        return (name, kind, data, mask.view(np.uint8), dim)
    flat, mask, offs = _list_column(name, ftype, s)
    return (name, kind, flat, mask.view(np.uint8), offs)


class Output:
    """The buffers one feature's join results are written into."""

    def __init__(self, ftype, n, with_ts):
        self.ftype = ftype
        self.kind, self.dim = kind_of(ftype)
        dtypes = {"i": np.int64, "d": np.float64, "f": np.float32}
        if self.kind in dtypes:
            self.data = np.empty(n, dtype=dtypes[self.kind])
        elif self.kind == "v":
            self.data = np.empty((n, self.dim), dtype=np.float32)
        else:
            self.data = None
        self.found = np.empty(n, dtype=np.bool_)
        self.evts = np.empty(n, dtype=np.int64) if with_ts else None
        self.objects = None

    def spec(self):
        return (self.kind, self.data, self.found, self.evts)

    def columns(self, name, embeddings="column"):
        """[(column name, values)] for a DataFrame: Int64 for i64, float64/float32, string
        for str, objects for bytes and i64[], embeddings as a column of float32 arrays or,
        with embeddings="wide", one float32 column per dimension (name_0, name_1, ...)."""
        k = self.kind
        if k == "i":
            return [(name, pd.arrays.IntegerArray(self.data, ~self.found))]
        if k in "df":
            return [(name, self.data)]
        if k == "s":
            return [(name, pd.array(self.objects, dtype="string"))]
        if k in "bl":
            return [(name, object_array(self.objects))]
        if embeddings == "wide":
            return [(f"{name}_{i}", self.data[:, i]) for i in range(self.dim)]
        col = np.empty(len(self.data), dtype=object)
        if len(col):
            col[:] = list(self.data)
            col[~self.found] = None
        return [(name, col)]


def get_column(ftype, values):
    """A get result's values (a list with None for absent) as a typed column."""
    kind, _ = kind_of(ftype)
    if kind == "i":
        return pd.array(values, dtype="Int64")
    if kind in "df":
        return np.array([np.nan if v is None else v for v in values],
                        dtype=np.float64 if kind == "d" else np.float32)
    if kind == "s":
        return pd.array(values, dtype="string")
    return object_array(values)


def object_array(values):
    """A 1-D object array holding `values` as they are (numpy would otherwise turn a list of
    equal-length arrays into a 2-D array)."""
    col = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        col[i] = v
    return col
