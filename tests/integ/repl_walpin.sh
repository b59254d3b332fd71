#!/usr/bin/env bash
# WAL retention pinned for replicas (--wal-pin-max): a replica that was down for less than
# the pin's time cap resumes by streaming, although --wal-ttl 1s alone purges the WAL that
# holds the writes it missed (flushed by a checkpoint, then older than the ttl); a replica
# down for longer than the cap finds the WAL purged and resyncs; --wal-pin-mb caps the pin
# by size the same way. Rerun by hand: BIN=bin bash tests/integ/repl_walpin.sh
set -uo pipefail
source tests/integ/repl_common.bash

resyncs() { grep -c "resync installed" "$T/b.log"; }
# flush: a checkpoint flushes every memtable, so the WAL files written so far become obsolete
# (archived, then purged once older than --wal-ttl unless pinned).
flush() { "$ADM" backup --addr "${ADDR[a]}" "$T/bk.$RANDOM$RANDOM" >/dev/null || fail "backup"; }
# miss TABLE PAUSE [ROWS]: b is down while a takes ROWS (20000) rows into TABLE (after PAUSE
# seconds), and
# the WAL holding them is flushed twice, each time followed by more than --wal-ttl 1s.
miss() {
  stop b
  sleep "$2"
  sb --addr "${ADDR[a]}" --load --entities "${3:-20000}" --features 2 --table "$1" >/dev/null 2>&1 ||
    fail "load $1"
  for k in 1 2; do
    flush
    sleep 2.5
    $S --addr "${ADDR[a]}" put t "e-$1-$k" x=1 >/dev/null || fail "put after a flush"
  done
  start b
  wait_caught_up b 1200
}

make_cluster 2 a b
# (a small batch ring: a replica returning after the purge must not find its position
# there either)
start a --wal-ttl 1s --wal-pin-max 20s --wal-pin-mb 1 --repl-ring-kb 16
start b
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
sb --addr "${ADDR[a]}" --load --entities 2000 --features 2 --table bench >/dev/null 2>&1 || fail "load"
wait_caught_up b
n0=$(resyncs)

# down for ~8 s, within a 20 s pin (and its WAL under 1 MiB): streaming, no resync
miss within 0 6000
grep -q "WAL pinned for replica b" "$T/a.log" || fail "the primary never pinned its WAL"
[ "$(resyncs)" -eq "$n0" ] || fail "the replica resynced although the pin covered its absence"
grep -q "WAL does not reach" "$T/a.log" && fail "the WAL was purged under the pin"
verify_all 2

# down for ~30 s (the WAL written after 22 s), beyond the 20 s pin: purged, a resync
miss beyond 22 6000
grep -q "WAL pin released" "$T/a.log" || fail "the pin was never released"
grep -q "WAL does not reach" "$T/a.log" || fail "the WAL was not purged beyond the cap"
[ "$(resyncs)" -gt "$n0" ] || fail "no resync beyond the cap"
verify_all 2

# a WAL larger than --wal-pin-mb 1: released at once, the replica resyncs
n1=$(resyncs)
miss sized 0 100000
grep -q "exceeds --wal-pin-mb 1" "$T/a.log" || fail "the size cap did not release the pin"
[ "$(resyncs)" -gt "$n1" ] || fail "no resync beyond the size cap"
verify_all 2
echo "ok: a replica down within the pin streams on, beyond the time or size cap it resyncs"
