#!/usr/bin/env bash
# SSD journal (--journal-dir): the random file-operation model in a journaled mount against
# a plain directory (with a small bypass size so sequential runs skip the journal), reads
# and stat seeing journaled data before writeback, writeback reaching the backing dir,
# torn and corrupt tails reported and survived, a full journal slowing writers without
# losing data, --close-to-open, and a journal refused for another backing dir.
source "$(dirname "$0")/fs_common.bash"
MODEL="$ROOT/tests/integ/fs_fileops_model.py"
J="$T/journal"
N="$T/native"
mkdir -p "$J" "$N"

note "random file operations, journaled mount vs plain dir"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 300ms --journal-bypass 64K
for seed in 1 2 3; do
	rm -rf "${M:?}"/* "${N:?}"/*
	/usr/bin/python3 "$MODEL" "$M" "$N" --ops 5000 --seed "$seed" || fail "model seed $seed"
done
fs_umount
note "after unmount the backing dir holds everything"
diff -r --exclude=.strata "$B" "$N" >/dev/null || fail "backing dir differs from the model after unmount"

note "reads and stat see journaled data before writeback"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
head -c 300000 /dev/urandom >"$T/ref"
cp "$T/ref" "$M/late"
[ "$(stat -c %s "$M/late")" = 300000 ] || fail "stat size of journaled file"
[ "$(stat -c %s "$B/late")" = 0 ] || fail "data reached the backing dir although dirty age is 1h"
cmp "$T/ref" "$M/late" || fail "read of journaled data"
echo 3 >/proc/sys/vm/drop_caches
cmp "$T/ref" "$M/late" || fail "read of journaled data after dropping caches"
sync "$M/late"
"$ADMIN" journal inspect "$J" | grep -q "dirty: 29[0-9].* in 1 file" || {
	"$ADMIN" journal inspect "$J"; fail "inspect does not show the dirty file"; }
jstat() { "$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys
j=json.load(sys.stdin)["journal"]; print(" ".join(str(j[k]) for k in sys.argv[1:]))' "$@"; }
writeback() { # FILE: lseek(SEEK_DATA) writes the file's journaled data back
	/usr/bin/python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.lseek(fd, 0, os.SEEK_DATA)' "$1"; }
note "truncate drops the journaled data it cuts off (never written back), a replay too"
truncate -s 1000 "$M/late"
head -c 1000 "$T/ref" | cmp - "$M/late" || fail "truncate of journaled file"
read -r wb dirty <<<"$(jstat writeback_bytes dirty_bytes)"
[ "$wb" = 0 ] || fail "truncate wrote the file back ($wb bytes)"
[ "$dirty" -le 1000 ] || fail "journaled data past the cut still dirty ($dirty bytes)"
truncate -s 5000 "$M/late" # extended again: zeros past 1000, never the old data
{ head -c 1000 "$T/ref"; head -c 4000 /dev/zero; } >"$T/ref5000"
cmp "$T/ref5000" "$M/late" || fail "truncate up after truncate down"
printf 'tail' >>"$M/late"
printf 'tail' >>"$T/ref5000"
cp "$T/ref" "$M/otrunc" # O_TRUNC of a file with journaled data
printf 'short' >"$M/otrunc"
[ "$(cat "$M/otrunc")" = short ] || fail "O_TRUNC of a journaled file"
sync "$M/late" "$M/otrunc"
fs_kill9 # the replay puts the data back, then cuts it again
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
cmp "$T/ref5000" "$M/late" || fail "replay after truncate"
# the mount-time report counts the replayed truncates (two: truncate -s 1000, O_TRUNC)
tail -n 20 "$LOG" | grep -qE "journal replay: .* [1-9][0-9]* truncate\(s\)" ||
	fail "the replay report does not count truncates: $(grep 'journal replay:' "$LOG" | tail -1)"
[ "$(cat "$M/otrunc")" = short ] || fail "replay after O_TRUNC"
cmp "$T/ref5000" "$B/late" || fail "backing after the replay of a truncate"
# writeback of a truncated file: only what survived the cut is written
head -c 300000 /dev/urandom >"$T/ref"
cp "$T/ref" "$M/late2"
truncate -s 2000 "$M/late2"
writeback "$M/late2"
[ "$(jstat writeback_bytes)" -le 2000 ] || fail "data cut off by a truncate was written back"
head -c 2000 "$T/ref" | cmp - "$B/late2" || fail "backing after writeback of a truncated file"
touch -d 2020-01-01 "$M/mt"
printf x >>"$M/mt" # a journaled write: stat shows its mtime, the backing file not yet
[ "$(stat -c %Y "$M/mt")" -ge $(( $(date +%s) - 60 )) ] || fail "stat mtime of a journaled write: $(stat -c %y "$M/mt")"
[ "$(stat -c %y "$B/mt" | cut -c1-4)" = 2020 ] || fail "backing mtime changed before writeback"
[ "$(stat -c %s "$M/mt")" = 1 ] || fail "stat size of a journaled append"
m1=$(stat -c %y "$M/mt")
sleep 1.1
writeback "$M/mt" # the capacity file keeps the mtime of the write, not the writeback's
[ "$(stat -c %y "$B/mt")" = "$m1" ] || fail "writeback moved the mtime: $m1 -> $(stat -c %y "$B/mt")"
fs_umount

note "torn tail: the last record cut short, then a corrupt one"
for how in cut flip; do
	fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
	printf 'first-%s' "$how" >"$M/t1-$how"
	sync "$M/t1-$how"
	printf 'second-%s' "$how" >"$M/t2-$how"
	sync "$M/t2-$how"
	fs_kill9
	seg=$(ls "$J"/seg-*.jnl | tail -1)
	# segments are preallocated: the records end at "end", not at the file's size
	end=$("$ADMIN" journal inspect "$J" --json |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["segments"][-1]["end"])')
	if [ "$how" = cut ]; then
		truncate -s $((end - 20)) "$seg" # inside the last commit record
	else
		# a byte inside the data of the second file's record
		off=$(grep -abo "second-$how" "$seg" | tail -1 | cut -d: -f1)
		printf 'X' | dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
	fi
	: >"$LOG"
	fs_mount --journal-dir "$J" --journal-size 16M
	grep -q "damaged" "$LOG" || { cat "$LOG"; fail "$how: damage not reported"; }
	[ "$(cat "$M/t1-$how")" = "first-$how" ] || fail "$how: data before the damage lost"
	[ "$(cat "$M/t2-$how")" != "second-$how" ] || fail "$how: damaged record applied"
	fs_umount
done

note "full journal: a writer faster than writeback is slowed, nothing lost"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
/usr/bin/python3 - "$M/big" "$T/bigref" "$J" <<'PY' || fail "writes into a full journal"
import os, random, sys
rnd = random.Random(5)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
ref = bytearray(64 << 20)
peak = 0
for i in range(1600):
    n = rnd.choice([4096, 65536, 131072])
    off = rnd.randrange(len(ref) - n)
    d = rnd.randbytes(n)
    assert os.pwrite(fd, d, off) == n
    ref[off:off + n] = d
    if i % 50 == 0:
        peak = max(peak, sum(os.path.getsize(os.path.join(sys.argv[3], f))
                             for f in os.listdir(sys.argv[3])))
os.fsync(fd)
os.close(fd)
size = max(os.path.getsize(sys.argv[1]), 0)
open(sys.argv[2], "wb").write(ref[:size])
assert peak <= (16 << 20) + (1 << 20), "journal grew past its size: %d" % peak
print("journal peak %d bytes for %d MiB written" % (peak, 1600 * 65536 // (1 << 20)))
PY
cmp "$T/bigref" "$M/big" || fail "full journal: data differs"
[ "$(jstat full_waits)" -gt 0 ] || fail "full journal: no append waited for space"
fs_umount
cmp "$T/bigref" "$B/big" || fail "full journal: backing differs"

note "reused segment files: old records in them are never replayed"
# 16 MiB journal = 8 segments of 2 MiB: fsync'ed writes cycle through them until the
# segment being written is a reclaimed file reused (its old records, with older data for
# the same offsets, lie after the new ones); a kill -9 right after the last fsync must
# replay the newest data and report no damage
: >"$LOG"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
/usr/bin/python3 - "$M/reuse" "$T/reuseref" "$J" <<'PY' || fail "writes over reused segments"
import os, random, sys
rnd = random.Random(7)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
ref = bytearray(4 << 20)
spare_inodes, reused = set(), 0
def w(n):
    off = rnd.randrange(0, len(ref) - n, 4096)
    d = rnd.randbytes(n)
    assert os.pwrite(fd, d, off) == n
    ref[off:off + n] = d
for i in range(2000):
    w(65536)
    if i % 8 != 7:
        continue
    os.fsync(fd)
    names = os.listdir(sys.argv[3])
    spare_inodes |= {os.stat(os.path.join(sys.argv[3], f)).st_ino for f in names
                     if f.startswith("spare-")}
    newest = max(f for f in names if f.startswith("seg-"))
    if os.stat(os.path.join(sys.argv[3], newest)).st_ino in spare_inodes:
        reused = 1 # the segment being written is a reused file: end inside it
        for _ in range(3):
            w(4096)
            os.fsync(fd)
        break
os.fsync(fd)
open(sys.argv[2], "wb").write(ref[:os.path.getsize(sys.argv[1])])
assert reused, "no segment file was reused"
PY
fs_kill9
fs_mount --journal-dir "$J" --journal-size 16M
grep -q "damaged" "$LOG" && { cat "$LOG"; fail "reused segments: damage reported after a clean kill"; }
cmp "$T/reuseref" "$M/reuse" || fail "reused segments: data differs after replay"
fs_umount
cmp "$T/reuseref" "$B/reuse" || fail "reused segments: backing differs"

note "passthrough with a journal: files without journaled data are read by the kernel"
reqs() { "$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin); print(d["requests"]["'"$1"'"] if "'"$1"'" in d["requests"] else json.dumps(d["'"$1"'"]))'; }
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
if [ "$(reqs kernel_passthrough)" = true ]; then
	[ "$(reqs passthrough)" = true ] || fail "passthrough off with a journal"
	head -c 1000000 /dev/urandom >"$T/pt"
	cp "$T/pt" "$M/pt"
	echo 3 >/proc/sys/vm/drop_caches
	r0=$(reqs read)
	cmp "$T/pt" "$M/pt" || fail "read of a dirty file"
	[ "$(reqs read)" -gt "$r0" ] || fail "a file with journaled data was read without the daemon"
	writeback "$M/pt"
	cmp "$T/pt" "$B/pt" || fail "not written back"
	echo 3 >/proc/sys/vm/drop_caches
	r0=$(reqs read)
	cmp "$T/pt" "$M/pt" || fail "passthrough read of a clean file"
	[ "$(reqs read)" = "$r0" ] || fail "a clean file was read through the daemon"
	# a writer while a passthrough reader is open gets passthrough too (the kernel cannot
	# mix the modes): its data is on the backing file at once, and seen through the reader
	exec 5<"$M/pt"
	w0=$(reqs write)
	printf 'XYZ' | dd of="$M/pt" bs=1 seek=10 conv=notrunc,fsync status=none ||
		fail "write while a passthrough reader is open"
	[ "$(reqs write)" = "$w0" ] || fail "that write went through the daemon"
	[ "$(dd if="$B/pt" bs=1 skip=10 count=3 status=none)" = XYZ ] || fail "not on the backing file"
	[ "$(dd bs=1 skip=10 count=3 status=none <&5)" = XYZ ] || fail "not seen by the reader"
	exec 5<&-
	printf 'XYZ' | dd of="$T/pt" bs=1 seek=10 conv=notrunc status=none
	# the next writer goes through the journal again, and sees the passthrough write
	printf 'Q' | dd of="$M/pt" bs=1 seek=0 conv=notrunc status=none
	printf 'Q' | dd of="$T/pt" bs=1 seek=0 conv=notrunc status=none
	[ "$(reqs write)" -gt "$w0" ] || fail "a write after the passthrough period skipped the journal"
	cmp "$T/pt" "$M/pt" || fail "content after mixing passthrough and journal"
	fs_umount
	cmp "$T/pt" "$B/pt" || fail "backing after mixing passthrough and journal"
else
	note "(kernel without FUSE passthrough: skipped)"
	fs_umount
fi

note "unlink into the trash keeps the journaled data; a purged file's data is not written back"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
head -c 300000 /dev/urandom >"$T/tr"
cp "$T/tr" "$M/tr"
rm "$M/tr"
"$ADMIN" trash restore --mount "$M" /tr >/dev/null || fail "restore of a journaled file"
cmp "$T/tr" "$M/tr" || fail "the trash lost journaled data"
writeback "$M/tr"
wb0=$(jstat writeback_bytes)
head -c 200000 /dev/urandom >"$M/gone"
head -c 1000 /dev/urandom >"$M/kept"
rm "$M/gone"
"$ADMIN" trash purge --mount "$M" --all >/dev/null || fail "trash purge"
"$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "rmr status --wait"
writeback "$M/kept" || fail "writeback of a file beside a purged one" # the round takes both
wb1=$(jstat writeback_bytes)
[ $((wb1 - wb0)) -lt 200000 ] || fail "a purged file's journaled data was written back ($((wb1 - wb0)) bytes)"
[ "$(jstat dirty_bytes)" = 0 ] || fail "purged data still dirty after a round"
fs_umount
cmp "$T/tr" "$B/tr" || fail "restored file on the backing dir"

note "--max-dirty-age: written back by age alone"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1s --journal-bypass 0
head -c 100000 /dev/urandom >"$T/age"
cp "$T/age" "$M/age"
for _ in $(seq 1 100); do cmp -s "$T/age" "$B/age" && break; sleep 0.1; done
cmp "$T/age" "$B/age" || fail "not written back 10 s after a 1 s --max-dirty-age"
[ "$(jstat dirty_bytes)" = 0 ] || fail "dirty data left after the age passed"
fs_umount

note "no stale page cache after writeback"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 300ms --journal-bypass 0
head -c 200000 /dev/urandom >"$T/pc"
cp "$T/pc" "$M/pc"
exec 6<"$M/pc"
cat <&6 >/dev/null # the kernel caches the file through a long-lived descriptor
printf 'NEW' | dd of="$M/pc" bs=1 seek=4096 conv=notrunc status=none
printf 'NEW' | dd of="$T/pc" bs=1 seek=4096 conv=notrunc status=none
for _ in $(seq 1 100); do [ "$(jstat dirty_bytes)" = 0 ] && break; sleep 0.1; done
[ "$(jstat dirty_bytes)" = 0 ] || fail "not written back"
cmp "$T/pc" "$B/pc" || fail "backing after writeback"
cmp "$T/pc" /dev/fd/6 || fail "stale data through the open descriptor after writeback"
exec 6<&-
cmp "$T/pc" "$M/pc" || fail "stale data through a new open after writeback"
fs_umount

note "group commit: concurrent fsyncs share the journal's fdatasyncs"
fs_mount --journal-dir "$J" --journal-size 64M --max-dirty-age 1h --journal-bypass 0
read -r s0 f0 <<<"$(jstat syncs fsyncs)"
/usr/bin/python3 - "$M" <<'PY' || fail "concurrent write+fsync"
import os, sys, threading
def w(i):
    fd = os.open(os.path.join(sys.argv[1], "gc%d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
    for k in range(100):
        os.pwrite(fd, os.urandom(4096), k * 4096)
        os.fsync(fd)
    os.close(fd)
ts = [threading.Thread(target=w, args=(i,)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
PY
read -r s1 f1 <<<"$(jstat syncs fsyncs)"
echo "800 write+fsync by 8 threads: $((s1 - s0)) journal fdatasyncs for $((f1 - f0)) fsyncs"
[ $((f1 - f0)) = 800 ] || fail "fsyncs counted: $((f1 - f0))"
[ $(( (s1 - s0) * 10 )) -lt $(( (f1 - f0) * 9 )) ] || fail "no group commit: $((s1 - s0)) syncs for $((f1 - f0)) fsyncs"
fs_umount

note "bypass: a sequential run longer than --journal-bypass goes straight to the backing file"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 1M
head -c $((8 << 20)) /dev/urandom >"$T/seq"
dd if="$T/seq" of="$M/seq" bs=1M conv=fsync status=none
[ "$(jstat dirty_bytes)" -le $((2 << 20)) ] || fail "a sequential run went through the journal ($(jstat dirty_bytes) bytes dirty)"
cmp -n $((7 << 20)) -i $((1 << 20)) "$T/seq" "$B/seq" || fail "bypassed data not on the backing file"
cmp "$T/seq" "$M/seq" || fail "read of a bypassed file"
fs_umount

note "writeback fsyncs the capacity file before it moves the checkpoint"
if command -v strace >/dev/null; then
	fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --journal-bypass 0
	head -c 100000 /dev/urandom >"$M/ord"
	strace -f -qq -y -e trace=fsync,fdatasync,renameat,renameat2 -o "$T/strace" -p "$FS_PID" &
	spid=$!
	sleep 1 # attached
	writeback "$M/ord"
	kill "$spid"; wait "$spid" 2>/dev/null
	/usr/bin/python3 - "$T/strace" <<'PY' || { cat "$T/strace"; fail "checkpoint moved before the capacity file was fsynced"; }
import sys
lines = open(sys.argv[1]).read().splitlines()
ck = next(i for i, l in enumerate(lines) if "rename" in l and '"checkpoint"' in l)
assert any("fsync(" in l and "/backing/ord>" in l for l in lines[:ck]), "no fsync of ord before"
PY
	fs_umount
else
	fail "strace missing (ops/install-deps.sh installs it)"
fi

note "--close-to-open: on the backing dir when close returns"
fs_mount --journal-dir "$J" --journal-size 16M --max-dirty-age 1h --close-to-open --journal-bypass 0
head -c 100000 /dev/urandom >"$T/cto"
cp "$T/cto" "$M/cto"
cmp "$T/cto" "$B/cto" || fail "close-to-open: backing dir not written back at close"
fs_umount

note "a journal for another backing dir is refused"
mkdir -p "$T/b2" "$T/m2"
if "$BIN/stratafs" "$T/b2" "$T/m2" -f --journal-dir "$J" 2>"$T/err"; then
	fusermount3 -u "$T/m2"
	fail "mounted with a foreign journal"
fi
grep -q "belongs to another backing dir" "$T/err" || { cat "$T/err"; fail "unclear error"; }
echo PASS
