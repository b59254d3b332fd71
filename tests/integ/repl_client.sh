#!/usr/bin/env bash
# libstrata over a 3-node cluster with split primaries (shards 0,3 on a, 1 on b, 2 on c, each
# replicated on the two other nodes), against a single-node reference: the same random writes
# through a routing client and to the reference give identical random multi-gets, batches
# and joins (in input order); replica reads with max_lag_ms (a stopped primary makes its
# replica refuse a tight bound and accept a loose one, and the routed read never outlives its
# timeout); one long-lived client keeps reading and writing across a graceful promote (the
# layout is refetched). Rerun by hand: BIN=bin bash tests/integ/repl_client.sh
set -uo pipefail
source tests/integ/repl_common.bash

make_split_cluster "a b c a" a b c
for n in a b c; do start $n; done
# the single-node reference: no --cluster
REF=127.0.0.1:$(free_port)
"$SD" --data-dir "$T/ref" --listen "$REF" --admin off --ready-file "$T/ref.ready" >>"$T/ref.log" 2>&1 &
PID[ref]=$!
for _ in $(seq 300); do [ -s "$T/ref.ready" ] && break; sleep 0.05; done
SEEDS="127.0.0.1:$(free_port),${ADDR[b]},${ADDR[a]}"   # a dead seed first

# the layout as a client sees it
out=$($S --addr "$SEEDS" cluster) || fail "strata cluster: $out"
echo "$out" | /usr/bin/python3 -c '
import json, sys
l = json.load(sys.stdin)
assert l["clustered"] and l["nshards"] == 4 and len(l["nodes"]) == 3, l
assert [s["primary"] for s in l["shards"]] == ["a", "b", "c", "a"], l
assert sorted(l["shards"][1]["replicas"]) == ["a", "c"], l' || fail "layout: $out"
ref_out=$($S --addr "$REF" cluster) || fail "single-node cluster: $ref_out"
echo "$ref_out" | grep -q '"clustered":false' || fail "single node layout: $ref_out"

# routed multi-gets, batches and joins equal the single-node reference
seed=$RANDOM
drv --check "$SEEDS" "$REF" "$seed" > "$T/check.out" 2>&1 || fail "check (seed $seed): $(cat "$T/check.out")"
cat "$T/check.out"

# replica reads with a staleness bound: an entity of shard 1 (primary b)
E=
for i in $(seq 0 200); do [ "$(drv --shard-of 4 r$i)" = 1 ] && { E=r$i; break; }; done
[ -n "$E" ] || fail "no entity of shard 1"
$S --addr "${ADDR[a]}" put rt "$E" x=7 --ts 2026-01-01T00:00:00Z >/dev/null || fail "put $E"
for n in a c; do wait_caught_up $n; done
out=$(drv --raw-get "${ADDR[c]}" rt "$E" 2000); [ "$out" = "ok 7" ] || fail "fresh replica, 2 s bound: $out"
out=$($S --addr "${ADDR[c]}" get rt "$E" x --replica-ok --max-lag-ms 2000) || fail "cli replica get: $out"
[ "$(echo "$out" | cut -f2)" = 7 ] || fail "cli replica get: $out"
stop b
sleep 1.5
out=$(drv --raw-get "${ADDR[c]}" rt "$E" 300)
echo "$out" | grep -q "^stale: .*beyond max_lag_ms 300" || fail "replica of a stopped primary, 300 ms bound: $out"
out=$(drv --raw-get "${ADDR[c]}" rt "$E" 60000); [ "$out" = "ok 7" ] || fail "60 s bound: $out"
out=$($S --addr "${ADDR[a]},${ADDR[c]}" get rt "$E" x --replica-ok --max-lag-ms 60000) ||
  fail "cli loose bound: $out"
[ "$(echo "$out" | cut -f2)" = 7 ] || fail "cli loose bound: $out"
# tight bound: the replicas refuse, the primary is down: a clear error within the timeout
out=$(drv --replica-get "${ADDR[a]},${ADDR[c]}" rt "$E" 300 1500) || fail "replica-get outlived its timeout: $out"
echo "$out" | grep -q "^unavailable after" || fail "tight bound with the primary down: $out"
out=$($S --addr "${ADDR[a]}" get rt "$E" x --max-lag-ms 5 2>&1)
echo "$out" | grep -q "needs --replica-ok" || fail "--max-lag-ms without --replica-ok: $out"
start b
for n in a b c; do wait_caught_up $n; done

# one client across a graceful promote (c takes shard 0): it refetches the layout
drv --soak "${ADDR[b]}" 8 > "$T/soak.out" 2>&1 &
SOAK=$!
sleep 2
"$ADM" cluster promote --cluster "$T/cluster.ini" --graceful c 0 >/dev/null 2>"$T/promote.err" ||
  fail "graceful promote: $(cat "$T/promote.err")"
wait $SOAK || fail "client across the promote: $(cat "$T/soak.out")"
cat "$T/soak.out"
out=$($S --addr "${ADDR[b]}" cluster)
echo "$out" | /usr/bin/python3 -c '
import json, sys
l = json.load(sys.stdin)
assert l["shards"][0]["primary"] == "c" and l["shards"][0]["version"] > 1, l
assert l["version"] > 1, l' || fail "layout after the promote: $out"
echo "ok: routed reads/writes/joins equal a single node, replica reads bounded, a client across a promote"
