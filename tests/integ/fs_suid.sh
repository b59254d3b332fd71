#!/usr/bin/env bash
# setuid/setgid clearing with FUSE_HANDLE_KILLPRIV_V2 (the default): the kernel stops
# asking for security.capability before every write and leaves the clearing to the daemon.
# Every case runs on a plain directory and through the mount (-o allow_other, passthrough,
# --no-passthrough, the journal) and must give the same modes, on the mount (the kernel's
# cached attributes: an exec right after must not see a stale setuid bit) and on the
# backing file: writes, appends through an fd opened before a chmod u+s, setgid with and
# without group execute by a non-member, security.capability, truncate, truncating opens
# with and without a write, chown, fallocate, a root write (keeps the bits), and a change
# made directly in the backing dir once the kernel's attributes expire. Then the request
# count: a write of many blocks asks security.capability once, not once per write.
source "$(dirname "$0")/fs_common.bash"
[ -n "${FS_SUID_TRACE:-}" ] && set -x
PLAIN="$T/plain"
mkdir -p "$PLAIN"
chmod 777 "$PLAIN" "$B"

nob() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
PY=/usr/bin/python3

# cases DIR BACKING: one line per case, "name mode-seen-in-DIR mode-on-BACKING"
cases() {
	local D=$1 BK=$2
	out() { echo "$1 $(stat -c %a "$D/$2") $(stat -c %a "$BK/$2")"; }
	rm -rf "${D:?}"/k*
	echo x >"$D/k1"; chmod 4777 "$D/k1"; nob sh -c "echo y >>'$D/k1'"; out write-4777 k1
	echo x >"$D/k2"; chmod 2777 "$D/k2"; nob sh -c "echo y >>'$D/k2'"; out write-2777 k2
	echo x >"$D/k3"; chmod 2767 "$D/k3"; nob sh -c "echo y >>'$D/k3'"; out write-2767-nonmember k3
	echo x >"$D/k4"; chmod 777 "$D/k4"; nob sh -c "echo y >>'$D/k4'"; chmod 4777 "$D/k4"
	nob sh -c "echo z >>'$D/k4'"; out chmod-us-after-writes k4
	echo x >"$D/k5"; chmod 777 "$D/k5"
	rm -f /tmp/fs_suid.go
	nob $PY -c "
import os, time
fd = os.open('$D/k5', os.O_WRONLY | os.O_APPEND); os.write(fd, b'a')
open('/tmp/fs_suid.go', 'w').close()
while os.path.exists('/tmp/fs_suid.go'): time.sleep(0.02)
os.write(fd, b'b')" &
	local wpid=$!
	while [ ! -e /tmp/fs_suid.go ]; do sleep 0.02; done
	chmod 4777 "$D/k5"; rm /tmp/fs_suid.go; wait "$wpid"
	out open-fd-then-chmod-us k5
	echo x >"$D/k6"; chmod 777 "$D/k6"; nob sh -c "echo y >>'$D/k6'"
	setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$D/k6"
	nob sh -c "echo z >>'$D/k6'"
	echo "caps-after-write $(getfattr -n security.capability "$BK/k6" 2>/dev/null | grep -c capability=)"
	echo x >"$D/k7"; chmod 4777 "$D/k7"; nob truncate -s 1 "$D/k7"; out truncate-4777 k7
	echo x >"$D/k8"; chmod 4777 "$D/k8"; nob sh -c "echo y >'$D/k8'"; out otrunc-write-4777 k8
	echo x >"$D/k9"; chmod 6777 "$D/k9"; nob sh -c ": >'$D/k9'"; out otrunc-only-6777 k9
	echo x >"$D/ka"; chmod 6755 "$D/ka"; chown nobody "$D/ka"; out chown-6755 ka
	echo x >"$D/kb"; chmod 4777 "$D/kb"; echo y >>"$D/kb"; out root-write-keeps kb
	echo x >"$D/kc"; chmod 4777 "$D/kc"; nob fallocate -l 8192 "$D/kc"; out fallocate-4777 kc
	echo x >"$D/kd"; chmod 2745 "$D/kd"; chgrp nogroup "$D/kd"; chmod 2775 "$D/kd"
	nob sh -c "echo y >>'$D/kd'" 2>/dev/null; out write-2775-member kd
}

note "the cases on a plain directory"
cases "$PLAIN" "$PLAIN" >"$T/native"
grep -q "write-4777 777 777" "$T/native" || fail "the native reference looks wrong: $(cat "$T/native")"

for opts in "" "--no-passthrough" "--journal-dir $T/journal --journal-size 16M"; do
	note "the cases through the mount ${opts:-(passthrough)}"
	mkdir -p "$T/journal"
	# shellcheck disable=SC2086
	fs_mount -o allow_other $opts
	"$ADMIN" fs status --mount "$M" --json | grep -q '"killpriv_v2":true' || fail "KILLPRIV_V2 not negotiated"
	cases "$M" "$B" >"$T/mount"
	diff -u "$T/native" "$T/mount" || fail "setuid/setgid clearing differs from the native directory ($opts)"
	fs_umount
done

note "a setuid bit set directly in the backing dir is cleared by the next write once seen"
fs_mount -o allow_other --attr-timeout 0.5 --metrics 127.0.0.1:0
echo x >"$M/ext"; chmod 777 "$M/ext"; nob sh -c "echo y >>'$M/ext'; echo y >>'$M/ext'"
chmod 4777 "$B/ext"
sleep 1
[ "$(stat -c %a "$M/ext")" = 4777 ] || fail "the external chmod is not visible after the timeout"
nob sh -c "echo z >>'$M/ext'"
[ "$(stat -c %a "$M/ext") $(stat -c %a "$B/ext")" = "777 777" ] || fail "external setuid not cleared: $(stat -c %a "$M/ext") $(stat -c %a "$B/ext")"

note "security.capability is asked once per file, not once per write"
ADDR=$("$ADMIN" fs status --mount "$M" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["metrics"])')
# write200: 200 write(2) calls of 4 KiB to one new file
write200() {
	$PY -c "
import os
fd = os.open('$M/many', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(200): os.write(fd, b'x' * 4096)
os.close(fd)"
}
getx() { curl -sf "http://$ADDR/metrics" | awk '$1 == "stratafs_fuse_requests_total{op=\"getxattr\"}" { print $2 }'; }
g0=$(getx)
write200
g1=$(getx)
[ -n "$g0" ] && [ $((g1 - g0)) -le 2 ] || fail "200 writes asked security.capability $((g1 - g0)) times"
fs_umount

note "--no-killpriv-v2: the kernel asks before every write, and still clears the bits"
fs_mount -o allow_other --no-killpriv-v2 --metrics 127.0.0.1:0
"$ADMIN" fs status --mount "$M" --json | grep -q '"killpriv_v2":false' || fail "--no-killpriv-v2 ignored"
ADDR=$("$ADMIN" fs status --mount "$M" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["metrics"])')
g0=$(getx)
write200
g1=$(getx)
[ $((g1 - g0)) -ge 200 ] || fail "without KILLPRIV_V2 only $((g1 - g0)) GETXATTRs for 200 writes"
echo x >"$M/k1"; chmod 4777 "$M/k1"; nob sh -c "echo y >>'$M/k1'"
[ "$(stat -c %a "$M/k1")" = 777 ] || fail "setuid kept with --no-killpriv-v2"
fs_umount
echo PASS
