"""The Client: tables, writes, online reads, historical joins, history and preload jobs, over
one strata._core handle (an embedded store or a pool of server connections). Conversions
between pandas/numpy and the core live in _columns.py and _time.py."""
import datetime as _dt
import time

import numpy as np
import pandas as pd

from . import _columns, _time
from .errors import Cancelled, Error, InvalidArgument, NotFound

_UNCHANGED = object()


def _td(us):
    return _dt.timedelta(microseconds=us) if us else None


class Table:
    """A table's schema: ``name``, ``entity_column``, ``features`` ({name: type}), ``ttl``
    (freshness at each read's own time: timedelta or None), ``feature_ttl`` ({name: the
    freshness that applies to that feature: its own ttl, else the table's; None = no
    limit}), ``retention`` (history kept: timedelta or None = forever), ``max_versions``
    (None = unlimited), ``created`` (UTC Timestamp)."""

    def __init__(self, d):
        self.name = d["name"]
        self.entity_column = d["entity_column"]
        self.features = {f[0]: f[1] for f in d["features"]}
        self.feature_ttl = {f[0]: _td(f[3]) for f in d["features"]}
        self.ttl = _td(d["ttl_us"])
        self.max_versions = d["max_versions"] or None
        ret = d.get("retention_us", 0)
        self.retention = _dt.timedelta(microseconds=ret) if ret else None
        self.created = _time.from_us(d["created_us"])
        self.id = d["id"]

    def __repr__(self):
        return (f"Table({self.name!r}, features={self.features!r}, "
                f"entity_column={self.entity_column!r}, ttl={self.ttl!r}, "
                f"retention={self.retention!r}, max_versions={self.max_versions!r})")

    def __eq__(self, other):
        return isinstance(other, Table) and vars(self) == vars(other)


class GetResult:
    """Online read result: one row per entity, one value per feature (None when absent).
    ``to_dict()`` for serving code, ``to_df()`` for a typed DataFrame."""

    _STATUS = ["absent", "present", "stale"]

    def __init__(self, client, table, entities, features, values, event_ts, status):
        self._client, self.table = client, table
        self.entities, self.features = entities, features
        self._values, self._ts, self._status = values, event_ts, status

    def __len__(self):
        return len(self.entities)

    def to_dict(self, orient="columns"):
        """orient="columns": {feature: [value per entity]} (Feast's shape);
        orient="records": [{feature: value} per entity]; orient="entity":
        {entity: {feature: value}}."""
        if orient == "columns":
            return {f: list(v) for f, v in zip(self.features, self._values)}
        rows = [{f: v[i] for f, v in zip(self.features, self._values)}
                for i in range(len(self.entities))]
        if orient == "records":
            return rows
        if orient == "entity":
            return dict(zip(self.entities, rows))
        raise InvalidArgument(f"to_dict: unknown orient {orient!r} (columns, records, entity)")

    def to_df(self, with_status=False, with_event_ts=False):
        """One row per entity: the table's entity column, then one typed column per feature
        (Int64, float64, float32, string, objects). with_status adds "<feature>_status"
        ("present"; "stale": a version older than the ttl at the read's time, value withheld;
        "absent"), with_event_ts adds "<feature>_event_ts" (UTC; set for present and stale
        values, NaT when absent)."""
        schema = self._client.table(self.table)
        cols = {schema.entity_column: pd.array(list(self.entities), dtype=object)}
        for f, vals, ts, st in zip(self.features, self._values, self._ts, self._status):
            cols[f] = _columns.get_column(schema.features[f], vals)
            found = np.array([t is not None for t in ts], dtype=bool)
            if with_status:
                cols[f + "_status"] = pd.Categorical(
                    [self._STATUS[s] for s in st], categories=self._STATUS)
            if with_event_ts:
                us = np.array([t if t is not None else 0 for t in ts], dtype=np.int64)
                cols[f + "_event_ts"] = _time.us_to_datetime64(us, found)
        return pd.DataFrame(cols)


