#!/usr/bin/env bash
# etcd mode, semi-sync K=1 under four writers: replica c is killed (kill -9) for a random
# while, so that it falls behind b (which acknowledges the writes), then the primary a is
# killed too and etcd elects b. c, restarted, is behind b's promotion point: b sends it
# the old history's batches up to that point from its own WAL and c joins b's history
# without a resync (strata_repl_resyncs_done_total and rejoin_resyncs unchanged), a rejoins
# in place, every acknowledged write is on every node, and verify finds no difference.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_rejoin.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

SYNC=(--min-sync-replicas 1 --sync-timeout 5s --admin 127.0.0.1:0)
three_nodes t "${SYNC[@]}"
resyncs() { echo $(( $(metric "$1" strata_repl_resyncs_done_total) + $(metric "$1" strata_repl_rejoin_resyncs_total) )); }
seeds="${ADDR[a]},${ADDR[b]}"
WP=()
for w in 1 2 3 4; do writer "$seeds" "w$w" & WP+=($!); done
sleep "$(rnd 0.2 0.6)"
kill9 c
sleep "$(rnd 0.3 1.5)"
kill9 a
touch "$T/killed"
np=$(wait_leader 0 a 100)
[ "$np" = b ] || fail "expected b, the only live copy, to be elected, got $np"
sleep "$(rnd 0.1 1.0)"
start c "${SYNC[@]}"
sleep 1
touch "$T/stop"
for w in "${WP[@]}"; do wait "$w"; done
start a "${SYNC[@]}"
wait_caught_up c 600
grep -q "replica c: sent sequences [0-9]*\.\.[0-9]* of history .* from this copy's WAL" "$T/b.log" ||
  { grep "replica c" "$T/b.log"; fail "b did not serve c's catch-up from its WAL"; }
grep -o "replica c: sent sequences [0-9.]* of history" "$T/b.log"
grep -q "joined b at its fork point" "$T/c.log" || fail "c did not join b at its fork point"
[ "$(resyncs c)" -eq 0 ] || fail "c resynced"  # restarted: counts anew
wait_caught_up a 600
[ "$(resyncs a)" -eq 0 ] || fail "a resynced"
for n in a b c; do check_acked "$n" "$T"/acked.w*; done
"$ADM" cluster verify --cluster "$CLUSTER" --shard 0 >"$T/verify.out" 2>&1 ||
  { cat "$T/verify.out"; fail "verify after the rejoin"; }
echo "ok: c, behind b's promotion point, caught up from b's WAL without a resync"
