"""join against a brute-force reference written here: as-of per row, tombstones, rewrites of
one event time (the later write wins), unknown entities, rows before any event, ttl, types
and input order; a multi-table join. With a ttl, a version is visible to a row iff the row's
ts - its event time <= ttl (freshness at the row's own time)."""
import numpy as np
import pandas as pd
import pytest

import strata

TOMB = object()
FEATS = {"age": "i64", "ctr": "f64", "x": "f32", "name": "str", "emb": "f32[4]"}


class Reference:
    """(entity, feature) -> {event_us: value or TOMB}, updated in write order."""

    def __init__(self, ttl_us=0):
        self.cells, self.ttl = {}, ttl_us

    def put(self, entity, feature, ts, value):
        self.cells.setdefault((entity, feature), {})[ts] = value

    def at(self, entity, feature, t):
        """(value, event ts) as of t, or (None, None)."""
        versions = self.cells.get((entity, feature), {})
        past = [ts for ts in versions if ts <= t]
        if not past:
            return None, None
        ts = max(past)
        v = versions[ts]
        if v is TOMB or (self.ttl and t - ts > self.ttl):
            return None, None
        return v, ts


def _value(rng, ftype, i):
    if ftype == "i64":
        return int(rng.integers(-2**62, 2**62))
    if ftype == "f64":
        return float(rng.random())
    if ftype == "f32":
        return float(np.float32(rng.random()))
    if ftype == "str":
        return f"s{i}-{rng.integers(1000)}"
    return rng.random(4).astype(np.float32)


def _load(client, table, ref, rng, entities, now_us, rounds=12, rows=150):
    """Random writes in rounds (each one put_df with unique (entity, ts) rows), tombstones
    between rounds; the reference sees the same writes in the same order."""
    grid = now_us - 86400_000_000 * 3 + np.arange(60) * 3600_000_000  # 60 hours, collide
    for r in range(rounds):
        keys = {(entities[rng.integers(len(entities))], int(grid[rng.integers(len(grid))]))
                for _ in range(rows)}
        keys = sorted(keys, key=lambda k: rng.random())
        cols = {"entity": [k[0] for k in keys],
                "ts": pd.to_datetime([k[1] * 1000 for k in keys], utc=True)}
        for f, ftype in FEATS.items():
            vals = []
            for i, (e, ts) in enumerate(keys):
                v = _value(rng, ftype, i) if rng.random() < 0.7 else None
                vals.append(v)
                if v is not None:
                    ref.put(e, f, ts, v)
            cols[f] = pd.array(vals, dtype="Int64") if ftype == "i64" else vals
        client.put_df(table, pd.DataFrame(cols), entity_column="entity")
        for _ in range(5):
            e, ts = entities[rng.integers(len(entities))], int(grid[rng.integers(len(grid))])
            feats = None if rng.random() < 0.3 else [list(FEATS)[rng.integers(len(FEATS))]]
            client.delete(table, e, feats, ts=pd.Timestamp(ts * 1000, tz="UTC"))
            for f in feats or FEATS:
                ref.put(e, f, ts, TOMB)


def _check(df, samples, ref, features, prefix=""):
    ts_us = samples["ts"].values.astype("datetime64[us]").view(np.int64)
    for f in features:
        col, ets = df[prefix + f], df[prefix + f + "_event_ts"]
        for i, (e, t) in enumerate(zip(samples[ref.entity_col], ts_us)):
            want, wts = ref.at(e, f, int(t))
            got = col.iloc[i]
            if want is None:
                assert got is None or pd.isna(got), (f, i, e, t, got)
                assert pd.isna(ets.iloc[i])
            else:
                if FEATS[f] == "f32[4]":
                    assert got.dtype == np.float32 and np.array_equal(got, want), (f, i)
                else:
                    assert got == want, (f, i, e, t, got, want)
                assert ets.iloc[i].value // 1000 == wts


def _samples(rng, entities, now_us, n, col="entity", lo_days=5, hi_days=0):
    pool = entities + ["never-written", "nobody"]
    ts = now_us - rng.integers(hi_days * 86400_000_000, lo_days * 86400_000_000, n)
    return pd.DataFrame({"row": np.arange(n),
                         col: [pool[i] for i in rng.integers(len(pool), size=n)],
                         "ts": pd.to_datetime(ts * 1000, utc=True),
                         "label": rng.random(n)})


