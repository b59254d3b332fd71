#!/usr/bin/env bash
# Passthrough (fuse/fs_chan.c): on a local backing the kernel does reads and writes of open
# files on the backing file itself, so no READ or WRITE request reaches the daemon; data,
# sizes, mmap, hard links, open-but-deleted files and suid clearing behave as on the native
# filesystem (random operations compared with a plain directory); --no-passthrough and
# --writeback-cache go back to requests.
. "$(dirname "$0")/fs_common.bash"
command -v /usr/bin/python3 >/dev/null || { echo "skip: /usr/bin/python3 not installed"; exit 77; }
MODEL="$ROOT/tests/integ/fs_fileops_model.py"
NAT="$T/native"
mkdir -p "$NAT"

status() { "$ADMIN" fs status --mount "$M" --json; }
field() { # field JSON KEY: a top-level value or a request count
	/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); k=sys.argv[2]
print(json.dumps(d.get(k, d["requests"].get(k))))' "$1" "$2"
}

note "passthrough on by default: data moves without READ/WRITE requests"
fs_mount -o allow_other
s=$(status)
if [ "$(field "$s" kernel_passthrough)" != true ]; then
	echo "skip: this kernel does not offer FUSE passthrough (Linux >= 6.9): $s"
	exit 77
fi
[ "$(field "$s" passthrough)" = true ] || fail "passthrough is off: $s"
head -c 8M /dev/urandom >"$T/src"
dd if="$T/src" of="$M/big" bs=1M conv=fsync status=none || fail "write through the mount"
cmp "$T/src" "$M/big" || fail "read back differs"
cmp "$T/src" "$B/big" || fail "backing file differs"
s=$(status)
[ "$(field "$s" read)" = 0 ] && [ "$(field "$s" write)" = 0 ] ||
	fail "READ/WRITE requests reached the daemon with passthrough: $s"
"$ADMIN" fs status --mount "$M" | grep -q "passthrough  on" || fail "fs status text"

note "same file through several descriptors, the trash view and after deletion"
exec 5<"$M/big" 6>>"$M/big"
echo tail >&6
rm "$M/big" # to the trash, still open
head -c 4 <&5 >"$T/got"
cmp <(head -c 4 "$T/src") "$T/got" || fail "read from an open, deleted file"
exec 5<&- 6>&-
t=$(find "$M/.trash" -name big -type f | head -1)
[ -n "$t" ] || fail "deleted file not in the trash view"
cmp <(cat "$T/src"; echo tail) "$t" || fail "trash copy differs"

note "random operations: mount and a plain directory agree"
/usr/bin/python3 "$MODEL" "$M/model" "$NAT/model" --ops "${FS_MODEL_OPS:-4000}" || fail "model mismatch"
/usr/bin/python3 "$MODEL" "$M/model2" "$NAT/model2" --ops 1500 --seed 7 || fail "model mismatch (seed 7)"

note "a write by another user clears setuid, as natively"
for d in "$M" "$NAT"; do
	printf '#!/bin/sh\n' >"$d/suid"
	chmod 4777 "$d/suid"
	as_nobody sh -c "echo x >>'$d/suid'" || fail "write as nobody in $d"
done
[ "$(stat -c %a "$M/suid")" = "$(stat -c %a "$NAT/suid")" ] ||
	fail "mode after write: mount $(stat -c %a "$M/suid"), native $(stat -c %a "$NAT/suid")"
s=$(status)
[ "$(field "$s" write)" = 0 ] || fail "WRITE requests with passthrough: $s"
fs_umount

note "--no-passthrough: reads and writes are requests again, same results"
fs_mount --no-passthrough
s=$(status)
[ "$(field "$s" passthrough)" = false ] || fail "passthrough should be off: $s"
cat "$M/model/a" "$M/model/b" >/dev/null 2>&1
dd if="$T/src" of="$M/big2" bs=1M status=none
cmp "$T/src" "$M/big2" || fail "read back differs without passthrough"
s=$(status)
[ "$(field "$s" write)" -gt 0 ] || fail "no WRITE requests without passthrough: $s"
/usr/bin/python3 "$MODEL" "$M/model3" "$NAT/model3" --ops 1500 || fail "model mismatch without passthrough"
fs_umount

note "--writeback-cache turns passthrough off"
fs_mount --writeback-cache
[ "$(field "$(status)" passthrough)" = false ] || fail "passthrough with the writeback cache"
cmp "$T/src" "$M/big2" || fail "read with the writeback cache"
/usr/bin/python3 "$MODEL" "$M/model4" "$NAT/model4" --ops 1500 || fail "model mismatch with the writeback cache"
fs_umount
echo "PASS"
