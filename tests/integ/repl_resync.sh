#!/usr/bin/env bash
# Full resync with real processes: when the primary's WAL no longer reaches back to a
# replica's position (purged with a short --wal-ttl across restarts), the replica gets a
# checkpoint and then streams; a kill in the middle of that resync (fault repl.resync.crash,
# the process exits at once) leaves the old copy usable, and the restarted replica finishes;
# a preload (SST ingestion, not in the WAL) reaches the replica with identical known-at
# answers; an operator-requested resync works, its files (sent by sendfile, some sendfiles
# cut short by fault repl.sendfile.short) byte-identical to the primary's; a crash between
# the swap and writing the copy's position (fault resync.install.crash) is finished at open.
# Rerun by hand: BIN=bin bash tests/integ/repl_resync.sh
set -uo pipefail
source tests/integ/repl_common.bash

make_cluster 2 a b
start a
start b
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
$S --addr "${ADDR[a]}" put t e1 x=1 --ts 2026-01-01T00:00:01Z >/dev/null || fail "put"
sb --addr "${ADDR[a]}" --load --entities 2000 --features 2 --table bench >/dev/null 2>&1 || fail "load"
wait_caught_up b
stop b

# writes the replica misses, then the WAL that holds them is purged
sb --addr "${ADDR[a]}" --load --entities 20000 --features 2 --table bench2 >/dev/null 2>&1 || fail "load 2"
stop a
start a --wal-ttl 1s
sleep 2.5
$S --addr "${ADDR[a]}" put t e2 x=2 >/dev/null || fail "put 2"
stop a
start a --wal-ttl 1s
sleep 1.5
$S --addr "${ADDR[a]}" put t e3 x=3 >/dev/null || fail "put 3"

# the replica comes back; its resync is cut short by a crash in the middle (started without
# waiting for its ready file: the resync begins at once and may crash it before it is ready)
STRATA_FAULTS=repl.resync.crash@2 "$SD" --data-dir "$T/b" --listen "${ADDR[b]}" --admin off \
  --cluster "$T/cluster.ini" --node b >>"$T/b.log" 2>&1 &
PID[b]=$!
for _ in $(seq 200); do kill -0 "${PID[b]}" 2>/dev/null || break; sleep 0.05; done
wait "${PID[b]}"; rc=$?; unset "PID[b]"
[ $rc -eq 86 ] || fail "replica did not crash in the resync (exit $rc)"
grep -q "WAL does not reach" "$T/a.log" || fail "the primary did not detect the WAL gap"
# the old copy is intact and usable
[ "$($S --data-dir "$T/b" get t e1 x | cut -f2)" = 1 ] || fail "old copy unusable after the crash"
ls -d "$T"/b/shard-*.resync 2>/dev/null && fail "an incomplete staged copy was left after open"

# repl.ingest.slow: the replica pauses 1.5 s after applying the primary's ingest marker and
# before it reconnects for the resync; it must not look caught up in that window
STRATA_FAULTS=repl.ingest.slow start b
wait_caught_up b 1200
verify_all 2
[ "$($S --addr "${ADDR[b]}" get t e3 x --replica-ok | cut -f2)" = 3 ] || fail "e3 missing on the replica"

# preload: the ingested files are not in the WAL; the replica resyncs the shards and answers
# known-at reads exactly like the primary (no status may call it caught up before that)
n0=$(grep -c "resync installed" "$T/b.log")
$S --addr "${ADDR[a]}" table create p --feature v:i64 >/dev/null || fail "create p"
printf 'entity,ts,v\n' > "$T/pre.csv"
for i in $(seq 1 500); do printf 'k%d,%d,%d\n' "$i" $((1767225600000 + i)) "$i"; done >> "$T/pre.csv"
$S --addr "${ADDR[a]}" preload p "$T/pre.csv" --wait >/dev/null || fail "preload"
$S --addr "${ADDR[a]}" put t e4 x=4 >/dev/null || fail "put 4"
wait_caught_up b 1200
[ "$(grep -c "resync installed" "$T/b.log")" -gt "$n0" ] || fail "no resync after the preload"
verify_all 2
for k in k1 k250 k500; do
  A=$($S --addr "${ADDR[a]}" get p $k v --json --with-status)
  B=$($S --addr "${ADDR[b]}" get p $k v --json --with-status --replica-ok)
  [ -n "$A" ] && [ "$A" = "$B" ] || fail "preloaded $k differs: $A vs $B"