@pytest.mark.parametrize("ttl", [None, "3h"])
def test_join_random_against_reference(client, tname, ttl):
    rng = np.random.default_rng(7)
    now_us = pd.Timestamp.now(tz="UTC").value // 1000
    client.create_table(tname, FEATS, ttl=ttl)
    entities = [f"e{i}" for i in range(40)]
    ref = Reference(pd.Timedelta(ttl).value // 1000 if ttl else 0)
    ref.entity_col = "entity"
    _load(client, tname, ref, rng, entities, now_us)
    samples = _samples(rng, entities, now_us, 3000)
    df = client.join(tname, samples, list(FEATS), with_event_ts=True, chunk_rows=700)
    assert list(df.columns[:4]) == ["row", "entity", "ts", "label"]
    assert df["row"].tolist() == list(range(len(samples)))  # input order
    assert str(df["age"].dtype) == "Int64" and df["ctr"].dtype == np.float64
    assert df["x"].dtype == np.float32 and str(df["name"].dtype) == "string"
    assert df["age"].isna().any() and df["age"].notna().any()
    _check(df, samples, ref, FEATS)
    if ttl:  # the ttl really hides versions that the rows would get without it
        ts_us = samples["ts"].values.astype("datetime64[us]").view(np.int64)
        ttl_us, ref.ttl = ref.ttl, 0
        unlimited = sum(ref.at(e, "age", int(t))[0] is not None
                        for e, t in zip(samples["entity"], ts_us))
        ref.ttl = ttl_us
        assert unlimited > df["age"].notna().sum() > 0
    # many small chunks (through stratad: many swept collections, entities repeated across
    # them in random order): the same answers
    small = client.join(tname, samples, list(FEATS), with_event_ts=True, chunk_rows=97)
    pd.testing.assert_frame_equal(small, df)
    # the result does not alias the samples' columns
    small.loc[0, "label"] = -1.0
    assert samples.loc[0, "label"] != -1.0
    # the same with the embeddings wide: one float32 column per dimension
    wide = client.join(tname, samples, ["emb"], embeddings="wide")
    m = wide[[f"emb_{i}" for i in range(4)]].to_numpy()
    assert m.dtype == np.float32
    for i, v in enumerate(df["emb"]):
        assert np.isnan(m[i]).all() if v is None else np.array_equal(m[i], v)


def test_join_ttl(client, tname):
    """Visible iff row ts - event ts <= ttl; every event is within the ttl of now."""
    now = pd.Timestamp.now(tz="UTC")
    client.create_table(tname, {"v": "i64"}, ttl="2d")
    client.put(tname, "a", {"v": 1}, ts=now - pd.Timedelta("1h"))
    client.put(tname, "b", {"v": 2}, ts=now - pd.Timedelta("3h"))
    client.put(tname, "b", {"v": 3}, ts=now + pd.Timedelta("1d"))
    s = pd.DataFrame({"entity": ["a", "a", "a", "b", "b", "b"],
                      "ts": [now, now + pd.Timedelta("1d"), now + pd.Timedelta("3d"),
                             now - pd.Timedelta("2h"), now + pd.Timedelta("2d"),
                             now + pd.Timedelta("4d")]})
    df = client.join(tname, s, ["v"])
    assert df["v"].tolist() == [1, 1, pd.NA, 2, 3, pd.NA]


def test_join_multi_table(client, tname):
    rng = np.random.default_rng(11)
    now_us = pd.Timestamp.now(tz="UTC").value // 1000
    users, items = tname + "_u", tname + "_i"
    client.create_table(users, FEATS, entity_column="user_id")
    client.create_table(items, FEATS, entity_column="item_id")
    ru, ri = Reference(), Reference()
    ru.entity_col, ri.entity_col = "user_id", "item_id"
    ents = [f"k{i}" for i in range(25)]
    _load(client, users, ru, rng, ents, now_us, rounds=4)
    _load(client, items, ri, rng, ents, now_us, rounds=4)
    s = _samples(rng, ents, now_us, 800, col="user_id")
    s["item_id"] = [ents[i] for i in rng.integers(len(ents), size=len(s))]
    feats = [f"{users}:{f}" for f in FEATS] + [f"{items}:{f}" for f in FEATS]
    df = client.join(None, s, feats, with_event_ts=True, full_names=True)
    _check(df, s, ru, FEATS, prefix=users + ":")
    _check(df, s, ri, FEATS, prefix=items + ":")
    # unqualified features belong to `table`; clashing names need full_names
    with pytest.raises(strata.InvalidArgument, match="full_names"):
        client.join(users, s, ["age", f"{items}:age"])
    df2 = client.join(users, s, ["age", f"{items}:ctr"])
    assert df2["age"].equals(df[f"{users}:age"].rename("age"))
    assert np.array_equal(df2["ctr"].to_numpy(), df[f"{items}:ctr"].to_numpy(), equal_nan=True)


def test_join_known_at_int_entities_empty(client, tname):
    client.create_table(tname, {"v": "i64", "tags": "i64[]", "raw": "bytes"})
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    client.put(tname, "7", {"v": 1, "tags": [1, 2], "raw": b"a"}, ts=t0)
    mid = pd.Timestamp.now(tz="UTC")
    client.put(tname, "7", {"v": 2}, ts=t0)
    s = pd.DataFrame({"entity": np.array([7, 8, 7]), "ts": [t0, t0, t0 - pd.Timedelta("1s")]})
    df = client.join(tname, s, ["v", "tags", "raw"])
    assert df["v"].tolist() == [2, pd.NA, pd.NA]
    assert list(df["tags"][0]) == [1, 2] and df["tags"][1] is None
    assert df["raw"].tolist() == [b"a", None, None]
    assert client.join(tname, s, ["v"], known_at=mid)["v"].tolist() == [1, pd.NA, pd.NA]
    empty = client.join(tname, s.iloc[:0], ["v", "tags"])
    assert len(empty) == 0 and str(empty["v"].dtype) == "Int64"
    # the samples' index is kept
    s.index = [10, 20, 30]
    assert client.join(tname, s, ["v"]).index.tolist() == [10, 20, 30]
