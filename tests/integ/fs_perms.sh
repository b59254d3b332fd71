#!/usr/bin/env bash
# Permission checks by users other than root give the answers of the plain backing
# directory, with the kernel's caches warm (root has walked and stat'ed everything through
# the mount first, so a check the kernel skipped for a cached entry would show): search
# permission of a path prefix, owner/group/other mode bits with the group from the primary
# or a supplementary group, sticky directories, setgid directories and setgid bits kept or
# dropped by chmod, create, truncate, O_TRUNC and an access ACL as the caller's groups say.
# Identities come from setpriv (no passwd entries needed):
#   owner  2001:2001            sup    2002:2002 + supplementary 2001
#   prim   2003:2001            other  2004:2004
. "$(dirname "$0")/fs_common.bash"

PLAIN="$T/plain"
mkdir -p "$PLAIN"
chmod 755 "$PLAIN"
fs_mount -o allow_other

as() { # WHO CMD...
	local ids
	case $1 in
	owner) ids="--reuid=2001 --regid=2001 --clear-groups" ;;
	sup) ids="--reuid=2002 --regid=2002 --groups=2001" ;;
	prim) ids="--reuid=2003 --regid=2001 --clear-groups" ;;
	other) ids="--reuid=2004 --regid=2004 --clear-groups" ;;
	esac
	shift
	# shellcheck disable=SC2086
	setpriv $ids --inh-caps=-all "$@"
}

# build DIR: the same tree, made by root
build() {
	local d=$1
	mkdir -m 0700 "$d/priv" "$d/priv/sub"
	echo secret >"$d/priv/sub/f"
	chmod 0666 "$d/priv/sub/f"
	mkdir -m 0711 "$d/xonly"
	echo x >"$d/xonly/f"
	chmod 0644 "$d/xonly/f"
	mkdir -m 0750 "$d/grp"
	chown 2001:2001 "$d/grp"
	echo g >"$d/grp/f"
	chown 2001:2001 "$d/grp/f"
	chmod 0664 "$d/grp/f"
	mkdir -m 0755 "$d/bits"
	chmod 0777 "$d/bits"
	for w in owner sup prim other; do # one set per user: the owner's chmod changes them
		for m in 600 640 660 604 606 060 006 750 705; do
			printf '#!/bin/sh\necho ran\n' >"$d/bits/f$m.$w"
			chown 2001:2001 "$d/bits/f$m.$w"
			chmod "$m" "$d/bits/f$m.$w"
		done
	done
	mkdir "$d/sticky"
	chown 2003:2003 "$d/sticky"
	chmod 1777 "$d/sticky"
	for w in owner sup prim other; do
		as owner touch "$d/sticky/o.$w"
		as other touch "$d/sticky/t.$w"
	done
	mkdir "$d/sgid"
	chown 0:2001 "$d/sgid"
	chmod 2777 "$d/sgid"
	# warm the kernel's caches as root: every entry looked up, every attribute cached
	find "$d" -exec stat {} + >/dev/null
	cat "$d/priv/sub/f" >/dev/null
}

# ops WHO: what WHO can do in the current directory, one line per operation
ops() {
	local w=$1 f m
	r() { # LABEL CMD...: the result of one operation
		local out
		out=$("${@:2}" 2>&1) && echo "$1: ok $out" || echo "$1: $out"
	}
	r "priv stat" stat -c %a priv/sub/f
	r "priv read" cat priv/sub/f
	r "priv write" sh -c 'echo y >>priv/sub/f'
	r "priv chmod" chmod 0600 priv/sub/f
	r "priv ls" ls priv
	r "xonly read" cat xonly/f
	r "xonly ls" ls xonly
	r "xonly create" touch xonly/new.$w
	r "grp ls" ls grp
	r "grp read" cat grp/f
	r "grp write" sh -c 'echo y >>grp/f'
	r "grp create" touch grp/new.$w
	for f in bits/f*."$w"; do
		r "$f read" head -c 9 "$f"
		r "$f write" sh -c ": >>$f"
		r "$f exec" "./$f"
		r "$f chmod" chmod 0640 "$f"
		r "$f utime" touch -d @1000000 "$f"
		r "$f utime-now" touch "$f"
	done
	r "sticky rm owner's" rm -f sticky/o.$w
	r "sticky mv other's" mv sticky/t.$w sticky/moved.$w
	r "sticky create" touch sticky/mine.$w
	r "sticky rm mine" rm sticky/mine.$w
	# setgid directory: group inheritance, the setgid bit of new files and directories
	r "sgid mkdir" mkdir sgid/d.$w
	r "sgid file" touch sgid/f.$w
	r "sgid 02775" /usr/bin/python3 -c "import os; os.close(os.open('sgid/x.$w', os.O_CREAT | os.O_WRONLY, 0o2775))"
	r "sgid fifo" /usr/bin/python3 -c "import os; os.mknod('sgid/p.$w', 0o12775)"
	r "sgid chmod g+s" chmod 2664 sgid/f.$w
	r "sgid modes" stat -c '%n %a %g' sgid/d.$w sgid/f.$w sgid/x.$w sgid/p.$w
	r "sgid chgrp 2001" chgrp 2001 sgid/f.$w
	r "sgid truncate" truncate -s 0 sgid/f.$w
	r "sgid after" stat -c '%n %a %g' sgid/f.$w
	# an access ACL equal to the mode (user rw, group rw, other r) set by the file's owner
	r "sgid acl" /usr/bin/python3 -c "
import os, struct
f = 'sgid/a.$w'
open(f, 'w').close()
os.chmod(f, 0o2664)
acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, p, 0xffffffff)
                                      for t, p in ((1, 6), (4, 6), (0x20, 4)))
