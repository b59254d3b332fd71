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

# K (semi-sync replicas), NODES, ROUNDS and KILL_REPLICA (a replica killed with the primary)
# come from the environment for repl_etcd_failover_k2.sh
K=${K:-1}; read -r -a NL <<< "${NODES:-a b c}"; ROUNDS=${ROUNDS:-5}; KILL_REPLICA=${KILL_REPLICA:-0}
SYNC=(--min-sync-replicas "$K" --sync-timeout 5s)
etcd_cluster 1 "${NL[@]}"
for n in "${NL[@]}"; do start $n "${SYNC[@]}"; done
[ "$(wait_leader 0)" = a ] || fail "the layout's primary did not take the first epoch"
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
for n in "${NL[@]:1}"; do wait_caught_up "$n"; done

for round in $(seq "$ROUNDS"); do
  p=$(leader 0); e0=$(epoch 0)
  seeds="${ADDR[$p]}"; for n in "${NL[@]}"; do seeds="$seeds,${ADDR[$n]}"; done
  rm -f "$T/stop" "$T/killed" "$T"/first.*
  WP=()
  for w in 1 2 3 4; do writer "$seeds" "r${round}w$w" & WP+=($!); done
  sleep "$(rnd 0.3 1.2)"
  tk=$(date +%s%N)
  q=""
  if [ "$KILL_REPLICA" = 1 ]; then
    # a replica too, in the same instant: with K=2 every acknowledged write is on one of the
    # others, and the most caught-up of them is elected
    reps=(); for n in "${NL[@]}"; do [ "$n" = "$p" ] || reps+=("$n"); done
    q=${reps[$((RANDOM % ${#reps[@]}))]}
    kill -9 "${PID[$q]}"
  fi
  kill9 "$p"
  [ -n "$q" ] && { wait "${PID[$q]}" 2>/dev/null; unset "PID[$q]"; }
  touch "$T/killed"
  np=$(wait_leader 0 "$p" 100)
  [ "$np" != "$q" ] || fail "round $round: the killed replica $q was elected"
  [ -n "$q" ] && start "$q" "${SYNC[@]}" # K=2 needs it back to acknowledge again
  for _ in $(seq 100); do ls "$T"/first.* >/dev/null 2>&1 && break; sleep 0.05; done
  sleep 0.5
  touch "$T/stop"
  for w in "${WP[@]}"; do wait "$w"; done
  first=$(cat "$T"/first.* 2>/dev/null | sort -n | head -1)
  [ -n "$first" ] || fail "round $round: no write acknowledged after the kill"
  [ "$(epoch 0)" -gt "$e0" ] || fail "round $round: the epoch did not move"
  echo "round $round: $p${q:+ and $q} killed, $np elected (epoch $(epoch 0)), first write after" \
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
out=$($S --addr "$seeds" cluster) || fail "strata cluster: $out"
echo "$out" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["shards"][0]
assert s["primary"] == sys.argv[1] and s.get("epoch") == int(sys.argv[2]), s' "$L" "$E" ||
  fail "CLUSTER does not show leader $L at epoch $E: $out"
grep -q "won the election" "$T"/*.log || fail "no election logged"
echo "ok: $ROUNDS automatic failovers under semi-sync K=$K load over ${#NL[@]} nodes, no acknowledged write lost"
