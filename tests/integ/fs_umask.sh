#!/usr/bin/env bash
# New files, directories, FIFOs and symlinks get the caller's umask (0, 002, 022, 077), as on
# the plain backing directory, for root and for another user through allow_other; a
# directory its owner may read but not search opens (readdir) as it does natively.
. "$(dirname "$0")/fs_common.bash"

PLAIN="$T/plain"
mkdir -p "$PLAIN"
chmod 1777 "$PLAIN"
fs_mount -o allow_other
chmod 1777 "$M"

# workload UMASK DIR: creates one of each kind and prints the modes
workload() {
	local u=$1 d=$2/u$1
	(
		umask "$u"
		mkdir "$d" && cd "$d" || exit 1
		touch f
		mkdir dir
		mkfifo fifo
		/usr/bin/python3 - <<'EOF'
import os
os.close(os.open("o620", os.O_CREAT | os.O_WRONLY, 0o620))
os.close(os.open("o4777", os.O_CREAT | os.O_WRONLY, 0o4777))
os.mkdir("d2777", 0o2777)
EOF
		stat -c '%a %n' . f dir fifo o620 o4777 d2777
	)
}

mkdir -p "$PLAIN/root" "$M/root" "$PLAIN/nobody" "$M/nobody"
chown nobody "$PLAIN/nobody" "$M/nobody"
for who in root nobody; do
	for u in 0 002 022 077; do
		if [ $who = root ]; then
			workload $u "$PLAIN/$who" >"$T/plain.$who.$u" 2>&1
			workload $u "$M/$who" >"$T/mount.$who.$u" 2>&1
		else
			as_nobody bash -c "$(declare -f workload); workload $u $PLAIN/$who" >"$T/plain.$who.$u" 2>&1
			as_nobody bash -c "$(declare -f workload); workload $u $M/$who" >"$T/mount.$who.$u" 2>&1
		fi
		diff -u "$T/plain.$who.$u" "$T/mount.$who.$u" ||
			fail "modes differ from the plain directory for $who with umask $u"
	done
done
note "the expected values themselves (umask 002: group-writable)"
grep -qx '664 f' "$T/mount.root.002" || fail "umask 002: $(cat "$T/mount.root.002")"
grep -qx '775 dir' "$T/mount.nobody.002" || fail "umask 002 (nobody): $(cat "$T/mount.nobody.002")"
grep -qx '620 o620' "$T/mount.root.0" || fail "umask 0, mode 0620: $(cat "$T/mount.root.0")"
grep -qx '4777 o4777' "$T/mount.root.0" || fail "umask 0, mode 04777: $(cat "$T/mount.root.0")"
grep -qx '600 f' "$T/mount.nobody.077" || fail "umask 077: $(cat "$T/mount.nobody.077")"

note "umask of one caller does not leak into the next request of another"
(umask 077; touch "$M/a077") & p1=$!
(umask 0; touch "$M/a000") & p2=$!
wait $p1 $p2
[ "$(stat -c %a "$M/a077") $(stat -c %a "$M/a000")" = "600 666" ] ||
	fail "interleaved umasks: $(stat -c '%a %n' "$M/a077" "$M/a000")"
note "daemon state keeps its own modes after a caller with umask 0777"
(umask 0777; touch "$M/none"; rm "$M/none")
[ "$(stat -c %a "$B/.strata/trash/0")" = 700 ] || fail "trash user dir: $(stat -c %a "$B/.strata/trash/0")"

note "a 0600 directory opens for its owner (read, no search), as natively"
for D in "$PLAIN/nobody" "$M/nobody"; do
	as_nobody mkdir "$D/rd"
	as_nobody touch "$D/rd/x"
	as_nobody chmod 0600 "$D/rd"
	as_nobody ls "$D/rd" >"$D.ls" 2>&1 || echo "ls failed" >>"$D.ls"
done
diff "$PLAIN/nobody.ls" "$M/nobody.ls" || fail "readdir of a 0600 directory differs"
grep -qx x "$M/nobody.ls" || fail "readdir of a 0600 directory: $(cat "$M/nobody.ls")"
fs_umount
echo "ok"
