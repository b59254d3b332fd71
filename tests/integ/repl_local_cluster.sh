#!/usr/bin/env bash
# ops/local-cluster.sh: starts three nodes with every shard replicated on the other two,
# shows their status, serves a write and a read from a replica, and stops them cleanly.
# Rerun by hand: BIN=bin bash tests/integ/repl_local_cluster.sh
set -uo pipefail
BIN=${BIN:-bin}
T=$(mktemp -d /tmp/strata-lc.XXXXXX)
trap 'BIN=$PWD/$BIN bash ops/local-cluster.sh stop --dir "$T" >/dev/null 2>&1; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; tail -n 20 "$T"/*.log; echo "rerun: BIN=$BIN bash $0"; exit 1; }
PORT=$(/usr/bin/python3 -c '
import socket, random
for _ in range(100):
    b = random.randrange(20000, 60000, 2); ok = True
    for p in range(b, b + 6):
        s = socket.socket()
        try: s.bind(("127.0.0.1", p))
        except OSError: ok = False
        s.close()
    if ok: print(b); break')
export BIN=$PWD/$BIN
bash ops/local-cluster.sh start --dir "$T" --port "$PORT" > "$T/start.out" || fail "start: $(cat "$T/start.out")"
grep -q "strata --addr 127.0.0.1:$PORT," "$T/start.out" || fail "no client hint: $(cat "$T/start.out")"
bash ops/local-cluster.sh status --dir "$T" > "$T/status.out" || fail "status"
[ "$(grep -c ' primary ' "$T/status.out")" -eq 4 ] || fail "expected 4 primaries: $(cat "$T/status.out")"
[ "$(grep -c ' replica ' "$T/status.out")" -eq 8 ] || fail "expected 8 replicas: $(cat "$T/status.out")"
"$BIN/strata" --addr "127.0.0.1:$PORT" table create t --feature x:i64 >/dev/null || fail "create"
for _ in $(seq 100); do "$BIN/strata" --addr "127.0.0.1:$((PORT + 4))" table show t >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/strata" --addr "127.0.0.1:$((PORT + 4))" put t k1 x=41 >/dev/null || fail "put"
for _ in $(seq 100); do
  [ "$("$BIN/strata" --addr "127.0.0.1:$((PORT + 2))" get t k1 x | cut -f2)" = 41 ] && break; sleep 0.05
done
[ "$("$BIN/strata" --addr "127.0.0.1:$((PORT + 2))" get t k1 x | cut -f2)" = 41 ] || fail "read on another node"
bash ops/local-cluster.sh stop --dir "$T" > "$T/stop.out" || fail "stop"
grep -q "stopped" "$T/stop.out" || fail "stop output"
for n in n0 n1 n2; do grep -q "stratad stopped" "$T/$n.log" || fail "$n did not stop cleanly"; done
echo "ok: local cluster of 3 nodes started, served, stopped cleanly"
