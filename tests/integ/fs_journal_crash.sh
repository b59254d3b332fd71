#!/usr/bin/env bash
# SSD journal crash safety: stratafs is killed (-9) at random moments while a writer does
# random writes and fsyncs; after a remount (which replays the journal) every byte an
# fsync acknowledged is there. 20 seeds, then once with each fault point armed
# (journal.append, journal.sync, wb.apply, wb.checkpoint), and an offline replay with
# strata-admin instead of a remount.
export FS_TEST_TIMEOUT=${FS_TEST_TIMEOUT:-500}
source "$(dirname "$0")/fs_common.bash"
CRASH="$ROOT/tests/integ/fs_journal_crash.py"
J="$T/journal"
mkdir -p "$J"

# fired STATE FAULT: the fault point has fired (a write or fsync failed with EIO, or a
# writeback round failed and is retried)
fired() {
	case $2 in
	journal.append*) [ "$(/usr/bin/python3 "$CRASH" eio "$1" write)" -gt 0 ] ;;
	journal.sync*) [ "$(/usr/bin/python3 "$CRASH" eio "$1" fsync)" -gt 0 ] ;;
	wb.*) tail -n +$((LOG0 + 1)) "$LOG" | grep -q "journal writeback: .*(retrying)" ;;
	esac
}

# crash_round SEED [FAULT]: one write/kill/remount/check round; with FAULT
# (STRATA_FAULTS), the kill comes after the fault fired.
crash_round() {
	local seed=$1 fault=${2:-}
	local age
	age=$(( (seed % 3) * 150 + 50 ))ms
	LOG0=$(cat "$LOG" 2>/dev/null | wc -l)
	env ${fault:+STRATA_FAULTS="$fault"} "$BIN/stratafs" "$B" "$M" -f --journal-dir "$J" --journal-size 16M \
		--max-dirty-age "$age" --journal-bypass 256K 2>>"$LOG" &
	FS_PID=$!
	for _ in $(seq 1 100); do
		mountpoint -q "$M" && "$ADMIN" rmr status --mount "$M" >/dev/null 2>&1 && break
		sleep 0.1
	done
	mountpoint -q "$M" || fail "round $seed: stratafs did not come up"
	/usr/bin/python3 "$CRASH" write "$M/r$seed" "$T/state$seed" --seed "$seed" &
	local wpid=$!
	for _ in $(seq 1 200); do
		[ -e "$T/state$seed" ] && break
		sleep 0.05
	done
	[ -e "$T/state$seed" ] || fail "round $seed: the writer did not start"
	sleep "0.$(( RANDOM % 9 + 1 ))"
	if [ -n "$fault" ]; then
		for _ in $(seq 1 100); do fired "$T/state$seed" "$fault" && break; sleep 0.1; done
		fired "$T/state$seed" "$fault" || fail "round $seed: fault $fault never fired"
	fi
	fs_kill9
	wait "$wpid"
	fs_mount --journal-dir "$J" --journal-size 16M
	/usr/bin/python3 "$CRASH" check "$M/r$seed" "$T/state$seed" || fail "round $seed: acknowledged data lost"
	fs_umount
	# after a clean unmount everything is on the capacity tier
	/usr/bin/python3 "$CRASH" check "$B/r$seed" "$T/state$seed" || fail "round $seed: backing incomplete"
}

for seed in $(seq 1 20); do
	mkdir -p "$B/r$seed"
	crash_round "$seed"
done
n=$(grep -c "journal replay:" "$LOG")
[ "$n" -ge 5 ] || fail "only $n of 20 rounds left anything to replay: the test did not test"
note "20 kill -9 rounds: every fsync'ed byte survived ($n replayed journal data)"

seed=100
for f in journal.append@40 journal.sync@3 wb.apply@2 wb.checkpoint@1; do
	seed=$((seed + 1))
	mkdir -p "$B/r$seed"
	crash_round "$seed" "$f"
	note "fault $f: survived"
done

# offline replay: data left in the journal (no writeback: long dirty age) is applied by
# strata-admin journal replay without mounting
mkdir -p "$B/off"
fs_mount --journal-dir "$J" --journal-size 256M --max-dirty-age 1h --journal-bypass 0
/usr/bin/python3 "$CRASH" write "$M/off" "$T/state-off" --seed 7 --ops 100
fs_kill9
"$ADMIN" journal inspect "$J" --json >"$T/inspect.json" || fail "journal inspect failed"
/usr/bin/python3 - "$T/inspect.json" <<'PY' || fail "inspect shows no dirty data"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["dirty_bytes"] > 0 and j["files"] and j["records"] > 0, j
assert j["segments"] and "checkpoint" in j, j
assert sum(f["dirty_bytes"] for f in j["files"]) == j["dirty_bytes"], j  # per file
PY
"$ADMIN" journal inspect "$J" >"$T/inspect.txt"
for w in "checkpoint" "dirty:" "segment" "file "; do
	grep -q "$w" "$T/inspect.txt" || { cat "$T/inspect.txt"; fail "journal inspect text output lacks '$w'"; }
done
# another backing dir: refused
mkdir -p "$T/other/.strata" && echo 0123456789abcdef0123456789abcdef >"$T/other/.strata/journal-id"
"$ADMIN" journal replay "$J" "$T/other" 2>"$T/err" && fail "replay into a foreign backing dir"
grep -q "belongs to another backing dir" "$T/err" || { cat "$T/err"; fail "no clear error"; }
"$ADMIN" journal replay "$J" "$B" || fail "offline replay failed"
/usr/bin/python3 "$CRASH" check "$B/off" "$T/state-off" || fail "offline replay lost acknowledged data"
note "offline replay applied the journal; a foreign backing dir is refused"
echo PASS
