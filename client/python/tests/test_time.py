"""Time semantics as a training engineer checks them: a 20,000-row point-in-time join on a
ttl 5d table with events from past months equals pandas.merge_asof(direction="backward",
tolerance=5 days) cell for cell (ttl is freshness at each sample's own time, not at now);
retention refuses what it no longer keeps (OutOfRange, or empty cells with
before_horizon="skip"); get reports present / stale / absent with event times."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

import strata


def test_join_equals_merge_asof_with_tolerance(client, tname):
    rng = np.random.default_rng(8)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    n_ev, n_ent = 6000, 400
    ev = pd.DataFrame({
        "entity": [f"u{i}" for i in rng.integers(0, n_ent, n_ev)],
        "ts": now - pd.to_timedelta(rng.integers(31 * 86400, 90 * 86400, n_ev), unit="s"),
        "v": rng.integers(-10**9, 10**9, n_ev),
    }).drop_duplicates(["entity", "ts"])
    client.create_table(tname, {"v": "i64"}, ttl="5d")
    client.put_df(tname, ev, entity_column="entity", ts_column="ts")
    samples = pd.DataFrame({
        "entity": [f"u{i}" for i in rng.integers(0, n_ent + 20, 20000)],
        "ts": now - pd.to_timedelta(rng.integers(25 * 86400, 95 * 86400, 20000), unit="s"),
    })
    got = client.join(tname, samples, ["v"])
    ref = pd.merge_asof(samples.reset_index().sort_values("ts"), ev.sort_values("ts"),
                        on="ts", by="entity", direction="backward",
                        tolerance=pd.Timedelta("5d")).set_index("index").sort_index()
    want = ref["v"].astype("Int64")
    assert got["v"].dtype == "Int64"
    filled = int(want.notna().sum())
    assert filled > 5000  # the workload really exercises history
    mismatch = (got["v"].fillna(-1) != want.fillna(-1)).sum()
    assert mismatch == 0, f"{mismatch} of 20000 cells differ from merge_asof"


def test_retention_and_status(client, tname):
    now = pd.Timestamp.now(tz="UTC").floor("s")
    client.create_table(tname, {"v": "i64"}, ttl="5d", retention="45d")
    t = client.table(tname)
    assert t.retention == pd.Timedelta("45d") and t.ttl == pd.Timedelta("5d")
    client.put(tname, "a", {"v": 1}, ts=now - pd.Timedelta("40d"))
    client.put(tname, "a", {"v": 2}, ts=now - pd.Timedelta("20d"))
    df = client.get(tname, ["a", "zz"], ["v"]).to_df(with_status=True, with_event_ts=True)
    assert df["v_status"].tolist() == ["stale", "absent"]
    assert df["v"].isna().all()
    assert df["v_event_ts"][0] == now - pd.Timedelta("20d")
    assert client.get(tname, ["a"], ["v"], as_of=now - pd.Timedelta("19d")).to_dict() == \
        {"v": [2]}
    with pytest.raises(strata.OutOfRange, match="retention horizon"):
        client.get(tname, ["a"], ["v"], as_of=now - pd.Timedelta("50d"))
    s = pd.DataFrame({"entity": ["a", "a"], "ts": [now - pd.Timedelta("39d"),
                                                   now - pd.Timedelta("60d")]})
    with pytest.raises(strata.OutOfRange):
        client.join(tname, s, ["v"])
    out = client.join(tname, s, ["v"], before_horizon="skip")
    assert out["v"].tolist() == [1, pd.NA]
    t = client.alter_table(tname, retention=None)
    assert t.retention is None and t.ttl == pd.Timedelta("5d")


def test_per_feature_ttl(client, tname):
    """A feature's own ttl replaces the table's for it (0/None: no limit for it); the
    effective freshness of each feature is in Table.feature_ttl; reads apply it at their own
    time (as_of, a join row's ts)."""
    client.create_table(tname, {"slow": "i64", "fast": ("i64", "1h"), "free": ("i64", None)},
                        ttl="1d")
    t = client.table(tname)
    assert t.feature_ttl == {"slow": dt.timedelta(days=1), "fast": dt.timedelta(hours=1),
                             "free": None}
    assert t.features == {"slow": "i64", "fast": "i64", "free": "i64"}
    t0 = pd.Timestamp("2026-03-01T00:00:00Z")
    client.put(tname, "e", {"slow": 1, "fast": 2, "free": 3}, ts=t0)
    at = {"30m": (1, 2, 3), "2h": (1, None, 3), "3d": (None, None, 3)}
    for d, want in at.items():
        got = client.get(tname, "e", ["slow", "fast", "free"], as_of=t0 + pd.Timedelta(d))
        assert tuple(v[0] for v in got.to_dict().values()) == want, d
    j = client.join(tname, pd.DataFrame({"entity": ["e"] * 3,
                                         "ts": [t0 + pd.Timedelta(d) for d in at]}),
                    ["slow", "fast", "free"])
    assert [tuple(None if pd.isna(x) else int(x) for x in r)
            for r in j[["slow", "fast", "free"]].itertuples(index=False)] == list(at.values())
    client.alter_table(tname, add_features={"later": ("f64", dt.timedelta(minutes=5))})
    assert client.table(tname).feature_ttl["later"] == dt.timedelta(minutes=5)
    with pytest.raises(strata.InvalidArgument, match="feature 'bad'"):
        client.alter_table(tname, add_features={"bad": ("i64", "soon")})
