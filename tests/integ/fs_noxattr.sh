#!/usr/bin/env bash
# A backing filesystem without extended attributes (ramfs here; NFSv3 in practice): the
# daemon answers xattr requests ENOSYS, the kernel then stops sending them (writes and
# chown no longer ask for security.capability) and callers get EOPNOTSUPP, the same
# errors and the same empty lists as on the backing filesystem itself.
. "$(dirname "$0")/fs_common.bash"
mount -t ramfs ramfs "$B" 2>/dev/null || { echo "skip: cannot mount ramfs"; exit 77; }
trap 'fs_cleanup_ramfs' EXIT
fs_cleanup_ramfs() {
	local rc=$?
	[ -n "$FS_PID" ] && { fusermount3 -u "$M" 2>/dev/null || umount -l "$M"; wait "$FS_PID"; }
	FS_PID=
	umount -l "$B" 2>/dev/null
	(exit $rc)
	fs_cleanup
}
mkdir "$B/native"
fs_mount
json() { "$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin); k=sys.argv[1]; print(json.dumps(d.get(k, d["requests"].get(k))))' "$1"; }
[ "$(json xattrs)" = false ] || fail "the mount did not notice the backing has no xattrs"

note "the same answers as the backing filesystem"
mkdir "$M/d"
for d in "$B/native" "$M/d"; do
	echo x >"$d/f"
	getfattr -n user.a "$d/f" 2>&1 | sed "s#$d/##" >"$T/get.$(basename "$d")"
	setfattr -n user.a -v 1 "$d/f" 2>&1 | sed "s#$d/##" >"$T/set.$(basename "$d")"
	setfattr -x user.a "$d/f" 2>&1 | sed "s#$d/##" >"$T/rm.$(basename "$d")"
	/usr/bin/python3 -c 'import os,sys; print(os.listxattr(sys.argv[1]))' "$d/f" >"$T/ls.$(basename "$d")"
done
for k in get set rm ls; do
	cmp "$T/$k.native" "$T/$k.d" || fail "$k: native '$(cat "$T/$k.native")', mount '$(cat "$T/$k.d")'"
done
grep -q "Operation not supported" "$T/get.d" || fail "getfattr: $(cat "$T/get.d")"

note "writes and chown cost no security.capability round trip"
g0=$(json getxattr)
for i in $(seq 1 50); do
	f="$M/d/w$i"
	{ echo a; echo b; echo c; } >"$f" # several write(2)s
	chown 1:1 "$f"
done
g1=$(json getxattr)
[ $((g1 - g0)) -le 1 ] || fail "$((g1 - g0)) GETXATTR requests for 50 files (want at most 1)"
fs_umount
echo PASS
