"""Time semantics as a training engineer checks them: a 20,000-row point-in-time join on a
ttl 5d table with events from past months equals pandas.merge_asof(direction="backward",
tolerance=5 days) cell for cell (ttl is freshness at each sample's own time, not at now);
retention refuses what it no longer keeps (OutOfRange, or empty cells with
before_horizon="skip"); get reports present / stale / absent with event times."""
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
