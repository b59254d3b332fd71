"""The Python package against its peers, measured in the same run:
  - join: N sample rows x 10 features, DataFrame to DataFrame, strata (embedded and through
    stratad) versus pandas.merge_asof(by=entity, direction="backward") on the same data
    already in memory (pandas' time includes sorting the samples by ts, which merge_asof
    requires; the feature frame is sorted beforehand, untimed);
  - get: 1 entity x 10 features per call from one Python thread, strata.connect (stratad)
    versus redis-py HMGET of the same 10 fields against redis-server.
Targets: join >= 1.0x pandas, get >= 1.0x redis-py per call. Sizes: BENCH_QUICK=1 shrinks.
Usage: python3 bench/bench-python.py BIN_DIR"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
import strata  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
SAMPLES = 100_000 if QUICK else 1_000_000
ENTITIES = 20_000 if QUICK else 100_000
VERSIONS = 5
GETS = 5_000 if QUICK else 30_000
JOIN_ROUNDS = 3
FEATS = {f"i{k}": "i64" for k in range(5)} | {f"f{k}": "f64" for k in range(5)}
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_stratad(bin_dir, tmp):
    ready = os.path.join(tmp, "ready")
    p = subprocess.Popen([os.path.join(bin_dir, "stratad"), "--data-dir",
                          os.path.join(tmp, "srv"), "--listen", "127.0.0.1:0", "--admin", "off",
                          "--sync", "batch", "--ready-file", ready],
                         stderr=open(os.path.join(tmp, "stratad.log"), "w"))
    for _ in range(400):
        if os.path.exists(ready) and os.path.getsize(ready):
            return p, open(ready).read().split()[0]
        time.sleep(0.025)
    raise SystemExit("stratad did not start")


def best(fn, rounds=3):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def features_frame(rng):
    n = ENTITIES * VERSIONS
    df = pd.DataFrame({"entity": np.repeat(np.arange(ENTITIES), VERSIONS).astype(str).astype(object),
                       "ts": T0 + pd.to_timedelta(rng.integers(0, 86400 * 30, n), unit="s")})
    for f, t in FEATS.items():
        df[f] = rng.integers(0, 1 << 40, n) if t == "i64" else rng.random(n)
    return df.drop_duplicates(["entity", "ts"])


def bench_join(clients, rng):
    feats = features_frame(rng)
    samples = pd.DataFrame({
        "entity": rng.integers(0, ENTITIES + ENTITIES // 10, SAMPLES).astype(str).astype(object),
        "ts": T0 + pd.to_timedelta(rng.integers(-86400, 86400 * 31, SAMPLES), unit="s"),
        "label": rng.random(SAMPLES)})
    for name, c in clients:
        c.create_table("bench_join", FEATS)
        t = time.perf_counter()
        c.put_df("bench_join", feats, batch_rows=8192)
        print(f"put_df {name}: {len(feats) * len(FEATS) / (time.perf_counter() - t):,.0f} "
              "cells/s", flush=True)
    right = feats.sort_values("ts", kind="stable")

    def pandas_join():
        left = samples.sort_values("ts", kind="stable")
        return pd.merge_asof(left, right, on="ts", by="entity", direction="backward")

    # The contenders take turns, round by round (best of JOIN_ROUNDS each), as in the get
    # bench: a burst of load from another process then slows every contender alike instead
    # of whichever was measured at that moment.
    peers = [("pandas merge_asof", pandas_join)]
    peers += [(f"strata join ({name})", lambda c=c: c.join("bench_join", samples, list(FEATS)))
              for name, c in clients]
    mins, outs = [float("inf")] * len(peers), [None] * len(peers)
    for _ in range(JOIN_ROUNDS):
        for i, (_, fn) in enumerate(peers):
            t, outs[i] = best(fn, rounds=1)
            mins[i] = min(mins[i], t)
    ref = outs[0]
    chk = ref.sort_values(["entity", "ts", "label"]).reset_index(drop=True)
    for out in outs[1:]:
        # the same answers as pandas (row order differs: pandas sorts by ts)
        got = out.sort_values(["entity", "ts", "label"]).reset_index(drop=True)
        assert np.array_equal(chk["f0"].to_numpy(), got["f0"].to_numpy(), equal_nan=True)
        assert (chk["i3"].astype("Int64").fillna(-1) == got["i3"].fillna(-1)).all()
    tp = mins[0]
    rows = [(name, t, None if i == 0 else tp / t) for i, ((name, _), t) in
            enumerate(zip(peers, mins))]
    print(f"\njoin: {SAMPLES:,} samples x {len(FEATS)} features, {len(feats):,} feature rows "
          f"(load average {os.getloadavg()[0]:.1f}: the peers share the machine)")
    print(f"{'':28s} {'seconds':>8s} {'rows/s':>12s} {'vs pandas':>10s}")
    for name, secs, ratio in rows:
        r = f"{ratio:.2f}x" if ratio else "-"
        print(f"{name:28s} {secs:8.3f} {SAMPLES / secs:12,.0f} {r:>10s}")


def bench_get(srv_client, emb_client, tmp, rng):
    port = free_port()
    rp = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        import redis
    except ImportError:
        redis = None
    try:
        names = list(FEATS)
        ids = [str(i) for i in rng.integers(0, ENTITIES, GETS)]
        res = []
        if redis is not None:
            r = redis.Redis(port=port)
            for _ in range(200):
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.025)
            pipe = r.pipeline(transaction=False)
            for e in range(ENTITIES):
                pipe.hset(f"bench:{e}", mapping={f: str(e) for f in names})
                if e % 5000 == 4999:
                    pipe.execute()
            pipe.execute()
        # The peers take turns, round by round (best of five each): a background compaction
        # after the join's writes, or another process, then slows every peer alike instead
        # of whichever was measured at that moment.
        peers = []
        if redis is not None:
            peers.append(("redis-py HMGET", lambda: [r.hmget(f"bench:{e}", names) for e in ids]))
        for name, c in (("stratad", srv_client), ("embedded", emb_client)):
            peers.append((f"strata get ({name})",
                          lambda c=c: [c.get("bench_join", e, names).to_dict() for e in ids]))
        mins = [float("inf")] * len(peers)
        for _ in range(5):
            for i, (_, fn) in enumerate(peers):
                mins[i] = min(mins[i], best(fn, rounds=1)[0])
        res = [(name, t) for (name, _), t in zip(peers, mins)]
        print(f"\nget: 1 entity x {len(names)} features, one Python thread, {GETS:,} calls "
              f"(load average {os.getloadavg()[0]:.1f})")
        print(f"{'':28s} {'us/call':>8s} {'vs redis-py':>12s}")
        base = res[0][1] if redis is not None else None
        for name, secs in res:
            ratio = f"{base / secs:.2f}x" if base else "-"
            print(f"{name:28s} {secs / GETS * 1e6:8.1f} {ratio:>12s}")
        if redis is None:
            print("(python3-redis not installed: no redis-py peer)")
    finally:
        rp.terminate()
        rp.wait()


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin")
    rng = np.random.default_rng(42)
    with tempfile.TemporaryDirectory(prefix="strata-bench-py.") as tmp:
        srv, addr = start_stratad(bin_dir, tmp)
        try:
            with strata.open(os.path.join(tmp, "emb")) as emb, strata.connect(addr) as net:
                bench_join([("embedded", emb), ("stratad", net)], rng)
                bench_get(net, emb, tmp, rng)
        finally:
            srv.terminate()
            srv.wait()


if __name__ == "__main__":
    main()