os.setxattr(f, 'system.posix_acl_access', acl)
print(oct(os.stat(f).st_mode & 0o7777))"
}

build "$PLAIN"
build "$M"
# a file with setgid (not group-executable) owned by group 2001, written by each user:
# kept for members (primary or supplementary), dropped natively otherwise
for d in "$PLAIN" "$M"; do
	for w in owner sup prim other; do
		for f in w.$w o.$w; do
			echo data >"$d/sgid/$f"
			chown 2001:2001 "$d/sgid/$f"
			chmod 2666 "$d/sgid/$f"
		done
	done
done
for w in owner sup prim other; do
	(cd "$PLAIN" && as $w bash -c "$(declare -f ops); ops $w") >"$T/plain.$w" 2>&1
	(cd "$M" && as $w bash -c "$(declare -f ops); ops $w") >"$T/mount.$w" 2>&1
	for d in "$PLAIN" "$M"; do
		(cd "$d" && as $w truncate -s 1 "sgid/w.$w" && as $w sh -c ": >sgid/o.$w" &&
			stat -c "%n %a" "sgid/w.$w" "sgid/o.$w") >>"$T/$(
			[ "$d" = "$M" ] && echo mount || echo plain).$w" 2>&1
	done
	diff -u "$T/plain.$w" "$T/mount.$w" || fail "$w: answers differ from the plain directory"
done

note "the expected values themselves"
grep -qx "priv read: cat: priv/sub/f: Permission denied" "$T/mount.other" ||
	fail "a file under a 0700 directory was readable: $(grep 'priv read' "$T/mount.other")"
grep -q "sgid/d.sup 2755 2001" "$T/mount.sup" || fail "setgid directory: $(cat "$T/mount.sup")"
grep -q "^sgid/x.sup 2755 2001$" "$T/mount.sup" || fail "02775 file by a supplementary member lost setgid"
grep -q "^sgid/x.other 755 2001$" "$T/mount.other" || fail "02775 file by a non-member kept setgid"
grep -q "^sgid/f.sup 2664 2001$" "$T/mount.sup" || fail "chmod 2664 by a supplementary member lost setgid"
grep -qx "sgid acl: ok 0o2664" "$T/mount.sup" || fail "an access ACL by a supplementary member dropped setgid"
grep -qx "sgid acl: ok 0o664" "$T/mount.other" || fail "an access ACL by a non-member: $(grep acl "$T/mount.other")"
grep -qx "sgid/w.sup 2666" "$T/mount.sup" || fail "truncate by a supplementary member dropped setgid"
grep -qx "sgid/w.other 666" "$T/mount.other" || fail "truncate by a non-member kept setgid"
grep -qx "sgid/o.sup 2666" "$T/mount.sup" || fail "O_TRUNC open by a supplementary member dropped setgid"
grep -qx "sgid/o.other 666" "$T/mount.other" || fail "O_TRUNC open by a non-member kept setgid"
grep -qx "sticky rm owner's: rm: cannot remove 'sticky/o.other': Operation not permitted" "$T/mount.other" ||
	fail "sticky directory: $(grep sticky "$T/mount.other")"
grep -qx "sticky mv other's: ok " "$T/mount.prim" || fail "sticky directory's owner: $(grep sticky "$T/mount.prim")"
fs_umount
echo "ok"
