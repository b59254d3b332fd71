#!/usr/bin/env bash
# ops/local-cluster.sh: starts three nodes with every shard replicated on the other two,
# shows their status, serves a write and a read from a replica, and stops them cleanly; then
# the same with --etcd (a local etcd elects the primaries; a killed primary is replaced).
# Rerun by hand: BIN=bin bash tests/integ/repl_local_cluster.sh
set -uo pipefail
BIN=${BIN:-bin}
T=$(mktemp -d /tmp/strata-lc.XXXXXX)
E=$T/etcd-cluster
trap 'for d in "$T" "$E"; do BIN=$PWD/$BIN bash ops/local-cluster.sh stop --dir "$d" >/dev/null 2>&1; done
      rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; tail -n 20 "$T"/*.log; echo "rerun: BIN=$BIN bash $0"; exit 1; }
PORT=$(/usr/bin/python3 -c '
import socket, random
for _ in range(100):
    b = random.randrange(20000, 60000, 2); ok = True
    for p in range(b, b + 8):
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

# --etcd: a fresh directory; primaries are elected (one per shard), a write is served, a
# killed primary is replaced, and stop takes etcd down after the nodes
bash ops/local-cluster.sh start --etcd --dir "$E" --port "$PORT" > "$T/estart.out" || fail "start --etcd: $(cat "$T/estart.out")"
grep -q "cluster status --cluster etcd://127.0.0.1:$((PORT + 6))/strata/local" "$T/estart.out" ||
  fail "no etcd status hint: $(cat "$T/estart.out")"
for _ in $(seq 100); do
  bash ops/local-cluster.sh status --dir "$E" > "$T/estatus.out" 2>&1
  [ "$(grep -c ' primary ' "$T/estatus.out")" -eq 4 ] && break; sleep 0.1
done
[ "$(grep -c ' primary ' "$T/estatus.out")" -eq 4 ] || fail "expected 4 elected primaries: $(cat "$T/estatus.out")"
seeds="127.0.0.1:$PORT,127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 4))"
"$BIN/strata" --addr "$seeds" table create t --feature x:i64 >/dev/null || fail "create (etcd)"
for n in 2 4; do # the registry reaches the other nodes within a heartbeat
  for _ in $(seq 100); do "$BIN/strata" --addr "127.0.0.1:$((PORT + n))" table show t >/dev/null 2>&1 && break; sleep 0.05; done
done
"$BIN/strata" --addr "$seeds" put t k1 x=42 >/dev/null || fail "put (etcd)"
kill -9 "$(awk '$2 == "n0" {print $1}' "$E/pids")"
ok=0
for _ in $(seq 100); do
  "$BIN/strata" --addr "127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 4))" put t k2 x=43 >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.1
done
[ $ok = 1 ] || fail "no write accepted after n0 was killed"

# the layout edits of strata-admin against that etcd, on the example layout of ops/examples
X="etcd://127.0.0.1:$((PORT + 6))/strata/example"
A="$BIN/strata-admin"
# refused TEXT CMD...: CMD fails and says TEXT
refused() { local t=$1 out; shift; out=$("$@" 2>&1) && return 1; grep -q "$t" <<< "$out"; }
$A cluster init --cluster "$X" ops/examples/strata-cluster.ini >/dev/null || fail "init the example layout"
refused "already exists" $A cluster init --cluster "$X" ops/examples/strata-cluster.ini ||
  fail "a second init was not refused"
$A cluster add-node --cluster "$X" n3 10.0.0.13:7070 10.0.0.13:7072 >/dev/null || fail "add-node"
refused "already exists" $A cluster add-node --cluster "$X" n3 10.0.0.13:7070 10.0.0.13:7072 ||
  fail "a repeated add-node was not refused"
refused "bad node name or address" $A cluster add-node --cluster "$X" n4 nocolon 10.0.0.14:7072 ||
  fail "a bad address was not refused"
refused "still holds shard" $A cluster remove-node --cluster "$X" n2 || fail "remove-node of a member"
refused "primary n2 must stay" $A cluster move-slots --cluster "$X" 2 n0,n3 ||
  fail "move-slots without the shard's primary was not refused"
$A cluster move-slots --cluster "$X" 3 n0,n3 >/dev/null || fail "move-slots"
refused "no shard" $A cluster move-slots --cluster "$X" 9 n0 || fail "move-slots of a bad shard"
$A cluster add-node --cluster "$X" n5 10.0.0.15:7070 10.0.0.15:7072 >/dev/null || fail "add-node n5"
$A cluster remove-node --cluster "$X" n5 >/dev/null || fail "remove-node n5"
out=$(curl -s "http://127.0.0.1:$((PORT + 6))/v3/kv/range" \
  -d "{\"key\":\"$(printf /strata/example/layout | base64 -w0)\"}" | /usr/bin/python3 -c '
import base64, json, sys
l = json.loads(base64.b64decode(json.load(sys.stdin)["kvs"][0]["value"]))
print(l["version"], len(l["nodes"]), l["map"][3]["primary"], ",".join(l["map"][3]["replicas"]))')
[ "$out" = "5 4 n0 n3" ] || fail "layout after the edits: $out"

bash ops/local-cluster.sh stop --dir "$E" > "$T/estop.out" 2>&1 || fail "stop (etcd)"
[ ! -e "$E/etcd.pid" ] || fail "etcd pid left"
grep -q "stratad stopped" "$E/n1.log" || fail "n1 did not stop cleanly"
echo "ok: local cluster of 3 nodes started, served, stopped cleanly; also with --etcd"
