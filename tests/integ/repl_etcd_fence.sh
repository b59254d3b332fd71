#!/usr/bin/env bash
# A primary cut off past its lease (SIGSTOP) must not acknowledge anything afterwards: its
# streams stall first (fault repl.send.stall) so that it holds committed but unacknowledged
# semi-sync writes, then it is stopped until etcd expires its lease and a replica is elected. On SIGCONT its
# waiting writes are refused (the lease deadline passed), it is fenced, and it rejoins as a
# replica of the new primary, reporting the divergent tail it discards (count and range, log
# and metrics); every acknowledged write is on the new primary.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_fence.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

SYNC=(--min-sync-replicas 1 --sync-timeout 3s --admin 127.0.0.1:0)
etcd_cluster 1 a b c
# a's streams stall for 3 s at its 150th batch: the writes it commits then wait for acks
STRATA_FAULTS=repl.send.stall@150 start a "${SYNC[@]}"
for n in b c; do start $n "${SYNC[@]}"; done
[ "$(wait_leader 0)" = a ] || fail "a should lead first"
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
wait_caught_up b; wait_caught_up c
e0=$(epoch 0)

seeds="${ADDR[a]},${ADDR[b]},${ADDR[c]}"
rm -f "$T/stop"
WP=()
for w in 1 2 3 4; do writer "$seeds" "w$w" & WP+=($!); done
for _ in $(seq 200); do grep -q "fault repl.send.stall" "$T/a.log" && break; sleep 0.05; done
grep -q "fault repl.send.stall" "$T/a.log" || fail "the stream stall did not happen"
sleep 0.3
kill -STOP "${PID[a]}"
np=$(wait_leader 0 a 100)
sleep 0.5
kill -CONT "${PID[a]}"
# a is fenced: it answers no write itself, a write sent to it lands on the new primary
for _ in $(seq 50); do
  $S --addr "${ADDR[a]}" put t via-a x=7 >/dev/null 2>&1 && break; sleep 0.1
done
[ "$($S --addr "${ADDR[$np]}" get t via-a x | cut -f2)" = 7 ] || fail "a write via the fenced node"
sleep 1
touch "$T/stop"
for w in "${WP[@]}"; do wait "$w"; done
[ "$(epoch 0)" -gt "$e0" ] || fail "no new epoch"
check_acked "$np" "$T"/acked.w*
refused=$(metric a strata_repl_fenced_writes_refused_total)
[ "${refused:-0}" -gt 0 ] || fail "a refused no write after its lease ran out"
grep -q "lease expired\|leader key is gone" "$T/a.log" || fail "a did not notice its lease expired"
wait_caught_up a 600
discarded=$(metric a strata_repl_divergent_discarded_total)
grep -q "discarding [0-9]* divergent sequences" "$T/a.log" || fail "no divergent tail reported"
[ "${discarded:-0}" -gt 0 ] || fail "divergent writes not counted"
echo "$(grep -o 'discarding [0-9]* divergent sequences [0-9.]*' "$T/a.log")"
echo "ok: a stopped past its lease refused $refused writes, was fenced, rejoined under $np" \
     "discarding $discarded unacknowledged sequences; every acknowledged write kept"