done

# an operator-requested resync, its files sent by sendfile with some sendfiles cut short
# (fault repl.sendfile.short: the sender continues where the kernel stopped): the replica's
# SST files are byte-identical to the primary's files of the same name
stop a
STRATA_FAULTS=repl.sendfile.short@1,repl.sendfile.short@2,repl.sendfile.short@5 start a --wal-ttl 1s
wait_caught_up b
n1=$(grep -c "resync installed" "$T/b.log")
# --wait --json: progress lines, then one that says it finished, once the copy is installed
"$ADM" cluster resync --cluster "$T/cluster.ini" --wait --json --timeout 20s b 1 > "$T/resync.json" ||
  fail "cluster resync --wait: $(cat "$T/resync.json")"
tail -1 "$T/resync.json" | grep -q '"finished":true' || fail "no finished line: $(cat "$T/resync.json")"
tail -1 "$T/resync.json" | grep -q '"status":"done"' || fail "resync not done: $(cat "$T/resync.json")"
[ "$(grep -c "resync installed" "$T/b.log")" -gt "$n1" ] || fail "resync --wait returned before the install"
grep "shard 1: resync installed" "$T/b.log" | tail -1 | grep -q "receiving .* installing" ||
  fail "the resync's log line lacks its time breakdown"
same=0
for f in "$T"/b/shard-001/*.sst; do
  [ -e "$T/a/shard-001/${f##*/}" ] || continue
  cmp -s "$f" "$T/a/shard-001/${f##*/}" || fail "resynced ${f##*/} differs from the primary's"
  same=$((same + 1))
done
[ $same -ge 1 ] || fail "no SST file of the resynced shard to compare: $(ls "$T"/a/shard-001 "$T"/b/shard-001)"
wait_caught_up b
verify_all 2

# a crash after the swap, before the copy's position is written into it (fault
# resync.install.crash): the restarted replica finishes the install when it opens the shard
# (the position in the copy's completion marker is applied, then the marker removed) and streams on without a resync
stop b
STRATA_FAULTS=resync.install.crash start b
wait_caught_up b
"$ADM" cluster resync --cluster "$T/cluster.ini" b 0 >/dev/null || fail "cluster resync 0"
for _ in $(seq 200); do kill -0 "${PID[b]}" 2>/dev/null || break; sleep 0.05; done
wait "${PID[b]}"; rc=$?; unset "PID[b]"
[ $rc -eq 86 ] || fail "replica did not crash in the install (exit $rc)"
grep -q . "$T/b/shard-000/STRATA-COMPLETE" || fail "the crash left no marker with the position in the swapped-in copy"
n2=$(grep -c "resync of" "$T/b.log")
start b
wait_caught_up b
[ -e "$T/b/shard-000/STRATA-COMPLETE" ] && fail "the marker was not removed at open"
[ "$(grep -c "resync of" "$T/b.log")" = "$n2" ] || fail "the replica resynced again after the install was finished at open"
$S --addr "${ADDR[a]}" put t e5 x=5 >/dev/null || fail "put 5"
wait_caught_up b
[ "$($S --addr "${ADDR[b]}" get t e5 x --replica-ok | cut -f2)" = 5 ] || fail "e5 missing on the replica"
verify_all 2
echo "ok: WAL gap -> resync, crash mid-resync kept a usable copy and finished, preload and known-at replicated, sendfile copies identical, install crash finished at open"
