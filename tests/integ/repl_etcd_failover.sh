#!/usr/bin/env bash
# Automatic failover with etcd under load: three nodes, semi-sync K=1, four writers through
# the seed list; kill -9 of the primary at a random moment; etcd elects the most caught-up
# replica without any operator; every acknowledged write is on the new primary; the killed
# node comes back as a replica. Five rounds with random timings; the time from the kill to
# the first acknowledged write after it is printed (bench/bench-failover.sh measures it). The
# killed node rejoins in place (its divergent tail truncated, or nothing to discard), never
# by a full resync.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_failover.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

SYNC=(--min-sync-replicas 1 --sync-timeout 5s)
etcd_cluster 1 a b c
for n in a b c; do start $n "${SYNC[@]}"; done
[ "$(wait_leader 0)" = a ] || fail "the layout's primary did not take the first epoch"
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
wait_caught_up b; wait_caught_up c

rnd() { /usr/bin/python3 -c "import random; print(round(random.uniform($1, $2), 2))"; }
for round in 1 2 3 4 5; do
  p=$(leader 0); e0=$(epoch 0)
  seeds="${ADDR[$p]},${ADDR[a]},${ADDR[b]},${ADDR[c]}"
  rm -f "$T/stop" "$T/killed" "$T"/first.*
  WP=()
  for w in 1 2 3 4; do writer "$seeds" "r${round}w$w" & WP+=($!); done
  sleep "$(rnd 0.3 1.2)"
  tk=$(date +%s%N)
  kill9 "$p"
  touch "$T/killed"
  np=$(wait_leader 0 "$p" 100)
  for _ in $(seq 100); do ls "$T"/first.* >/dev/null 2>&1 && break; sleep 0.05; done
  sleep 0.5
  touch "$T/stop"
  for w in "${WP[@]}"; do wait "$w"; done
  first=$(cat "$T"/first.* 2>/dev/null | sort -n | head -1)
  [ -n "$first" ] || fail "round $round: no write acknowledged after the kill"
  [ "$(epoch 0)" -gt "$e0" ] || fail "round $round: the epoch did not move"
  echo "round $round: $p killed, $np elected (epoch $(epoch 0)), first write after" \
       "$(( (first - tk) / 1000000 )) ms"
  check_acked "$np" "$T"/acked.r${round}w*
  rejoins=$(grep -c "rejoining $np: truncated in place\|joined $np at its fork point" "$T/$p.log")
  start "$p" "${SYNC[@]}"
  wait_caught_up "$p" 600
  # the killed node held the history $np forked from: it rejoined in place, not by a resync
  [ "$(grep -c "rejoining $np: truncated in place\|joined $np at its fork point" "$T/$p.log")" \
    -gt "$rejoins" ] || fail "round $round: $p did not rejoin $np in place"
  grep "rejoining $np: truncated in place\|joined $np at its fork point" "$T/$p.log" | tail -1 |
    grep -o "truncated in place [0-9]* divergent sequences [0-9.]*\|at its fork point"
done
# everything acknowledged in every round is on the last primary
check_acked "$(leader 0)" "$T"/acked.*
# a client learns the elected primary and its epoch from any node (CLUSTER)
L=$(leader 0); E=$(epoch 0)
out=$($S --addr "${ADDR[a]},${ADDR[b]},${ADDR[c]}" cluster) || fail "strata cluster: $out"
echo "$out" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["shards"][0]
assert s["primary"] == sys.argv[1] and s.get("epoch") == int(sys.argv[2]), s' "$L" "$E" ||
  fail "CLUSTER does not show leader $L at epoch $E: $out"
grep -q "won the election" "$T/b.log" "$T/c.log" "$T/a.log" || fail "no election logged"
echo "ok: 5 automatic failovers under semi-sync load, no acknowledged write lost"
