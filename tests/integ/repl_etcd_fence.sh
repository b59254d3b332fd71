#!/usr/bin/env bash
# A primary cut off past its lease (SIGSTOP) must not acknowledge anything afterwards: its
# streams stall first (fault repl.send.stall) so that it holds committed but unacknowledged
# semi-sync writes, then it is stopped until etcd expires its lease and a replica is elected. On SIGCONT its
# waiting writes are refused (the lease deadline passed), it is fenced, and it rejoins as a
# replica of the new primary by truncating its divergent tail in place (no resync), reporting
# what it discarded (count and range, log and metrics); the other replica, which stood at the
# fork point, joins the new history without a resync either; every acknowledged write is on
# the new primary, and the rejoined copy equals it (verify).
# With NOWAL=1 (repl_etcd_fence_nowal.sh) a cannot truncate (fault repl.rewind.nowal: its WAL
# no longer reaches the fork point) and falls back to a full resync, reporting the same range.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_fence.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

SYNC=(--min-sync-replicas 1 --sync-timeout 3s --admin 127.0.0.1:0)
etcd_cluster 1 a b c
# a's streams stall for 3 s at its 150th batch: the writes it commits then wait for acks
NOWAL=${NOWAL:-0}
STRATA_FAULTS=repl.send.stall@150$([ "$NOWAL" = 1 ] && echo ,repl.rewind.nowal) start a "${SYNC[@]}"
for n in b c; do start $n "${SYNC[@]}"; done
[ "$(wait_leader 0)" = a ] || fail "a should lead first"
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
wait_caught_up b; wait_caught_up c
e0=$(epoch 0)
resyncs_before=$(( $(metric b strata_repl_resyncs_done_total) + $(metric c strata_repl_resyncs_done_total) ))

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
how="truncated in place"; [ "$NOWAL" = 1 ] && how="discarding"
line=$(grep -o "$how [0-9]* divergent sequences [0-9]*\.\.[0-9]*" "$T/a.log")
[ -n "$line" ] || fail "no divergent tail reported ($how)"
read -r n first last < <(echo "$line" | sed -E 's/.* ([0-9]+) divergent sequences ([0-9]+)\.\.([0-9]+)/\1 \2 \3/')
[ "$n" -gt 0 ] && [ "$n" -eq $((last - first + 1)) ] || fail "bad range in: $line"
[ "${discarded:-0}" -eq "$n" ] || fail "divergent sequences counted $discarded, logged $n"
if [ "$NOWAL" = 1 ]; then
  grep -q "by a full resync: cannot truncate in place: fault repl.rewind.nowal" "$T/a.log" ||
    fail "the fallback was not reported"
  [ "$(metric a strata_repl_rejoin_resyncs_total)" -ge 1 ] || fail "fallback not counted"
  [ "$(metric a strata_repl_resyncs_done_total)" -ge 1 ] || fail "a did not resync"
  [ "$(metric a strata_repl_rejoin_truncations_total)" -eq 0 ] || fail "a truncated"
else
  [ "$(metric a strata_repl_rejoin_truncations_total)" -ge 1 ] || fail "truncation not counted"
  [ "$(metric a strata_repl_rejoin_resyncs_total)" -eq 0 ] || fail "a fell back to a resync"
  [ "$(metric a strata_repl_resyncs_done_total)" -eq 0 ] || fail "a resynced instead of truncating"
  grep -q "by a full resync" "$T/a.log" && fail "a reported a resync"
fi
# the replica that was not elected joins the new history without a resync if it stood
# exactly at the fork point (the stall may have caught it a batch behind: then it resyncs)
other=b; [ "$np" = b ] && other=c
wait_caught_up "$other" 600
resyncs_after=$(( $(metric b strata_repl_resyncs_done_total) + $(metric c strata_repl_resyncs_done_total) ))
if grep -q "joined $np at its fork point" "$T/$other.log"; then
  [ "$resyncs_after" -eq "$resyncs_before" ] || fail "$other resynced although at the fork point"
  echo "$other stood at the fork point: joined without a resync"
else
  echo "$other was not at the fork point: resynced"
fi
"$ADM" cluster verify --cluster "$CLUSTER" --shard 0 >"$T/verify.out" 2>&1 ||
  { cat "$T/verify.out"; fail "verify after the rejoin"; }
# a, the layout's first primary, now a replica, restarts and resumes from its position
if [ "$NOWAL" != 1 ]; then
  $S --addr "${ADDR[$np]}" put t after-rejoin x=1 >/dev/null || fail "put"
  stop a
  $S --addr "${ADDR[$np]}" put t while-a-down x=2 >/dev/null || fail "put"
  start a "${SYNC[@]}"
  wait_caught_up a 600
  [ "$(metric a strata_repl_resyncs_done_total)" -eq 0 ] || fail "a resynced after a restart"
  [ "$($S --addr "${ADDR[a]}" get t while-a-down x --replica-ok | cut -f2)" = 2 ] ||
    fail "a restarted as a replica lacks a write"
fi
echo "$line"
echo "ok: a stopped past its lease refused $refused writes, was fenced, rejoined under $np" \
     "discarding $discarded unacknowledged sequences ($how); every acknowledged write kept"
