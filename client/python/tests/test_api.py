"""Every API call, against the embedded store and a real stratad (see conftest.py)."""
import datetime as dt
import gzip
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

import strata
from conftest import Server

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
FEATS = {"age": "i64", "ctr": "f64", "x": "f32", "name": "str", "raw": "bytes",
         "emb": "f32[3]", "tags": "i64[]"}


def test_tables(client, tname):
    t = client.create_table(tname, FEATS, ttl="30d", entity_column="user_id",
                            max_versions=5)
    assert t.name == tname and t.features == FEATS and t.entity_column == "user_id"
    assert t.ttl == dt.timedelta(days=30) and t.max_versions == 5
    assert client.table(tname) == t
    assert tname in [x.name for x in client.tables()]
    with pytest.raises(strata.AlreadyExists):
        client.create_table(tname, {"a": "i64"})
    t2 = client.alter_table(tname, add_features={"extra": "str"}, ttl=dt.timedelta(hours=12))
    assert t2.features["extra"] == "str" and t2.ttl == dt.timedelta(hours=12)
    assert t2.max_versions == 5  # left out: unchanged
    t3 = client.alter_table(tname, ttl=None, max_versions=None)
    assert t3.ttl is None and t3.max_versions is None
    client.drop_table(tname)
    with pytest.raises(strata.NotFound) as e:
        client.table(tname)
    assert e.value.code == -30998 and tname in e.value.message
    with pytest.raises(strata.InvalidArgument, match="unknown type"):
        client.create_table(tname, {"a": "int"})
    with pytest.raises(strata.InvalidArgument, match="duration"):
        client.create_table(tname, {"a": "i64"}, ttl=30)
    with pytest.raises(strata.NotFound):
        client.drop_table(tname)


@pytest.mark.parametrize("d, want", [
    ("30d", dt.timedelta(days=30)), ("12h", dt.timedelta(hours=12)),
    ("15m", dt.timedelta(minutes=15)), ("90s", dt.timedelta(seconds=90)),
    ("250ms", dt.timedelta(milliseconds=250)), (dt.timedelta(days=2), dt.timedelta(days=2)),
    (pd.Timedelta("36h"), dt.timedelta(hours=36)),
    (np.timedelta64(3, "D"), dt.timedelta(days=3)), (None, None)])
def test_duration_forms(client, tname, d, want):
    assert client.create_table(tname, {"a": "i64"}, ttl=d, retention=d).ttl == want
    assert client.table(tname).retention == want


@pytest.mark.parametrize("d", [30, 1.5, "soon", "-5d", dt.timedelta(days=-1)])
def test_duration_rejects(client, tname, d):
    with pytest.raises(strata.InvalidArgument):
        client.create_table(tname, {"a": "i64"}, ttl=d)
    with pytest.raises(strata.NotFound):
        client.table(tname)  # nothing created


def test_timestamp_forms(client, tname):
    """One instant in every accepted form; ints only with a unit."""
    client.create_table(tname, {"a": "i64"})
    forms = [pd.Timestamp("2026-03-01T00:00:00Z"), dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc),
             dt.datetime(2026, 3, 1), dt.date(2026, 3, 1), np.datetime64("2026-03-01"),
             "2026-03-01T00:00:00Z", "2026-03-01", "2026-03-01T01:00:00+01:00"]
    for i, ts in enumerate(forms):
        client.put(tname, f"e{i}", {"a": i}, ts=ts)
    for i, (unit, v) in enumerate((("s", 1772323200), ("ms", 1772323200_000),
                                   ("us", 1772323200_000_000), ("ns", 1772323200_000_000_000))):
        client.put(tname, f"i{i}", {"a": i}, ts=v, ts_unit=unit)
    ents = [f"e{i}" for i in range(len(forms))] + [f"i{i}" for i in range(4)]
    got = client.get(tname, ents, ["a"]).to_df(with_event_ts=True)["a_event_ts"]
    assert set(got) == {pd.Timestamp("2026-03-01T00:00:00Z")}, got.tolist()
    with pytest.raises(strata.InvalidArgument, match="ts_unit"):
        client.put(tname, "x", {"a": 1}, ts=1772323200)


