"""Bad input: each a clear exception, and nothing written."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

import strata

T0 = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture
def table(client, tname):
    client.create_table(tname, {"age": "i64", "ctr": "f64", "name": "str", "emb": "f32[2]"})
    return tname


def _good(n=3):
    return pd.DataFrame({"entity": [f"e{i}" for i in range(n)], "ts": [T0] * n,
                         "age": np.arange(n), "ctr": np.ones(n), "name": ["a"] * n,
                         "emb": [np.zeros(2, np.float32)] * n})


def _nothing_written(client, table):
    r = client.get(table, ["e0", "e1", "e2"]).to_dict()
    assert all(v is None for vals in r.values() for v in vals), r


@pytest.mark.parametrize("change, exc, msg", [
    (lambda d: d.assign(age=[1.5, 2.0, 3.0]), strata.TypeMismatch, "age"),
    (lambda d: d.assign(age=[True, False, True]), strata.TypeMismatch, "boolean"),
    (lambda d: d.assign(age=["1", "2", "3"]), strata.TypeMismatch, "not integers"),
    (lambda d: d.assign(ctr=["x", "y", "z"]), strata.TypeMismatch, "ctr"),
    (lambda d: d.assign(name=["a", 5, "c"]), strata.TypeMismatch, "int"),
    (lambda d: d.assign(emb=[np.zeros(2), np.zeros(3), np.zeros(2)]), strata.TypeMismatch,
     "shape"),
    (lambda d: d.drop(columns=["ts"]), strata.InvalidArgument, "no ts column"),
    (lambda d: d.drop(columns=["entity"]), strata.InvalidArgument, "no entity column"),
    (lambda d: d.assign(nosuch=1), strata.NotFound, "not a feature"),
    (lambda d: d.assign(ts=[1767225600, 1767225600, 1767225600]), strata.InvalidArgument,
     "ts_unit"),
    (lambda d: d.assign(ts=[T0, T0.tz_localize(None).to_pydatetime(), T0]),
     strata.InvalidArgument, "naive and tz-aware"),
    (lambda d: d.assign(ts=[T0, None, T0]), strata.InvalidArgument, "missing timestamp"),
    (lambda d: d.assign(ts=["2026-01-01", "yesterday", "2026-01-02"]), strata.InvalidArgument,
     "ts"),
    (lambda d: d.assign(entity=["a", None, "c"]), strata.InvalidArgument, "missing entity"),
    (lambda d: d.assign(entity=[1.5, 2.5, 3.5]), strata.InvalidArgument, "float"),
])
def test_put_df_rejects(client, table, change, exc, msg):
    # one request per row: a column checked only when its batch is sent would leave rows
    with pytest.raises(exc, match=msg):
        client.put_df(table, change(_good()), batch_rows=1)
    _nothing_written(client, table)


@pytest.mark.parametrize("change, exc, msg", [
    (lambda d: d.assign(name=["a", "b", 5]), strata.TypeMismatch, "int"),
    (lambda d: d.assign(age=pd.array([1, 2, None], dtype="Int64"),
                        ctr=[1.0, 2.0, "x"]), strata.TypeMismatch, "ctr"),
    (lambda d: d.assign(emb=[np.zeros(2), np.zeros(2), np.zeros(5)]), strata.TypeMismatch,
     "shape"),
    (lambda d: d.assign(entity=["e0", "e1", None]), strata.InvalidArgument, "missing entity"),
    (lambda d: d.assign(ts=[T0, T0, None]), strata.InvalidArgument, "missing timestamp"),
    (lambda d: d.assign(ts=[T0, T0, "later"]), strata.InvalidArgument, "ts"),
])
def test_put_df_rejects_a_bad_last_row(client, table, change, exc, msg):
    """The bad value is in the last row, after two rows that are fine on their own."""
    with pytest.raises(exc, match=msg):
        client.put_df(table, change(_good()), batch_rows=1)
    _nothing_written(client, table)


def test_put_rejects(client, table):
    with pytest.raises(strata.TypeMismatch):
        client.put(table, "e0", {"age": "x"}, ts=T0)
    with pytest.raises(strata.NotFound):
        client.put(table, "e0", {"age": 1, "zzz": 2}, ts=T0)
    with pytest.raises(strata.InvalidArgument, match="ts_unit"):
        client.put(table, "e0", {"age": 1}, ts=1767225600)
    with pytest.raises(strata.InvalidArgument, match="not a timestamp"):
        client.put(table, "e0", {"age": 1}, ts=1.5)
    with pytest.raises(strata.InvalidArgument):
        client.put(table, "e0", {}, ts=T0)
    with pytest.raises(strata.NotFound):
        client.put("no_such_table_x", "e0", {"age": 1}, ts=T0)
    _nothing_written(client, table)


def test_join_rejects(client, table):
    client.put_df(table, _good())
    s = pd.DataFrame({"entity": ["e0", "e1"], "ts": [T0, T0]})
    with pytest.raises(strata.NotFound, match="no feature 'zzz'"):
        client.join(table, s, ["age", "zzz"])
    with pytest.raises(strata.NotFound):
        client.join("no_such_table_x", s, ["age"])
    with pytest.raises(strata.InvalidArgument, match="no ts column"):
        client.join(table, s.drop(columns=["ts"]), ["age"])
    with pytest.raises(strata.InvalidArgument, match="no entity column 'user'"):
        client.join(table, s, ["age"], entity_column="user")
    with pytest.raises(strata.InvalidArgument, match="ts_unit"):
        client.join(table, s.assign(ts=[1, 2]), ["age"])
    with pytest.raises(strata.InvalidArgument, match="naive and tz-aware"):
        client.join(table, s.assign(ts=[dt.datetime(2026, 1, 1),
                                        dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)]),
                    ["age"])
    with pytest.raises(strata.InvalidArgument, match="twice"):
        client.join(table, s, ["age", "age"])
    with pytest.raises(strata.InvalidArgument, match="clash"):
        client.join(table, s.assign(age=1), ["age"])
    with pytest.raises(strata.InvalidArgument):
        client.join(table, s.to_dict(), ["age"])
    for bad, msg in (({"ts": [1.5, 2.5]}, "float column is not timestamps"),
                     ({"ts": [True, False]}, "boolean column is not timestamps"),
                     ({"ts": ["2026-01-01", "x"]}, "ts column 'ts'"),
                     ({"entity": [1.5, 2.5]}, "float column is not entity keys"),
                     ({"entity": ["e0", None]}, "missing entity at row 1")):
        with pytest.raises(strata.InvalidArgument, match=msg):
            client.join(table, s.assign(**bad), ["age"])
    with pytest.raises(strata.InvalidArgument, match="no features"):
        client.join(table, s, [])
    with pytest.raises(strata.NotFound, match="no such table"):
        client.join(table, s, ["no_such_table_x:age"])
    # integer timestamps with a unit are fine; naive datetimes are UTC
    us = T0.value // 1000
    a = client.join(table, s.assign(ts=[us, us]), ["age"], ts_unit="us")
    b = client.join(table, s.assign(ts=[T0.tz_localize(None)] * 2), ["age"])
    assert a["age"].tolist() == b["age"].tolist() == [0, 1]


GOOD = {"s": 1767225600, "ms": 1767225600 * 1000, "us": 1767225600 * 10**6,
        "ns": 1767225600 * 10**9}


@pytest.mark.parametrize("ts,unit,hint", [
    (1762000000, "ms", "as s it is 2025-11-01"),           # seconds given as ms
    (1762000000000000, "ms", "as us it is 2025-11-01"),    # microseconds given as ms
    (1762000000000, "s", "as ms it is 2025-11-01"),        # ms given as seconds
    (5, "ns", "outside 1990-2200"),
])
def test_implausible_integer_ts_refused(client, tname, ts, unit, hint):
    """An integer timestamp outside 1990-2200 in its unit is a unit mistake: refused with the
    CLI's message naming the unit that would make it plausible, in every API that takes one,
    and nothing is written; allow_any_ts=True accepts it."""
    client.create_table(tname, {"x": "i64"})
    for call in (lambda: client.put(tname, "e", {"x": 1}, ts=ts, ts_unit=unit),
                 lambda: client.put(tname, "e", {"x": 1}, ts=str(ts), ts_unit=unit),
                 lambda: client.put_df(tname, pd.DataFrame({"entity": ["a", "b"],
                                                            "ts": [GOOD[unit], ts],
                                                            "x": [1, 2]}), ts_unit=unit),
                 lambda: client.put_df(tname, pd.DataFrame({"entity": ["b"], "x": [2],
                                                            "ts": pd.Series([ts], dtype=object)}),
                                       ts_unit=unit),
                 lambda: client.get(tname, "e", ["x"], as_of=ts, ts_unit=unit),
                 lambda: client.join(tname, pd.DataFrame({"entity": ["e"], "ts": [ts]}), ["x"],
                                     ts_unit=unit)):
        with pytest.raises(strata.InvalidArgument, match=hint):
            call()
    assert client.get(tname, ["e", "a", "b"], ["x"]).to_dict() == {"x": [None, None, None]}


def test_allow_any_ts(tmp_path, tname):
    with strata.open(str(tmp_path / "d"), allow_any_ts=True) as c:
        c.create_table(tname, {"x": "i64"})
        c.put(tname, "e", {"x": 1}, ts=1762000000, ts_unit="ms")
        assert c.get(tname, "e", ["x"], as_of=1762000000, ts_unit="ms").to_dict() == {"x": [1]}
        df = pd.DataFrame({"entity": ["f"], "ts": [5], "x": [2]})
        assert c.put_df(tname, df, ts_unit="s") == 1
        assert c.history(tname, "f", "x")["ts"].tolist() == [pd.Timestamp(5, unit="s", tz="UTC")]
        (tmp_path / "p.csv").write_text("entity,ts,x\ng,1762000000,3\n")
        c.preload(tname, tmp_path / "p.csv", ts_unit="ms")
        assert c.get(tname, "g", ["x"], as_of=1762000000, ts_unit="ms").to_dict() == {"x": [3]}


def test_preload_guard(client, tname, tmp_path):
    """A preload file's integer timestamps get the same guard (in the store), and
    allow_any_ts reaches it."""
    client.create_table(tname, {"x": "i64"})
    f = tmp_path / "p.csv"
    f.write_text("entity,ts,x\na,1762000000,1\n")
    with pytest.raises(strata.Error, match="1990-2200"):
        client.preload(tname, f, ts_unit="ms")
    assert client.get(tname, "a", ["x"]).to_dict() == {"x": [None]}


@pytest.mark.parametrize("addr", [None, 7070, [], ["127.0.0.1:1", 2], ""])
def test_connect_rejects_bad_addr(addr):
    with pytest.raises(strata.InvalidArgument, match="host:port"):
        strata.connect(addr)


def test_connect_seed_list(server, tname):
    # a list of seeds: the first that answers serves (here the dead one comes first)
    with strata.connect(["127.0.0.1:1", server.addr]) as c:
        c.create_table(tname, {"x": "i64"})
        assert tname in [t.name for t in c.tables()]
