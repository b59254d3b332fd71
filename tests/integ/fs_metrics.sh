#!/usr/bin/env bash
# stratafs --metrics and --log-file: the Prometheus endpoint answers, its counters move with
# the work done through the mount (requests and latency per FUSE operation, trash entries
# and bytes, rmr progress, passthrough, journal figures), `promtool check metrics` accepts
# it, the names the alert rules use are exported, and a daemonised mount logs to
# --log-file or, without one, to syslog.
source "$(dirname "$0")/fs_common.bash"
command -v curl >/dev/null || { echo "skip: curl not installed"; exit 77; }

# metric NAME[{labels}]: its value in the last scrape ($T/scrape).
scrape() { curl -sf "http://$ADDR/metrics" >"$T/scrape" || fail "scrape of $ADDR failed"; }
metric() {
	awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "missing" }' "$T/scrape"
}
# expect NAME OP VALUE: compares (awk, so floats work) or fails with the scrape's line.
expect() {
	local v
	v=$(metric "$1")
	awk -v a="$v" -v b="$3" -v op="$2" 'BEGIN {
		if (a == "missing") exit 1
		if (op == ">") exit !(a + 0 > b + 0)
		if (op == ">=") exit !(a + 0 >= b + 0)
		if (op == "==") exit !(a + 0 == b + 0)
		exit 1 }' || fail "$1 = $v, expected $2 $3"
}
metrics_addr() {
	"$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["metrics"])'
}

note "bad --metrics values are refused with the option named"
for bad in 127.0.0.1 127.0.0.1:99999 :80 127.0.0.1:x; do
	out=$("$BIN/stratafs" "$B" "$M" -f --metrics "$bad" 2>&1) && fail "--metrics $bad accepted"
	echo "$out" | grep -q -- "--metrics" || fail "error for --metrics $bad does not name it: $out"
done

note "the endpoint serves the metrics; request counters and histograms move"
fs_mount --metrics 127.0.0.1:0
ADDR=$(metrics_addr)
[[ "$ADDR" == 127.0.0.1:* ]] || fail "fs status does not show the metrics address: $ADDR"
"$ADMIN" fs status --mount "$M" | grep -q "metrics      http://$ADDR" || fail "fs status text lacks the address"
scrape
expect 'stratafs_build_info{version="'"$("$BIN/stratafs" --version | awk '{print $2}')"'",commit="'"$("$BIN/stratafs" --version | sed 's/.*commit \(.*\))/\1/')"'"}' == 1
c0=$(metric 'stratafs_fuse_requests_total{op="create"}')
[ "$c0" != missing ] || fail "no create counter"
mkdir "$M/d"
for i in $(seq 1 50); do echo "file $i" >"$M/d/f$i"; done
scrape
expect 'stratafs_fuse_requests_total{op="create"}' == $((c0 + 50))
expect 'stratafs_fuse_request_duration_seconds_count{op="create"}' '>=' 50
expect 'stratafs_fuse_request_duration_seconds_bucket{op="create",le="+Inf"}' '>=' 50
expect 'stratafs_fuse_request_duration_seconds_sum{op="create"}' '>' 0
expect 'stratafs_fuse_requests_total{op="mkdir"}' '>=' 1
expect stratafs_passthrough == "$("$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["passthrough"]))')"
expect stratafs_journal_enabled == 0
ls "$M/nonexistent" 2>/dev/null
scrape
expect 'stratafs_fuse_request_errors_total{op="lookup"}' '>=' 1
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/scrape" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool check metrics"; }
else
	echo "note: promtool not installed, lint skipped"
fi
curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/nothing" | grep -q 404 || fail "unknown path is not 404"

note "trash entries and bytes follow deletions and purges"
expect stratafs_trash_entries == 0
head -c 100000 /dev/urandom >"$M/big"
rm "$M/big" "$M/d/f1"
scrape
expect stratafs_trash_entries == 2
expect stratafs_trash_bytes '>=' 100000
"$ADMIN" trash purge --mount "$M" >/dev/null || fail "purge"
scrape
expect stratafs_trash_entries == 0
expect stratafs_trash_bytes == 0

note "rmr progress: queued work, then deleted entries counted"
mkdir -p "$M/tree"
for i in $(seq 1 200); do : >"$M/tree/x$i"; done
"$ADMIN" rmr "$M/tree" >/dev/null || fail "rmr"
"$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "rmr status --wait"
scrape
expect stratafs_rmr_jobs == 0
expect stratafs_rmr_deleted_entries_total '>=' 200
expect stratafs_rmr_jobs_done_total '>=' 2 # the purge above and this rmr
fs_umount

