#!/usr/bin/env bash
# st_nlink through the mount is the user's namespace's, as on a plain directory, although the
# trash keeps a link to every deleted name: after link/unlink, rename over a hard-linked file,
# fstat of an open file after unlink, restore (file and rm -rf'd tree) and purge; the count
# kept for it is invisible in the mount.
. "$(dirname "$0")/fs_common.bash"

PLAIN="$T/plain"
mkdir -p "$PLAIN"
fs_mount

workload() {
	cd "$1" || exit 1
	touch a && ln a b && ln a c
	stat -c '%h %n' a
	rm b
	stat -c '%h %n' a c
	rm c
	stat -c '%h %n' a
	mkfifo p && ln p p2 && rm p2 && stat -c '%h %n' p
	# rename over one name of a hard-linked file
	echo x >t && ln t t2 && echo y >s
	mv s t
	stat -c '%h %n' t t2
	# fstat of open files after unlink: the last name (0) and one of two (1)
	/usr/bin/python3 - <<'EOF'
import os
fd = os.open("u", os.O_CREAT | os.O_RDWR, 0o644)
os.unlink("u")
print("fstat after unlink", os.fstat(fd).st_nlink)
os.close(fd)
fd = os.open("v", os.O_CREAT | os.O_RDWR, 0o644)
os.link("v", "v2")
os.unlink("v")
print("fstat after unlink of one of two", os.fstat(fd).st_nlink, os.stat("v2").st_nlink)
os.close(fd)
EOF
	# find -links and a hard-link aware copy see what they would natively
	find . -maxdepth 1 -links 1 -type f | sort
	mkdir h && touch h/x && ln h/x y && rm -rf h
	stat -c '%h %n' y
}

(workload "$PLAIN") >"$T/plain.out" 2>&1
(workload "$M") >"$T/mount.out" 2>&1
diff -u "$T/plain.out" "$T/mount.out" || fail "link counts differ from the plain directory"
grep -qx "fstat after unlink 0" "$T/mount.out" || fail "fstat after unlink: $(cat "$T/mount.out")"

note "restore gives the link back to the user's count (file, and a tree removed by rm -rf)"
cd "$M" || fail "cd"
"$ADMIN" trash restore --mount "$M" /c >/dev/null || fail "restore /c"
[ "$(stat -c %h "$M/a")-$(stat -c %h "$M/c")" = "2-2" ] || fail "after restore: $(stat -c '%h %n' a c)"
"$ADMIN" trash restore --mount "$M" /h >/dev/null || fail "restore /h"
[ "$(stat -c %h "$M/y")-$(stat -c %h "$M/h/x")" = "2-2" ] || fail "after tree restore: $(stat -c '%h %n' y h/x)"

note "purge: the reclaimer counts the link out before removing it"
rm "$M/c"
[ "$(stat -c %h "$M/a")" = 1 ] || fail "a after rm c: $(stat -c %h "$M/a")"
"$ADMIN" trash purge --mount "$M" >/dev/null || fail "purge"
"$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "rmr wait"
[ "$(stat -c %h "$B/a")" = 1 ] || fail "backing still has the trash link: $(stat -c %h "$B/a")"
getfattr -d -m - "$B/a" 2>/dev/null | grep -q tlinks && fail "count left behind after purge"
[ "$(stat -c %h "$M/a")" = 1 ] || fail "a after purge: $(stat -c %h "$M/a")"

note "the count is invisible through the mount"
rm "$M/t2" 2>/dev/null; ln "$M/a" "$M/a2" && rm "$M/a2"
getfattr -d -m - "$B/a" 2>/dev/null | grep -q tlinks || fail "no count on the backing file"
getfattr -d -m - "$M/a" 2>/dev/null | grep -q tlinks && fail "count visible in the mount"
setfattr -n trusted.strata.tlinks -v 5 "$M/a" 2>/dev/null && fail "count writable through the mount"
[ "$(stat -c %h "$M/a")" = 1 ] || fail "a: $(stat -c %h "$M/a")"
cd /
fs_umount
echo "ok"
