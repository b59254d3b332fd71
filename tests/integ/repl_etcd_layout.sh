#!/usr/bin/env bash
# Layout edits reach running nodes through etcd's watch, without a restart: a node is added
# to a running etcd cluster (cluster add-node) while holding nothing, then shard 0 moves from
# c to it (cluster move-slots a,b,d). Every running node applies the new layout from the
# watch (logged as such, counted in strata_repl_layout_changes_total); d resyncs the shard and
# tails it, c stops replicating it; a client connected to c follows c's EMOVED redirect, and
# replica reads through c are routed to the shard's new replicas.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_layout.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

etcd_cluster 1 a b c
for n in a b c; do start $n --admin 127.0.0.1:0; done
[ "$(wait_leader 0)" = a ] || fail "a should lead"
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
for i in $(seq 20); do $S --addr "${ADDR[a]}" put t k$i x=$i >/dev/null || fail "put"; done
STATUS_CLUSTER=$CLUSTER
wait_caught_up b; wait_caught_up c
[ "$($S --addr "${ADDR[c]}" get t k7 x --replica-ok | cut -f2)" = 7 ] || fail "replica read on c"

# d joins the running cluster, holding no shard yet
ADDR[d]=127.0.0.1:$(free_port)
"$ADM" cluster add-node --cluster "$CLUSTER" d "${ADDR[d]}" "127.0.0.1:$(free_port)" >/dev/null ||
  fail "add-node"
start d --admin 127.0.0.1:0
# the running nodes learnt d from the watch
for n in a b c; do
  for _ in $(seq 50); do grep -q "node d .* joined the layout" "$T/$n.log" && break; sleep 0.1; done
  grep -q "node d .* joined the layout" "$T/$n.log" || fail "$n did not learn of d"
done

# shard 0 moves from c to d while every node runs
t0=$(date +%s%N)
"$ADM" cluster move-slots --cluster "$CLUSTER" 0 a,b,d >/dev/null || fail "move-slots"
for n in a b c d; do
  for _ in $(seq 50); do
    grep -q "layout version [0-9]* applied (from the watch; 1 shards changed" "$T/$n.log" && break
    sleep 0.05
  done
  grep -q "layout version [0-9]* applied (from the watch; 1 shards changed" "$T/$n.log" ||
    fail "$n did not apply the move from the watch"
done
echo "move-slots applied by 4 running nodes within $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q "shard 0: gained by a layout change" "$T/d.log" || fail "d did not gain shard 0"
grep -q "shard 0: moved away by a layout change" "$T/c.log" || fail "c did not drop shard 0"
wait_caught_up d
[ "$(metric d strata_repl_resyncs_done_total)" -ge 1 ] || fail "d did not resync shard 0"
for n in a b c d; do
  [ "$(metric $n strata_repl_layout_changes_total)" -ge 1 ] || fail "$n counted no layout change"
  [ "$(metric $n strata_repl_etcd_watch_events_total)" -ge 1 ] || fail "$n counted no watch event"
done

# c holds no copy now: a client connected to c follows its redirect; replica reads through c
# go to the new replicas; the layout any node describes is the new one
"$ADM" cluster status --cluster "$CLUSTER" --json | /usr/bin/python3 -c '
import json, sys
st = {s["node"]: s for s in json.load(sys.stdin) if "error" not in s}
assert st["c"]["shards"][0]["state"] == "none", st["c"]["shards"][0]
assert st["d"]["shards"][0]["state"] == "tailing", st["d"]["shards"][0]' || fail "states after the move"
$S --addr "${ADDR[a]}" put t k21 x=21 >/dev/null || fail "put after the move"
[ "$($S --addr "${ADDR[c]}" get t k21 x | cut -f2)" = 21 ] || fail "read through c (redirect)"
[ "$($S --addr "${ADDR[c]}" get t k7 x --replica-ok | cut -f2)" = 7 ] || fail "replica read through c"
$S --addr "${ADDR[c]}" cluster > "$T/cluster.out" || fail "cluster through c"
/usr/bin/python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
sh = l["shards"][0]
assert sh["primary"] == "a" and sorted(sh["replicas"]) == ["b", "d"], sh
assert "d" in [n["name"] for n in l["nodes"]], l["nodes"]' "$T/cluster.out" ||
  { cat "$T/cluster.out"; fail "c describes the old layout"; }
echo "ok: add-node and move-slots reached 4 running nodes through the watch; d took shard 0," \
     "c dropped it, clients through c followed"
