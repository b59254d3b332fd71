#!/usr/bin/env bash
# Paths longer than the trash can mirror (and than PATH_MAX below the mount root) work as on
# a plain directory: create, stat, rename, unlink and rmdir; deleted objects land in the
# trash's fallback layout (bucket root, NAME~ID) with their original path recorded, and
# restore (by id, and by path for the directory tree) brings them back to their place.
. "$(dirname "$0")/fs_common.bash"

PLAIN="$T/plain"
mkdir -p "$PLAIN"
fs_mount

# A chain of 200-byte components: 17 of them make a path of about 3,400 bytes, 21 about
# 4,200 (longer than PATH_MAX below the mount root: reachable only step by step).
comp() { printf 'd%02d_%0196d' "$1" 0; }
deep() { # DIR LEVELS -> relative path
	local p="" i
	for i in $(seq 1 "$2"); do p="$p${p:+/}$(comp "$i")"; done
	echo "$p"
}

# workload DIR: the same operations on both sides, printing results; cds step by step
workload() {
	cd "$1" || exit 1
	local i
	for i in $(seq 1 21); do mkdir "$(comp "$i")" && cd "$(comp "$i")" || exit 1; done
	echo data >f && ln f g && mkfifo p && ln -s f l
	stat -c '%n %h %s' f g && stat -c '%n %F' p l
	mv g g2 && rm g2 && stat -c '%n %h' f
	rm p l
	cd "$1" || exit 1
	# at 3,400 bytes: a file and a directory, deleted with relative paths
	local d17
	d17=$(deep x 17)
	echo seventeen >"$d17/file17" && mkdir "$d17/sub17" && touch "$d17/sub17/x"
	cat "$d17/file17"
	rm "$d17/file17" && rm -r "$d17/sub17" && ls -a "$d17" | head -5
	# the deepest level removed bottom-up, as rm -rf does
	rm -rf "$(comp 1)"
	ls -a | grep -vx .trash
}

(workload "$PLAIN") >"$T/plain.out" 2>&1
(workload "$M") >"$T/mount.out" 2>&1
diff -u "$T/plain.out" "$T/mount.out" || fail "deep paths behave differently on the mount"
grep -q seventeen "$T/mount.out" || fail "workload did not run: $(head "$T/mount.out")"

note "the deleted deep objects are listed with their original paths (over 3,000 bytes)"
"$ADMIN" trash list --mount "$M" --flat --json >"$T/list.json" || fail "trash list"
/usr/bin/python3 - "$T/list.json" <<'EOF' || fail "trash list: $(head -c 600 "$T/list.json")"
import json, sys
e = json.load(open(sys.argv[1]))["entries"]
paths = [x["path"] for x in e]
assert any(p.endswith("/file17") and len(p) > 3000 for p in paths), paths
assert max(len(p) for p in paths) > 4096, max(len(p) for p in paths)
assert all(x["present"] for x in e), [x for x in e if not x["present"]]
EOF
ls "$B/.strata/trash/0/"*/ | grep -q '~' || fail "no fallback-layout entry in the bucket root"

note "restore of the whole tree by path recreates every level and the deepest file"
"$ADMIN" trash restore --mount "$M" "/$(comp 1)" >"$T/restore.out" || fail "restore tree: $(tail -3 "$T/restore.out")"
(cd "$M/$(deep x 17)" && cd "$(comp 18)/$(comp 19)/$(comp 20)/$(comp 21)" && cat f) >"$T/f.out" 2>&1
[ "$(cat "$T/f.out")" = data ] || fail "deepest file after restore: $(cat "$T/f.out")"
[ -e "$M/$(deep x 17)/sub17/x" ] || fail "sub17/x not restored"
[ "$(cat "$M/$(deep x 17)/file17")" = seventeen ] || fail "file17 not restored"

note "restore by id (a file at 3,400 bytes) brings it back to its original place"
rm "$M/$(deep x 17)/file17"
"$ADMIN" trash list --mount "$M" --flat --json >"$T/list2.json" || fail "trash list"
id=$(/usr/bin/python3 -c "import json,sys; print([x['id'] for x in json.load(open(sys.argv[1]))['entries'] if x['path'].endswith('/file17')][-1])" "$T/list2.json")
"$ADMIN" trash restore --mount "$M" "$id" >/dev/null || fail "restore of $id"
[ "$(cat "$M/$(deep x 17)/file17")" = seventeen ] || fail "file17 not back in place"
cd /
fs_umount
echo "ok"