class Job:
    """A preload job. ``progress()`` returns its current state as a dict; ``wait()`` blocks
    until it ends (raising if it failed or was cancelled); ``cancel()`` stops it."""

    def __init__(self, client, job_id):
        self._client, self.id = client, job_id

    def progress(self):
        """{"state", "phase", "rows", "cells", "bad_rows", "bytes_done", "bytes_total",
        "rows_per_s", "eta_s", "error", "bad_samples", ...}."""
        return self._client._core.job_get(self.id)

    @property
    def state(self):
        return self.progress()["state"]

    def cancel(self):
        self._client._core.job_cancel(self.id)

    def wait(self, progress=False, timeout=None, poll=0.1):
        """Waits for the end; returns the final progress dict. progress=True shows a tqdm bar
        (bytes of the input file) when tqdm is installed. Raises strata.Error if the job
        failed, strata.Cancelled if it was cancelled, TimeoutError after `timeout` s."""
        bar = _progress_bar(self) if progress else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                p = self.progress()
                if bar is not None:
                    bar.total = max(p["bytes_total"], 1)
                    bar.n = p["bytes_done"]
                    bar.set_postfix(rows=p["rows"], phase=p["phase"], refresh=False)
                    bar.refresh()
                if p["state"] in ("done", "failed", "cancelled"):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"preload job {self.id} still {p['state']}")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()
        if p["state"] == "failed":
            raise Error(f"preload job {self.id} failed: {p['error']}")
        if p["state"] == "cancelled":
            raise Cancelled(f"preload job {self.id} was cancelled")
        return p

    def __repr__(self):
        return f"Job({self.id})"


def _progress_bar(job):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=1, unit="B", unit_scale=True, desc=f"preload job {job.id}")


_TTL_NONE = -1  # the store's KV_TTL_NONE: no freshness limit for this feature


def _feature_types(features):
    """{name: type} or {name: (type, ttl)}: ttl is the feature's own freshness ("1h",
    timedelta), 0 or None for no limit on this feature whatever the table's ttl; a bare
    type follows the table's ttl."""
    if not isinstance(features, dict) or not features:
        raise InvalidArgument("features: expected a non-empty dict {name: type}")
    out = []
    for k, v in features.items():
        if isinstance(v, tuple):
            if len(v) != 2:
                raise InvalidArgument(f"feature '{k}': expected (type, ttl), got {v!r}")
            us = _time.to_duration_us(v[1], f"feature '{k}' ttl")
            out.append((str(k), str(v[0]), us or _TTL_NONE))
        else:
            out.append((str(k), str(v)))
    return out


def _entity_list(col, what):
    """Entity keys for the core: an int64 array for integer columns, else a list of str."""
    s = col if isinstance(col, pd.Series) else pd.Series(col, dtype=object)
    if len(s) and s.isna().any():
        row = int(np.flatnonzero(s.isna().to_numpy())[0])
        raise InvalidArgument(f"{what}: missing entity at row {row}")
    if pd.api.types.is_bool_dtype(s.dtype):
        raise InvalidArgument(f"{what}: booleans are not entity keys")
    if pd.api.types.is_integer_dtype(s.dtype):
        return np.ascontiguousarray(s.to_numpy(dtype=np.int64))
    if pd.api.types.is_float_dtype(s.dtype):
        raise InvalidArgument(f"{what}: float column is not entity keys (use str or int)")
    vals = s.to_numpy(dtype=object).tolist()
    if pd.api.types.infer_dtype(s, skipna=False) in ("string", "bytes"):
        return vals  # all str (or all bytes): checked in C, no per-row Python loop
    for i, v in enumerate(vals):
        if isinstance(v, (str, bytes)):
            continue
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            vals[i] = str(v)  # as integer columns: the decimal string
        else:
            raise InvalidArgument(f"{what}: row {i} is a {type(v).__name__}, "
                                  "expected str, bytes or int")
    return vals