note "journal figures: dirty bytes, then written back"
J="$T/journal"
mkdir -p "$J"
fs_mount --metrics 127.0.0.1:0 --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
ADDR=$(metrics_addr)
head -c 200000 /dev/urandom >"$M/j"
sync "$M/j"
scrape
expect stratafs_journal_enabled == 1
expect stratafs_journal_capacity_bytes == $((16 << 20))
expect stratafs_journal_dirty_bytes '>=' 200000
expect stratafs_journal_bytes '>=' 200000
expect stratafs_journal_segments_used '>=' 1
expect stratafs_journal_writeback_lag_seconds '>' 0
expect stratafs_journal_writeback_bytes_total == 0
"$ADMIN" fs status --mount "$M" | grep -q "dirty      19[0-9].* KiB" || { "$ADMIN" fs status --mount "$M"; fail "fs status dirty bytes"; }
jjson() { "$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys
j=json.load(sys.stdin)["journal"]; print(eval(sys.argv[1], {}, j))' "$1"; }
[ "$(jjson 'capacity_bytes == 16 << 20 and used_bytes >= 200000 and dirty_bytes >= 200000 and oldest_dirty_age_s > 0 and writeback_bytes_per_s == 0')" = True ] ||
	{ "$ADMIN" fs status --mount "$M" --json; fail "fs status --json journal figures before writeback"; }
# lseek(SEEK_DATA) writes the file back first
/usr/bin/python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.lseek(fd, 0, os.SEEK_DATA)' "$M/j"
scrape
expect stratafs_journal_dirty_bytes == 0
expect stratafs_journal_writeback_bytes_total '>=' 200000
expect stratafs_journal_writeback_bytes_per_second '>' 0
expect stratafs_journal_writeback_lag_seconds == 0
[ "$(jjson 'dirty_bytes == 0 and oldest_dirty_age_s == 0 and writeback_bytes_per_s > 0 and writeback_bytes >= 200000')" = True ] ||
	{ "$ADMIN" fs status --mount "$M" --json; fail "fs status --json journal figures after writeback"; }
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/scrape" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool check metrics (journal)"; }
fi
fs_umount

note "the metric names of the alert rules and the dashboard are exported"
for f in "$ROOT"/ops/prometheus/*.yml "$ROOT"/ops/grafana/*.json; do
	for name in $(grep -o 'stratafs_[a-z_]*' "$f" | sort -u); do
		grep -q "^# TYPE $name " "$T/scrape" || fail "$name (used in $(basename "$f")) is not exported"
	done
done

note "daemonised: the log goes to --log-file"
"$BIN/stratafs" "$B" "$M" --log-file "$T/daemon.log" || fail "daemonised mount"
mountpoint -q "$M" || fail "not mounted"
rmdir "$M/d" 2>/dev/null # not empty: nothing logged, just a request
fusermount3 -u "$M"
for _ in $(seq 1 50); do grep -q "unmounted" "$T/daemon.log" && break; sleep 0.1; done
grep -q "INFO stratafs: $B mounted on $M" "$T/daemon.log" || { cat "$T/daemon.log"; fail "mount line missing from --log-file"; }
grep -q "INFO stratafs: $M unmounted" "$T/daemon.log" || { cat "$T/daemon.log"; fail "unmount line missing from --log-file"; }

note "daemonised without --log-file: syslog"
if [ -e /dev/log ]; then
	echo "note: /dev/log belongs to a running syslog; not checked here"
else
	/usr/bin/python3 - "$T/syslog.out" <<'EOF' &
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(20)
with open(sys.argv[1], "w") as out:
    try:
        while True:
            msg = s.recv(65536).decode(errors="replace")
            out.write(msg + "\n"); out.flush()
            if "unmounted" in msg:
                break
    except socket.timeout:
        pass
os.unlink("/dev/log")
EOF
	SYSLOG_PID=$!
	for _ in $(seq 1 50); do [ -S /dev/log ] && break; sleep 0.1; done
	"$BIN/stratafs" "$B" "$M" || fail "daemonised mount"
	fusermount3 -u "$M"
	wait "$SYSLOG_PID"
	# <30> = daemon.info; the timestamp and level of the st_log line are not repeated
	grep -q "<30>.*stratafs\[[0-9]*\]: stratafs: $B mounted on $M" "$T/syslog.out" || { cat "$T/syslog.out"; fail "mount line not in syslog"; }
	grep -q "unmounted" "$T/syslog.out" || fail "unmount line not in syslog"
fi
echo "PASS"
