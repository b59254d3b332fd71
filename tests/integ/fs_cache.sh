#!/usr/bin/env bash
# Kernel caches of the mount stay coherent: directory listings (kept across opens), sizes
# after passthrough writes, and changes made outside the kernel's view (directly in the
# backing directory, or by the daemon: trash restore, rmr) show up at once or within the
# attribute timeout.
. "$(dirname "$0")/fs_common.bash"

fs_mount --attr-timeout 1
D="$M/dir"
mkdir "$D"
for i in 1 2 3; do echo "$i" >"$D/f$i"; done
listing() { ls -1a "$1" | tr '\n' ' '; }
ls "$D" >/dev/null
n0=$("$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["readdirplus"])')
for _ in 1 2 3 4 5; do ls "$D" >/dev/null; done
n1=$("$ADMIN" fs status --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["readdirplus"])')
[ "$n1" = "$n0" ] || fail "repeated listings of an unchanged directory reached the daemon ($n0 -> $n1)"

note "changes through the mount show in the next listing"
echo 4 >"$D/f4"
[ "$(listing "$D")" = ". .. f1 f2 f3 f4 " ] || fail "after create: $(listing "$D")"
rm "$D/f2"
[ "$(listing "$D")" = ". .. f1 f3 f4 " ] || fail "after unlink: $(listing "$D")"
mv "$D/f3" "$D/g3"
[ "$(listing "$D")" = ". .. f1 f4 g3 " ] || fail "after rename: $(listing "$D")"

note "restore through the control channel shows at once"
"$ADMIN" trash restore --mount "$M" /dir/f2 >/dev/null || fail "restore"
[ "$(listing "$D")" = ". .. f1 f2 f4 g3 " ] || fail "after restore: $(listing "$D")"

note "rmr of a subdirectory shows at once"
mkdir -p "$D/sub/x" && touch "$D/sub/x/y"
ls "$D" >/dev/null
"$ADMIN" rmr "$D/sub" >/dev/null || fail "rmr"
[ "$(listing "$D")" = ". .. f1 f2 f4 g3 " ] || fail "after rmr: $(listing "$D")"

note "changes made directly in the backing tree show within the attribute timeout"
ls "$D" >/dev/null
sleep 0.05
touch "$B/dir/direct"
sleep 1.2
[ "$(listing "$D")" = ". .. direct f1 f2 f4 g3 " ] || fail "backing-side create: $(listing "$D")"

note "sizes after passthrough writes"
head -c 100000 /dev/urandom >"$D/w"
[ "$(stat -c %s "$D/w")" = 100000 ] || fail "size after write: $(stat -c %s "$D/w")"
head -c 5000 /dev/urandom >>"$D/w"
[ "$(stat -c %s "$D/w")" = 105000 ] || fail "size after append: $(stat -c %s "$D/w")"
truncate -s 7 "$D/w"
[ "$(stat -c %s "$D/w")" = 7 ] || fail "size after truncate: $(stat -c %s "$D/w")"
[ "$(stat -c %s "$B/dir/w")" = 7 ] || fail "backing size after truncate"
fs_umount

note "default kernel cache timeout: 30 s on a local backing"
fs_mount
"$ADMIN" fs status --mount "$M" | grep -q "attr timeout 30 s" ||
	fail "default timeout: $("$ADMIN" fs status --mount "$M" | grep timeout)"
fs_umount
echo "PASS"