class Client:
    """A handle on a Strata store, embedded (strata.open) or over the network
    (strata.connect). Thread-safe: operations release the GIL and, over the network, each
    thread borrows its own connection from a pool. A context manager (closes on exit)."""

    def __init__(self, core, spec, allow_any_ts=False):
        self._core = core
        self._spec = spec  # how to make another handle (DataLoader workers)
        # integer timestamps outside 1990-2200 in their unit: refused unless this is set
        self._any_ts = bool(allow_any_ts)

    def _us(self, v, ts_unit, what="ts"):
        return _time.to_us(v, ts_unit, what, self._any_ts)

    def _col_us(self, col, ts_unit, what):
        return _time.column_to_us(col, ts_unit, what, self._any_ts)

    # ---- lifecycle ----
    def close(self):
        self._core.close()

    @property
    def closed(self):
        return self._core.closed

    @property
    def embedded(self):
        return self._core.embedded

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        mode, target = self._spec[0], self._spec[1]
        return f"<strata.Client {mode} {target}{' closed' if self.closed else ''}>"

    # ---- tables ----
    def create_table(self, name, features, ttl=None, entity_column=None, max_versions=None,
                     retention=None):
        """Creates a table: features {name: "i64"|"f64"|"f32"|"str"|"bytes"|"f32[N]"|
        "i64[]"} (or {name: (type, ttl)} for a feature with its own freshness, ttl 0/None =
        none for it); ttl "30d" or timedelta: freshness, a value is returned by a read at time T
        only if T - event_ts <= ttl, where T is the sample's ts in a join, as_of in a get, now
        for a latest read (None: no limit; it deletes nothing); retention: how much history
        is kept, reads before now - retention raise strata.OutOfRange (None: forever);
        entity_column names the entity column in samples and files (default "entity");
        max_versions (None: unlimited). Returns the Table."""
        self._core.create_table(name, entity_column, _time.to_duration_us(ttl, "ttl"),
                                int(max_versions or 0), _feature_types(features),
                                _time.to_duration_us(retention, "retention"))
        return self.table(name)

    def table(self, name):
        """The Table named `name` (NotFound if there is none)."""
        return Table(self._core.table_get(name))

    def tables(self):
        """Every table, sorted by name."""
        return [Table(d) for d in self._core.table_list()]

    def alter_table(self, name, add_features=None, ttl=_UNCHANGED, max_versions=_UNCHANGED,
                    retention=_UNCHANGED):
        """Adds features and/or changes ttl, max_versions and retention (arguments left
        out stay as they are; None removes the ttl / the version limit / keeps history
        forever). Returns the new Table."""
        ttl_us = -1 if ttl is _UNCHANGED else _time.to_duration_us(ttl, "ttl")
        maxv = -1 if max_versions is _UNCHANGED else int(max_versions or 0)
        ret_us = -1 if retention is _UNCHANGED else _time.to_duration_us(retention, "retention")
        add = _feature_types(add_features) if add_features else []
        self._core.alter_table(name, ttl_us, maxv, add, ret_us)
        return self.table(name)

    def drop_table(self, name):
        """Drops the table and deletes its data."""
        self._core.drop_table(name)

    # ---- writes ----
    def put(self, table, entity, values, ts=None, ts_unit=None):
        """Writes {feature: value} for one entity at event time ts (default: now). None
        values are skipped. Returns the number of cells written."""
        if not isinstance(values, dict) or not values:
            raise InvalidArgument("put: values must be a non-empty dict {feature: value}")
        us = self._us(ts, ts_unit) if ts is not None else _now_us()
        cols = {k: pd.Series(_columns.object_array([v])) for k, v in values.items()}
        cols["__entity"] = pd.Series(_columns.object_array([entity]))
        cols["__ts"] = pd.Series([us], dtype=np.int64)
        df = pd.DataFrame(cols)
        return self.put_df(table, df, entity_column="__entity", ts_column="__ts",
                           ts_unit="us")

    def put_df(self, table, df, entity_column=None, ts_column="ts", ts_unit=None,
               features=None, batch_rows=4096):
        """Writes a DataFrame: one row per (entity, event time), one column per feature
        (missing values - NaN, None, pd.NA - are not written). Every column besides the
        entity and ts columns must be a feature, unless `features` picks a subset. Columns
        are converted in C straight from numpy buffers; each batch of `batch_rows` rows is
        one request. Everything is checked before anything is written. Returns the number of
        cells written."""
        schema = self.table(table)
        ecol = entity_column or schema.entity_column
        for c, what in ((ecol, "entity"), (ts_column, "ts")):
            if c not in df.columns:
                raise InvalidArgument(f"put_df: no {what} column '{c}' in the DataFrame "
                                      f"(columns: {list(df.columns)})")
        if features is None:
            features = [c for c in df.columns if c not in (ecol, ts_column)]
        for f in features:
            if f not in schema.features:
                raise NotFound(f"put_df: column '{f}' is not a feature of table '{table}' "
                               f"(features: {list(schema.features)}; pass features=[...] "
                               "to write a subset)")
            if f not in df.columns:
                raise InvalidArgument(f"put_df: no column '{f}' in the DataFrame")
        ents = _entity_list(df[ecol], f"put_df: entity column '{ecol}'")
        ts = self._col_us(df[ts_column], ts_unit, f"put_df: ts column '{ts_column}'")
        cols = [_columns.put_column(f, schema.features[f], df[f]) for f in features]
        if not len(df) or not cols:
            return 0
        return self._core.put_columns(table, ents, ts, cols, int(batch_rows))

    def delete(self, table, entity, features=None, ts=None, ts_unit=None):
        """Writes tombstones at ts (default: now) for the features (None: all of them)."""
        us = self._us(ts, ts_unit) if ts is not None else _now_us()
        self._core.delete(table, entity, list(features or []), us)

    # ---- reads ----
    def get(self, table, entities, features=None, as_of=None, known_at=None, ts_unit=None):
        """Online read of one entity or a list of them: each feature as of `as_of` (default:
        latest) as known at `known_at` (default: everything written so far). Returns a
        GetResult (.to_dict(), .to_df())."""
        ents = [entities] if isinstance(entities, (str, bytes, int, np.integer)) else \
            list(entities)
        if not all(type(e) is str for e in ents):  # the serving path skips pandas
            ents = _entity_list(pd.Series(ents, dtype=object), "get: entities")
        if features is None:
            features = list(self.table(table).features)
        elif isinstance(features, str):
            features = [features]
        else:
            features = list(features)
        a = _time.TS_MAX if as_of is None else self._us(as_of, ts_unit, "as_of")
        k = _time.TS_MAX if known_at is None else self._us(known_at, ts_unit, "known_at")
        vals, ts, st = self._core.get(table, ents, features, a, k)
        return GetResult(self, table, ents, features, vals, ts, st)

    def history(self, table, entity, feature, start=None, end=None, limit=None, known_at=None,
                ts_unit=None):
        """Every version of one feature of one entity with start <= event time <= end,
        newest first: a DataFrame with columns ts, value, deleted (tombstones), ingested."""
        lo = _time.TS_MIN if start is None else self._us(start, ts_unit, "start")
        hi = _time.TS_MAX if end is None else self._us(end, ts_unit, "end")
        k = _time.TS_MAX if known_at is None else self._us(known_at, ts_unit, "known_at")
        rows = self._core.history(table, entity, feature, lo, hi, int(limit or 0), k)
        ftype = self.table(table).features[feature]
        return pd.DataFrame({
            "ts": _time.us_to_datetime64([r[0] for r in rows]),
            "value": _columns.get_column(ftype, [r[3] for r in rows]),
            "deleted": np.array([r[2] for r in rows], dtype=bool),
            "ingested": _time.us_to_datetime64([r[1] for r in rows]),
        })

    def join(self, table, samples, features=None, entity_column=None, ts_column="ts",
             known_at=None, with_event_ts=False, embeddings="column", ts_unit=None,
             full_names=False, chunk_rows=1_000_000, before_horizon="error"):
        """Point-in-time join: for every sample row (entity, ts), each feature as of that
        row's own ts. Returns the samples' columns plus one typed column per feature, rows in
        input order. `features`: names of `table`'s features (None: all), or "table:feature"
        for other tables (then `table` may be None) - several tables in one call. The entity
        column is, per table, `entity_column` (a str, or {table: column}) or else the table's
        own entity column. with_event_ts adds "<feature>_event_ts". embeddings="wide" gives
        one float32 column per dimension instead of a column of arrays. full_names names the
        columns "table:feature". A value older than the feature's ttl at the row's own ts is
        left empty. Rows before a table's retention horizon raise strata.OutOfRange, or with
        before_horizon="skip" get empty cells."""
        if before_horizon not in ("error", "skip"):
            raise InvalidArgument("join: before_horizon must be 'error' or 'skip'")
        if not isinstance(samples, pd.DataFrame):
            raise InvalidArgument("join: samples must be a pandas DataFrame")
        if embeddings not in ("column", "wide"):
            raise InvalidArgument("join: embeddings must be 'column' or 'wide'")
        cols = []
        for tname, names, outs in self._join_outputs(table, samples, features, entity_column,
                                                     ts_column, known_at, with_event_ts,
                                                     ts_unit, chunk_rows,
                                                     before_horizon == "skip"):
            for f, o in zip(names, outs):
                col = f"{tname}:{f}" if full_names else f
                cols += o.columns(col, embeddings)
                if with_event_ts:
                    cols.append((col + "_event_ts", _time.us_to_datetime64(o.evts, o.found)))
        names = [c for c, _ in cols]
        clash = sorted({c for c in names if names.count(c) > 1 or c in samples.columns})
        if clash:
            raise InvalidArgument(f"join: output columns {clash} clash with each other or "
                                  "with sample columns (use full_names=True)")
        # the feature columns are fresh arrays of this call: no copy (pandas would otherwise
        # copy them all into one consolidated block, ~10% of a 1M-row join; pd.concat
        # does so too: 0.5 s of a 1M x 10 join). The samples' columns are copied (the
        # result must not alias its input), column by column, which is cheap.
        if samples.columns.is_unique and not isinstance(samples.columns, pd.MultiIndex):
            data = {c: samples[c].array.copy() for c in samples.columns}
            data.update(cols)
            return pd.DataFrame(data, index=samples.index, copy=False)
        feats = pd.DataFrame(dict(cols), index=samples.index, copy=False)
        return pd.concat([samples, feats], axis=1)

    def _join_outputs(self, table, samples, features, entity_column, ts_column, known_at,
                      with_event_ts, ts_unit, chunk_rows, skip_before_horizon=False):
        """Runs the join of every table involved; yields (table, features, [Output])."""
        groups = self._join_groups(table, features)
        if ts_column not in samples.columns:
            raise InvalidArgument(f"join: samples have no ts column '{ts_column}' "
                                  f"(columns: {list(samples.columns)})")
        ts = self._col_us(samples[ts_column], ts_unit, f"join: ts column '{ts_column}'")
        k = _time.TS_MAX if known_at is None else self._us(known_at, ts_unit, "known_at")
        plans = []
        for tname, names in groups.items():
            schema = self.table(tname)
            for f in names:
                if f not in schema.features:
                    raise NotFound(f"join: table '{tname}' has no feature '{f}' "
                                   f"(features: {list(schema.features)})")
            ecol = entity_column.get(tname) if isinstance(entity_column, dict) else entity_column
            ecol = ecol or schema.entity_column
            if ecol not in samples.columns:
                raise InvalidArgument(f"join: samples have no entity column '{ecol}' for "
                                      f"table '{tname}' (pass entity_column=)")
            plans.append((tname, names, schema, ecol))
        entity_cache = {}
        for tname, names, schema, ecol in plans:
            if ecol not in entity_cache:
                entity_cache[ecol] = _entity_list(samples[ecol], f"join: entity column '{ecol}'")
            outs = [_columns.Output(schema.features[f], len(samples), with_event_ts)
                    for f in names]
            if len(samples):
                objs = self._core.join(tname, entity_cache[ecol], ts, names, k,
                                       [o.spec() for o in outs], int(chunk_rows),
                                       skip_before_horizon)
                for o, ob in zip(outs, objs):
                    o.objects = ob
            else:
                for o in outs:
                    o.objects = []
            yield tname, names, outs

    def _join_groups(self, table, features):
        if features is None:
            if table is None:
                raise InvalidArgument("join: give a table or table-qualified features")
            return {table: list(self.table(table).features)}
        if isinstance(features, str):
            features = [features]
        groups = {}
        for f in features:
            tname, _, fname = f.rpartition(":")
            tname = tname or table
            if not tname:
                raise InvalidArgument(f"join: feature '{f}' needs a table ('table:{f}')")
            groups.setdefault(tname, [])
            if fname in groups[tname]:
                raise InvalidArgument(f"join: feature '{f}' is asked for twice")
            groups[tname].append(fname)
        if not groups:
            raise InvalidArgument("join: no features asked for")
        return groups

    # ---- preload ----
    def preload(self, table, path, format=None, skip_bad_rows=False, wait=True,
                ts_column=None, ts_unit="ms", progress=False):
        """Bulk-loads a CSV/TSV/JSONL file (optionally .gz/.zst) as a background job. The
        path is read by the store: on the server's machine for strata.connect. wait=True
        waits for the end (progress=True shows a tqdm bar). Returns the Job."""
        import os
        if self.embedded:
            path = os.path.abspath(path)
        job = Job(self, self._core.preload(table, str(path), format, bool(skip_bad_rows),
                                           ts_column, ts_unit, self._any_ts))
        if wait:
            job.wait(progress=progress)
        return job

    def job(self, job_id):
        """The Job with this id."""
        j = Job(self, int(job_id))
        j.progress()  # NotFound when there is none
        return j


def _now_us():
    return time.time_ns() // 1000
