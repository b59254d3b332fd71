#!/usr/bin/env bash
# Several writers and readers at once on one mount: no deadlock (the script has a timeout),
# no lost or torn writes, flock serialises across processes, deletes racing with readdir.
. "$(dirname "$0")/fs_common.bash"

fs_mount --threads 8
D="$M/work"
mkdir -p "$D/churn"

writer() { # N: appends 3000 numbered lines to its own file and to a shared O_APPEND file
	local n=$1
	for i in $(seq 1 3000); do
		echo "w$n-$i" >>"$D/own$n"
		echo "w$n-$i" >>"$D/shared"
	done
}
reader() { # keeps reading and listing while the writers run
	while [ ! -e "$D/stop" ]; do
		cat "$D"/own* >/dev/null 2>&1
		ls -l "$D" >/dev/null
		stat "$D/shared" >/dev/null 2>&1
	done
}
churner() { # create, rename over and delete files (through the trash) while others list
	local n=$1
	for i in $(seq 1 300); do
		echo "$i" >"$D/churn/c$n-$i"
		mv "$D/churn/c$n-$i" "$D/churn/k$n" 
		[ $((i % 3)) = 0 ] && rm -f "$D/churn/k$n"
	done
}
counter() { # flock-protected read-modify-write of one counter
	for _ in $(seq 1 200); do
		flock "$D/lock" sh -c "n=\$(cat '$D/count'); echo \$((n + 1)) >'$D/count'"
	done
}
echo 0 >"$D/count"
touch "$D/lock"

pids=()
for n in 1 2 3 4; do writer $n & pids+=($!); done
for n in 1 2; do churner $n & pids+=($!); done
for _ in 1 2; do counter & pids+=($!); done
reader & rpid=$!
reader & rpid2=$!
# a parallel dd into disjoint regions of one file
for k in 0 1 2 3; do
	dd if=/dev/urandom of="$T/part$k" bs=1M count=4 status=none
	dd if="$T/part$k" of="$D/big" bs=1M seek=$((k * 4)) conv=notrunc status=none & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a worker failed"; done
touch "$D/stop"
wait $rpid $rpid2

note "no lost or torn writes"
for n in 1 2 3 4; do
	[ "$(wc -l <"$D/own$n")" = 3000 ] || fail "own$n has $(wc -l <"$D/own$n") lines"
	seq 1 3000 | sed "s/^/w$n-/" | cmp -s - "$D/own$n" || fail "own$n content/order wrong"
done
[ "$(wc -l <"$D/shared")" = 12000 ] || fail "shared has $(wc -l <"$D/shared") lines"
[ "$(sort -u "$D/shared" | wc -l)" = 12000 ] || fail "shared has torn or duplicate lines"
grep -qv '^w[1-4]-[0-9]*$' "$D/shared" && fail "shared has garbage lines"
[ "$(cat "$D/count")" = 400 ] || fail "flock counter is $(cat "$D/count"), not 400"
cat "$T"/part0 "$T"/part1 "$T"/part2 "$T"/part3 | cmp - "$D/big" || fail "parallel dd regions differ"
for n in 1 2; do [ -e "$D/churn/k$n" ] && fail "k$n survived its final rm"; done
[ "$(ls "$D/churn" | grep -c '^c')" = 0 ] || fail "renamed files left behind"
n_trash=$("$ADMIN" trash list --mount "$M" --json | /usr/bin/python3 -c '
import json,sys; print(sum(1 for e in json.load(sys.stdin)["entries"] if e["path"].startswith("/work/churn/")))')
# each churner, per 3 rounds: 2 renames over an existing k + 1 rm = 3 trash entries
[ "$n_trash" = 600 ] || fail "expected 600 churn entries in the trash, found $n_trash"

note "one reader thread: blocking requests and parallel callers hand the reader role on"
read -r kind hb hq < <("$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c '
import json,sys; l=json.load(sys.stdin)["loop"]; print(l["kind"], l["handoffs_blocking"], l["handoffs_queued"])')
[ "$kind" = lifo ] || fail "loop is $kind, not lifo, on a local backing"
# flock(1) waits (SETLKW) and 10 processes ran at once: both kinds of handoff happened
[ "$hb" -gt 0 ] && [ "$hq" -gt 0 ] || fail "handoffs: blocking $hb, queued $hq"

note "readdir streams a big directory while it is being emptied"
mkdir "$B/flat"
(cd "$B/flat" && eval "touch f{1..20000}")
ls -f "$M/flat" | wc -l >/dev/null
( for i in $(seq 1 20000 | shuf -n 5000 --random-source=<(yes)); do rm -f "$M/flat/f$i"; done ) &
rmpid=$!
seen=$(ls -f "$M/flat" | grep -c '^f')
wait $rmpid
[ "$seen" -ge 15000 ] && [ "$seen" -le 20000 ] || fail "listing during deletes saw $seen entries"
[ "$(ls -f "$M/flat" | grep -c '^f')" = 15000 ] || fail "after deletes: $(ls -f "$M/flat" | grep -c '^f') entries"
[ "$(ls -f "$M/flat" | grep '^f' | sort | uniq -d | wc -l)" = 0 ] || fail "duplicate names in a listing"
fs_umount

note "--libfuse-loop: libfuse's multithreaded loop, flock still serialises"
fs_mount --libfuse-loop
kind=$("$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["loop"]["kind"])')
[ "$kind" = libfuse ] || fail "loop is $kind with --libfuse-loop"
echo 0 >"$D/count"
pids=()
for _ in 1 2; do counter & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a counter failed"; done
[ "$(cat "$D/count")" = 400 ] || fail "flock counter is $(cat "$D/count"), not 400"
fs_umount

note "SIGTERM taken by a thread other than the main one still unmounts (fs_loop)"
fs_mount
# thread-directed SIGTERM to every thread but the main one: workers block it, the first
# other thread runs the handler; the main thread must notice the session's exit
/usr/bin/python3 - "$FS_PID" <<'PY'
import ctypes, os, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
for tid in sorted(int(t) for t in os.listdir("/proc/%d/task" % pid)):
    if tid != pid:
        libc.syscall(234, pid, tid, 15)  # tgkill
PY
for _ in $(seq 1 50); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$FS_PID" 2>/dev/null && fail "stratafs still running 5 s after SIGTERM to its threads"
wait "$FS_PID"; rc=$?
FS_PID=
[ "$rc" = 0 ] || fail "stratafs exited with $rc after SIGTERM"
mountpoint -q "$M" && fail "still mounted after SIGTERM"
echo PASS