def test_put_get_every_type(client, tname):
    client.create_table(tname, FEATS)
    vals = {"age": 31, "ctr": 0.25, "x": 1.5, "name": "bob é", "raw": b"\x00\xff",
            "emb": [1.0, 2.0, 3.5], "tags": [4, -5, 2**40]}
    assert client.put(tname, "u1", vals, ts=T0) == 7
    client.put(tname, "u1", {"age": 32}, ts=T0 + pd.Timedelta("1d"))
    r = client.get(tname, ["u1", "nobody"])
    d = r.to_dict()
    assert d["age"] == [32, None] and d["ctr"] == [0.25, None] and d["name"] == ["bob é", None]
    assert d["raw"] == [b"\x00\xff", None] and d["x"] == [1.5, None]
    assert d["emb"][0].dtype == np.float32 and list(d["emb"][0]) == [1.0, 2.0, 3.5]
    assert list(d["tags"][0]) == [4, -5, 2**40] and d["tags"][0].dtype == np.int64
    assert r.to_dict("entity")["u1"]["age"] == 32
    assert r.to_dict("records")[1] == {f: None for f in FEATS}
    df = r.to_df(with_status=True, with_event_ts=True)
    assert list(df["entity"]) == ["u1", "nobody"]
    assert str(df["age"].dtype) == "Int64" and df["age"].isna().tolist() == [False, True]
    assert df["ctr"].dtype == np.float64 and df["x"].dtype == np.float32
    assert str(df["name"].dtype) == "string"
    assert list(df["age_status"]) == ["present", "absent"]
    assert df["age_event_ts"][0] == T0 + pd.Timedelta("1d") and pd.isna(df["age_event_ts"][1])
    # as_of and the accepted timestamp forms
    for as_of in (T0 + pd.Timedelta("1h"), "2026-01-01T01:00:00Z",
                  dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 1, 1),
                  np.datetime64("2026-01-01T01:00:00")):
        assert client.get(tname, "u1", ["age"], as_of=as_of).to_dict() == {"age": [31]}
    assert client.get(tname, "u1", "age", as_of=int(T0.value // 10**6) + 3600_000,
                      ts_unit="ms").to_dict() == {"age": [31]}
    with pytest.raises(strata.InvalidArgument, match="ts_unit"):
        client.get(tname, "u1", ["age"], as_of=1767225600)
    with pytest.raises(strata.NotFound):
        client.get(tname, "u1", ["nosuch"])
    with pytest.raises(strata.NotFound):
        client.get("no_such_table_x", "u1", ["age"])


def test_known_at_delete_history(client, tname):
    client.create_table(tname, {"age": "i64"})
    client.put(tname, "u1", {"age": 1}, ts=T0)
    mid = pd.Timestamp.now(tz="UTC")
    client.put(tname, "u1", {"age": 2}, ts=T0)  # same event time: the later write wins
    assert client.get(tname, "u1", ["age"]).to_dict() == {"age": [2]}
    assert client.get(tname, "u1", ["age"], known_at=mid).to_dict() == {"age": [1]}
    client.put(tname, "u1", {"age": 3}, ts=T0 + pd.Timedelta("2d"))
    client.delete(tname, "u1", ["age"], ts=T0 + pd.Timedelta("3d"))
    assert client.get(tname, "u1", ["age"]).to_dict() == {"age": [None]}
    assert client.get(tname, "u1", ["age"], as_of=T0 + pd.Timedelta("2d")).to_dict() == \
        {"age": [3]}
    h = client.history(tname, "u1", "age")
    assert list(h.columns) == ["ts", "value", "deleted", "ingested"]
    assert list(h["deleted"]) == [True, False, False]
    assert h["value"].tolist()[1:] == [3, 2] and pd.isna(h["value"][0])
    assert h["ts"][2] == T0 and str(h["value"].dtype) == "Int64"
    h2 = client.history(tname, "u1", "age", start=T0 + pd.Timedelta("1d"),
                        end=T0 + pd.Timedelta("2d"))
    assert h2["value"].tolist() == [3]
    assert len(client.history(tname, "u1", "age", limit=1)) == 1


def test_put_df_roundtrip(client, tname):
    client.create_table(tname, FEATS, entity_column="user_id")
    n = 1000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)],
        "ts": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
        "age": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
        "ctr": np.where(np.arange(n) % 5 == 0, np.nan, rng.random(n)),
        "x": rng.random(n).astype(np.float32),
        "name": [None if i % 3 == 0 else f"n{i}" for i in range(n)],
        "raw": [bytes([i % 256]) * (i % 4) for i in range(n)],
        "emb": [None if i % 11 == 0 else rng.random(3).astype(np.float32) for i in range(n)],
        "tags": [list(range(i % 4)) for i in range(n)],
    })
    written = client.put_df(tname, df, batch_rows=128)
    assert written == n * 7 - sum((n - 1) // k + 1 for k in (7, 5, 3, 11))
    got = client.get(tname, list(df["user_id"])).to_df()
    assert got["age"].equals(df["age"])
    assert np.array_equal(got["ctr"].to_numpy(), df["ctr"].to_numpy(), equal_nan=True)
    assert np.array_equal(got["x"].to_numpy(), df["x"].to_numpy())
    assert str(got["name"].dtype) == "string"
    assert [None if pd.isna(v) else v for v in got["name"]] == df["name"].tolist()
    assert got["raw"].tolist() == df["raw"].tolist()
    for a, b in zip(got["emb"], df["emb"]):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert [list(v) for v in got["tags"]] == df["tags"].tolist()
    # integer entities and integer timestamps with a unit
    df2 = pd.DataFrame({"user_id": np.arange(5), "ts": 1767225600 + np.arange(5) * 1000,
                        "age": np.arange(5)})
    assert client.put_df(tname, df2, ts_unit="s") == 5
    assert client.get(tname, ["3"], ["age"], as_of="2026-01-01T00:50:00Z").to_dict() == \
        {"age": [3]}
    assert client.get(tname, [3, np.int64(4)], ["age"]).to_dict() == {"age": [3, 4]}
    client.put(tname, 9, {"age": 90}, ts=T0)
    assert client.get(tname, "9", "age").to_dict() == {"age": [90]}
    with pytest.raises(strata.InvalidArgument, match="float"):
        client.get(tname, [1.5], ["age"])


def test_preload_job(client, tname, tmp_path):
    client.create_table(tname, {"age": "i64", "name": "str"})
    p = tmp_path / "pre.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write("entity,ts,age,name\n")
        for i in range(2000):
            f.write(f"p{i},2026-01-01T00:00:00Z,{i},n{i}\n")
        f.write("bad,notatime,1,x\n")
    job = client.preload(tname, str(p), skip_bad_rows=True)
    info = job.progress()
    assert info["state"] == "done" and info["rows"] == 2000 and info["bad_rows"] == 1
    assert "notatime" in info["bad_samples"][0] or "bad" in info["bad_samples"][0]
    assert client.get(tname, "p1234", ["age", "name"]).to_dict() == \
        {"age": [1234], "name": ["n1234"]}
    assert client.job(job.id).state == "done"
    job2 = client.preload(tname, str(p), wait=False)  # the bad row fails it
    with pytest.raises(strata.Error, match="failed"):
        job2.wait(progress=True, timeout=60)
    with pytest.raises(strata.NotFound):
        client.preload("no_such_table_x", str(p))
    with pytest.raises(strata.NotFound):
        client.job(999999)


def test_close_and_context(client, tname):
    client.create_table(tname, {"age": "i64"})
    with client as c:
        c.put(tname, "u", {"age": 1}, ts=T0)
    assert client.closed
    with pytest.raises(strata.Unavailable, match="closed"):
        client.get(tname, "u", ["age"])
    client.close()  # twice is fine


def test_connect_errors(server):
    with pytest.raises(strata.Unavailable):
        strata.connect("127.0.0.1:1", timeout=2)
    with pytest.raises(strata.InvalidArgument):
        strata.connect("127.0.0.1:1", timeout=-1)


def test_token():
    from conftest import Server
    s = Server(token="py-s3cret")
    try:
        with strata.connect(s.addr, token="py-s3cret") as c:
            assert c.tables() == []
        with pytest.raises(strata.AuthError):
            strata.connect(s.addr, token="wrong")
    finally:
        s.stop()


def test_threads(client, tname):
    """8 Python threads doing gets on one client at once get the right answers."""
    client.create_table(tname, {"v": "i64", "s": "str"})
    n = 200
    client.put_df(tname, pd.DataFrame({"entity": [f"e{i}" for i in range(n)],
                                       "ts": pd.Timestamp("2026-01-01"),
                                       "v": np.arange(n) * 3, "s": [f"s{i}" for i in range(n)]}))
    errors = []

    def worker(k):
        try:
            rng = np.random.default_rng(k)
            for _ in range(150):
                ids = rng.integers(0, n, 3)
                d = client.get(tname, [f"e{i}" for i in ids], ["v", "s"]).to_dict()
                assert d == {"v": [int(i) * 3 for i in ids], "s": [f"s{i}" for i in ids]}
        except Exception as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_same_results_embedded_and_server(server, tmp_path, tname):
    """One script of calls gives identical DataFrames from both modes."""
    outs = []
    for c in (strata.open(str(tmp_path / "d")), strata.connect(server.addr)):
        assert type(c) is strata.Client  # one Client type, both a context manager
        with c:
            t = c.create_table(tname, FEATS, ttl="2d", retention="400d")
            c.put(tname, "a", {"age": 1, "name": "x", "emb": [1, 2, 3]}, ts=T0)
            c.put(tname, "b", {"ctr": 0.5, "tags": [1], "raw": b"r"}, ts=T0)
            c.delete(tname, "a", ["name"], ts=T0 + pd.Timedelta("1h"))
            s = pd.DataFrame({"entity": ["a", "b", "c", "a"],
                              "ts": [T0, T0, T0, T0 + pd.Timedelta("2h")]})
            j = c.join(tname, s, list(FEATS), with_event_ts=True, embeddings="wide")
            g = c.get(tname, ["a", "b", "c"]).to_df(with_status=True, with_event_ts=True)
            h = c.history(tname, "a", "name").drop(columns=["ingested"])
            outs.append((j, g, h, {k: v for k, v in vars(t).items() if k not in ("created", "id")}))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        pd.testing.assert_frame_equal(a, b)
    assert outs[0][3] == outs[1][3]


def test_get_many_entities(client, tname):
    """A get of many entities answers each exactly as a get of that entity alone, across the
    package's multi-get batches (512 entities per request), absent entities included."""
    client.create_table(tname, {"x": "i64", "s": "str"})
    df = pd.DataFrame({"entity": [f"e{i}" for i in range(0, 1500, 2)],
                       "ts": pd.Timestamp("2026-01-01", tz="UTC"),
                       "x": np.arange(750, dtype=np.int64), "s": [f"v{i}" for i in range(750)]})
    client.put_df(tname, df, entity_column="entity", ts_column="ts")
    ents = [f"e{i}" for i in range(1500)][::-1]
    many = client.get(tname, ents, ["x", "s"]).to_dict()
    for e in ("e0", "e1", "e511", "e512", "e1024", "e1499", "e1498"):
        one = client.get(tname, e, ["x", "s"]).to_dict()
        i = ents.index(e)
        assert {k: many[k][i] for k in many} == {k: one[k][0] for k in one}
    assert many["x"][ents.index("e1498")] == 749 and many["x"][ents.index("e1")] is None


def test_get_many_is_one_request_per_batch(tname):
    """Through stratad, a get of 1000 entities is 2 multi-get requests, not 1000 gets, and a
    put_df of 1000 rows with batch_rows=128 is 8 put requests."""
    import socket
    import urllib.request
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = Server(extra=["--admin", f"127.0.0.1:{port}"])
    try:
        with strata.connect(srv.addr) as c:
            c.create_table(tname, {"x": "i64"})
            c.put(tname, "e1", {"x": 1})

            def count(op):
                m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                for line in m.splitlines():
                    if line.startswith(f'strata_requests_total{{op="{op}"}}'):
                        return int(line.split()[-1])
                return 0
            before = count("multiget") + count("get")
            r = c.get(tname, [f"e{i}" for i in range(1000)], ["x"]).to_dict()
            assert r["x"][1] == 1 and r["x"][0] is None
            assert count("multiget") + count("get") - before == 2
            # put_df: one put request per batch_rows rows
            before = count("put")
            df = pd.DataFrame({"entity": [f"p{i}" for i in range(1000)],
                               "ts": pd.Timestamp("2026-01-01", tz="UTC"), "x": np.arange(1000)})
            assert c.put_df(tname, df, batch_rows=128) == 1000
            assert count("put") - before == 8
    finally:
        srv.stop()


def test_idle_connection_closed_by_server(tname):
    """A connection that sat idle past the server's handshake timeout (closed by the server
    before its first request) is reopened for the next call, even a non-idempotent one."""
    srv = Server(extra=["--handshake-timeout", "1s"])
    try:
        with strata.connect(srv.addr) as c:
            time.sleep(2.5)  # the server closes the silent connection after 1 s
            c.create_table(tname, {"x": "i64"})
            c.put(tname, "e", {"x": 1})
            time.sleep(2.5)  # idle after requests: kept by the server, reused
            assert c.get(tname, "e", ["x"]).to_dict() == {"x": [1]}
    finally:
        srv.stop()
