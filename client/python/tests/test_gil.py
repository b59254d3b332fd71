"""The GIL is released during network and store calls, so threads overlap. Through stratad this
is shown deterministically: the server is stopped (SIGSTOP), a thread makes a call that must
wait for it, and the main thread runs Python while that call is still inside the extension;
had the call kept the GIL, the main thread could only run again once it returned (it cannot
return before SIGCONT, or before its timeout, which then fails it as Unavailable).
Embedded, a long store call in one thread is watched by the main thread, which must see it in
progress over most of its length."""
import os
import signal
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

import strata
from conftest import Server

T0 = pd.Timestamp("2026-01-01", tz="UTC")


class Spy:
    """Stands for a Client's core: records when a thread is inside a core call."""

    def __init__(self, core):
        self._core = core
        self.inside = None  # name of the core method in progress
        self.spans = []     # (name, enter, exit) in perf_counter seconds
        self.cached = {}    # table_get answers given without a call

    def __getattr__(self, name):
        f = getattr(self._core, name)
        if not callable(f):
            return f

        def call(*args):
            if name == "table_get" and args[0] in self.cached:
                return self.cached[args[0]]
            self.inside = name
            t0 = time.perf_counter()
            try:
                return f(*args)
            finally:
                self.spans.append((name, t0, time.perf_counter()))
                self.inside = None
        return call


def _stop(srv):
    """SIGSTOP, then waits until every thread of the server is stopped: a thread woken by the
    SIGCONT just before may still answer a request for a moment (seen on a loaded machine)."""
    os.kill(srv.proc.pid, signal.SIGSTOP)
    tasks = f"/proc/{srv.proc.pid}/task"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if all(open(f"{tasks}/{t}/stat").read().rsplit(")", 1)[1].split()[0] == "T"
                   for t in os.listdir(tasks)):
                return
        except FileNotFoundError:  # a thread ended while we looked
            pass
        time.sleep(0.002)
    raise AssertionError("stratad did not stop")


def _stopped_call(srv, spy, call):
    """Runs call() in a thread while the server is stopped; returns (the core method the
    main thread ran beside, or None; call's result)."""
    out = {}

    def run():
        try:
            out["r"] = call()
        except Exception as e:  # checked below
            out["e"] = e
    _stop(srv)
    try:
        th = threading.Thread(target=run)
        th.start()
        deadline = time.monotonic() + 10
        while spy.inside is None and th.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.2)  # the thread now waits in the extension for the stopped server
        beside = spy.inside if th.is_alive() else None
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    th.join(30)
    assert "e" not in out, out.get("e")
    return beside, out.get("r")


def test_network_calls_release_the_gil(tname, tmp_path):
    srv = Server()
    try:
        with strata.connect(srv.addr, timeout=3) as c:
            c.create_table(tname, {"x": "i64"})
            c.put(tname, "e", {"x": 7}, ts=T0)
            pre = tmp_path / "p.csv"
            pre.write_text("entity,ts,x\nq,2026-01-01T00:00:00Z,5\n")
            job = c.preload(tname, str(pre))
            spy = c._core = Spy(c._core)
            samples = pd.DataFrame({"entity": ["e", "f"], "ts": [T0, T0]})
            spy.cached[tname] = spy._core.table_get(tname)  # put, get, join: their own call
            calls = [
                ("table_list", lambda: tname in [t.name for t in c.tables()]),
                ("create_table", lambda: c.create_table(tname + "b", {"y": "f64"}) is not None),
                ("table_get", lambda: c.table(tname + "b").features == {"y": "f64"}),
                ("alter_table", lambda: "z" in c.alter_table(tname + "b",
                                                             add_features={"z": "str"}).features),
                ("drop_table", lambda: c.drop_table(tname + "b") is None),
                ("put_columns", lambda: c.put(tname, "g", {"x": 8}, ts=T0) == 1),
                ("delete", lambda: c.delete(tname, "g", ts=T0 + pd.Timedelta("1s")) is None),
                ("get", lambda: c.get(tname, ["e", "g"], ["x"]).to_dict() == {"x": [7, None]}),
                ("history", lambda: len(c.history(tname, "e", "x")) == 1),
                ("join", lambda: c.join(tname, samples, ["x"])["x"].tolist() == [7, pd.NA]),
                ("job_get", lambda: job.progress()["state"] == "done"),
                ("job_cancel", lambda: pytest.raises(strata.InvalidArgument, job.cancel)
                 .match("already done")),
                ("preload", lambda: c.preload(tname, str(pre), wait=False).id > job.id),
            ]
            seen = set()
            for name, call in calls:
                # the call's first core method blocks (e.g. table_get before put_columns):
                # each is a call of its own in this list too
                beside, ok = _stopped_call(srv, spy, call)
                assert beside is not None, f"{name}: the main thread did not run during it"
                assert ok is True, name
                seen.add(beside)
            assert seen == {name for name, _ in calls}, seen
            # a call that outlives the client's timeout fails as Unavailable
            _stop(srv)
            try:
                t0 = time.monotonic()
                with pytest.raises(strata.Unavailable) as e:
                    c.get(tname, "e", ["x"])
                assert 2.5 < time.monotonic() - t0 < 20 and e.value.code is not None
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
    finally:
        srv.stop()


def _watch(spy, call, core_name):
    """Runs call() in a thread; the main thread notes when it sees core.<core_name> in
    progress. Returns (the call's span, first and last sighting)."""
    seen = []
    th = threading.Thread(target=call)
    th.start()
    while th.is_alive():
        if spy.inside == core_name:
            seen.append(time.perf_counter())
    th.join()
    span = [s for s in spy.spans if s[0] == core_name][-1]
    return span[2] - span[1], (seen[-1] - seen[0]) if seen else 0.0


def test_store_calls_release_the_gil(tmp_path, tname):
    """Embedded: while one thread is inside a long put or join, the main thread keeps running
    Python; with the GIL held it could not run between the call's first bytecode after
    entering the extension and its return."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with strata.open(str(tmp_path / "d")) as c:
            c.create_table(tname, {"a": "i64", "b": "f64"})
            n = 150_000
            df = pd.DataFrame({"entity": [f"e{i % 50000}" for i in range(n)],
                               "ts": T0 + pd.to_timedelta(np.arange(n) // 50000, unit="h"),
                               "a": np.arange(n), "b": np.arange(n) * 0.5})
            samples = df[["entity", "ts"]].copy()
            spy = c._core = Spy(c._core)
            for name, call in (("put_columns", lambda: c.put_df(tname, df, batch_rows=n)),
                               ("join", lambda: c.join(tname, samples, ["a", "b"]))):
                took, seen = _watch(spy, call, name)
                assert took > 0.02, (name, took)
                assert seen > 0.5 * took, f"{name}: main thread ran {seen:.3f} s of {took:.3f} s"
            j = c.join(tname, samples.iloc[:5], ["a"])
            assert j["a"].tolist() == list(range(5))
    finally:
        sys.setswitchinterval(old)
