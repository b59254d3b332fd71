#!/usr/bin/env bash
# Trash bin through a real mount: deleted files, trees and overwritten files come back byte
# for byte with modes, owners, times and xattrs; the .trash view is per user and read-only;
# users cannot see, restore or purge each other's entries; restore cannot escape; expiry.
. "$(dirname "$0")/fs_common.bash"

# long attribute timeout: stale kernel caches would show up in this test
fs_mount -o allow_other --attr-timeout 30

snapshot() { # DIR -> metadata and content of every entry below it (not atime/ctime)
	(cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%U|%G|%s|%n|%l|%T@\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0 -r md5sum &&
		getfattr -h -d -m 'user\.' -R . 2>/dev/null | sort)
}

note "a tree with modes, owners, times, xattrs, a symlink and a hard link"
P="$M/proj"
mkdir -p "$P/sub/deep" "$P/emptydir"
echo "alpha" >"$P/a.txt"
head -c 300000 /dev/urandom >"$P/sub/b.bin"
echo "deep" >"$P/sub/deep/c"
ln -s ../a.txt "$P/sub/link"
ln "$P/sub/b.bin" "$P/sub/b.hard"
chmod 640 "$P/a.txt"; chmod 2750 "$P/sub/deep"; chmod 700 "$P/emptydir"
chown 65534:65534 "$P/sub/deep/c"
setfattr -n user.tag -v "v1" "$P/a.txt"
setfattr -n user.bin -v 0x00ff10 "$P/sub/b.bin"
touch -d "2021-03-04 05:06:07.890123456" "$P/a.txt" "$P/sub/deep/c" "$P/sub/deep" "$P/emptydir"
touch -h -d "2019-01-01 00:00:00" "$P/sub/link"
touch -d "2018-06-07 08:09:10" "$P/sub" "$P"
snapshot "$P" >"$T/before"
[ "$(wc -l <"$T/before")" -gt 10 ] || fail "snapshot too small"

note "rm -rf, then everything is in the trash and the names are free"
stat "$P/a.txt" >/dev/null
rm -rf "$P"
[ -e "$P" ] && fail "proj still visible after rm -rf"
stat "$P" 2>/dev/null && fail "stale entry"
"$ADMIN" trash list --mount "$M" --flat >"$T/list"
grep -q " /proj/sub/b.bin$" "$T/list" || fail "b.bin missing from trash list --flat: $(cat "$T/list")"
grep -q " /proj$" "$T/list" || fail "proj directory entry missing"
note "rm -rf is one entry in trash list (its tree folded under it); PATH filters"
# an entry belongs to the owner of the object: nobody's file inside root's tree is nobody's
# entry, listed on its own (root sees every user's entries)
"$ADMIN" trash list --mount "$M" >"$T/list.all"
grep -q " nobody    /proj/sub/deep/c$" "$T/list.all" || fail "nobody's entry is not listed on its own: $(cat "$T/list.all")"
"$ADMIN" trash list --mount "$M" --user root >"$T/list.fold"
grep -q " /proj  (+[0-9]* inside)$" "$T/list.fold" || fail "proj is not one folded entry: $(cat "$T/list.fold")"
grep -q "/proj/" "$T/list.fold" && fail "entries of the rm -rf'd tree listed on their own: $(cat "$T/list.fold")"
nflat=$("$ADMIN" trash list --mount "$M" --user root --flat | grep -c " /proj")
grep -q "^1 entry ($nflat deleted objects; --flat lists each)" "$T/list.fold" || fail "fold summary: $(tail -1 "$T/list.fold")"
"$ADMIN" trash list --mount "$M" --user root --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
e = r["entries"]
assert len(e) == 1 and e[0]["path"] == "/proj" and e[0]["folded"] == r["objects"] - 1, e
assert e[0]["folded_bytes"] == r["bytes"], (e[0]["folded_bytes"], r["bytes"])' || fail "trash list --json folding"
"$ADMIN" trash list --mount "$M" --user root "$M/proj/sub" >"$T/list.sub"
grep -q " /proj/sub  (+[0-9]* inside)$" "$T/list.sub" || fail "trash list PATH: $(cat "$T/list.sub")"
grep -q " /proj$" "$T/list.sub" && fail "trash list PATH shows an entry above PATH"
"$ADMIN" trash list --mount "$M" --flat /proj/sub/deep | grep -c " /proj/sub/deep" | grep -qx 2 || fail "trash list --flat PATH (mount-relative)"
"$ADMIN" trash list --mount "$M" /proj/su | grep -q "^0 entries" || fail "a path prefix that is not a component matched"
"$ADMIN" trash list --mount "$M" /proj/../etc 2>/dev/null && fail "trash list with .. accepted"
BUCKET=$(ls "$M/.trash/0" | tail -1)
[ -f "$M/.trash/0/$BUCKET/proj/sub/b.bin" ] || fail "trash view does not show the deleted file"
cmp -s <(head -c 10 "$M/.trash/0/$BUCKET/proj/a.txt") <(echo alpha) || true
[ "$(cat "$M/.trash/0/$BUCKET/proj/a.txt")" = alpha ] || fail "cannot read a trashed file"
[ -f "$M/.trash/65534/$BUCKET/proj/sub/deep/c" ] || fail "nobody's file not in nobody's trash"

note "the trash view is read-only"
touch "$M/.trash/0/$BUCKET/proj/new" 2>/dev/null && fail "created a file in the trash view"
rm -f "$M/.trash/0/$BUCKET/proj/a.txt" 2>/dev/null
[ -e "$M/.trash/0/$BUCKET/proj/a.txt" ] || fail "deleted a file through the trash view"
(echo x >>"$M/.trash/0/$BUCKET/proj/a.txt") 2>/dev/null && fail "wrote into the trash view"
mv "$M/.trash/0/$BUCKET/proj" "$M/stolen" 2>/dev/null && fail "renamed out of the trash view"

note "restore the whole tree by path; compare byte for byte"
stat "$M/proj" 2>/dev/null && fail "proj exists before restore"   # caches a negative entry
"$ADMIN" trash restore --mount "$M" /proj >"$T/restore.out" || fail "restore failed: $(cat "$T/restore.out")"
[ -d "$M/proj" ] || fail "restored tree not visible at once (stale negative dentry?)"
snapshot "$M/proj" >"$T/after"
diff -u "$T/before" "$T/after" || fail "restored tree differs from the original"
[ "$("$ADMIN" trash list --mount "$M" --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')" = 0 ] || fail "entries left in the trash after restoring the tree"

note "a file overwritten by rename goes to the trash too"
echo v1 >"$M/proj/conf"; echo v2 >"$M/proj/conf.new"
setfattr -n user.ver -v one "$M/proj/conf"
mv "$M/proj/conf.new" "$M/proj/conf"
[ "$(cat "$M/proj/conf")" = v2 ] || fail "rename over did not replace"
"$ADMIN" trash restore --mount "$M" /proj/conf 2>/dev/null && fail "restore overwrote without being asked"
"$ADMIN" trash restore --mount "$M" /proj/conf --to "$M/proj/conf.v1" >/dev/null || fail "restore --to"
[ "$(cat "$M/proj/conf.v1")" = v1 ] || fail "overwritten file content"
[ "$(getfattr --only-values -n user.ver "$M/proj/conf.v1" 2>/dev/null)" = one ] || fail "overwritten file xattr"
rm "$M/proj/conf.v1"
"$ADMIN" trash restore --mount "$M" /proj/conf.v1 --to /proj/conf 2>/dev/null && fail "restore --to overwrote"
"$ADMIN" trash restore --mount "$M" /proj/conf.v1 --to /proj/conf --overwrite >/dev/null || fail "restore --overwrite"
[ "$(cat "$M/proj/conf")" = v1 ] || fail "--overwrite did not restore v1"
"$ADMIN" trash list --mount "$M" | grep -q " /proj/conf$" || fail "the overwritten v2 was not kept in the trash"

note "restore recreates missing parents with their recorded metadata"
mkdir -p "$M/r1/r2"; chmod 751 "$M/r1/r2"; echo leaf >"$M/r1/r2/leaf"
touch -d "2017-01-01" "$M/r1/r2"
rm -rf "$M/r1"
ID=$("$ADMIN" trash list --mount "$M" --flat --json | /usr/bin/python3 -c '
import json,sys
print([e["id"] for e in json.load(sys.stdin)["entries"] if e["path"]=="/r1/r2/leaf"][0])')
"$ADMIN" trash restore --mount "$M" "$ID" >/dev/null || fail "restore by id"
[ "$(cat "$M/r1/r2/leaf")" = leaf ] || fail "leaf content"
[ "$(stat -c %a "$M/r1/r2")" = 751 ] || fail "parent mode not recreated: $(stat -c %a "$M/r1/r2")"
[ "$(stat -c %Y "$M/r1/r2")" = "$(date -d 2017-01-01 +%s)" ] || fail "parent mtime not recreated"

note "another user: isolation in the view and in the tool"
mkdir -m 1777 "$M/shared"
echo "root secret" >"$M/shared/root.txt"; chmod 644 "$M/shared/root.txt"
as_nobody sh -c "echo 'nobody data' >'$M/shared/nb.txt'" || fail "nobody cannot write"
rm "$M/shared/root.txt"
as_nobody rm "$M/shared/nb.txt" || fail "nobody cannot delete its own file"
as_nobody ls "$M/.trash" >"$T/nbview" || fail "nobody cannot list .trash"
grep -qx 65534 "$T/nbview" || fail "nobody does not see its own trash"
grep -qx 0 "$T/nbview" && fail "nobody sees root's trash root"
as_nobody ls "$M/.trash/0" 2>/dev/null && fail "nobody can list root's trash"
as_nobody cat "$M/.trash/0/$BUCKET/shared/root.txt" 2>/dev/null && fail "nobody read root's trashed file"
RB=$(ls "$M/.trash/0" | tail -1)
as_nobody cat "$M/.trash/0/$RB/shared/root.txt" 2>/dev/null && fail "nobody read root's trashed file"
as_nobody "$ADMIN" trash list --mount "$M" >"$T/nblist" || fail "nobody: trash list"
grep -q "/shared/nb.txt" "$T/nblist" || fail "nobody's entry missing from its list"
grep -q "/shared/root.txt\|/proj" "$T/nblist" && fail "nobody's list shows root's entries"
as_nobody "$ADMIN" trash list --mount "$M" --user root 2>/dev/null && fail "nobody listed root's trash"
as_nobody "$ADMIN" trash restore --mount "$M" /shared/root.txt 2>/dev/null && fail "nobody restored root's file"
RID=$("$ADMIN" trash list --mount "$M" --json | /usr/bin/python3 -c '
import json,sys
print([e["id"] for e in json.load(sys.stdin)["entries"] if e["path"]=="/shared/root.txt"][0])')
as_nobody "$ADMIN" trash restore --mount "$M" "$RID" 2>/dev/null && fail "nobody restored root's entry by id"
as_nobody "$ADMIN" trash purge --mount "$M" "$RID" 2>/dev/null && fail "nobody purged root's entry"
[ -e "$M/shared/root.txt" ] && fail "root's file came back through nobody"
"$ADMIN" trash list --mount "$M" | grep -q "/shared/root.txt" || fail "root's entry vanished"
"$ADMIN" trash list --mount "$M" | grep -q "/shared/nb.txt" || fail "root does not see nobody's entry"
note "restore never escapes, and runs with the user's own permissions"
for bad in ../../etc/nbx /.strata/x /.trash/x ../x; do
	as_nobody "$ADMIN" trash restore --mount "$M" /shared/nb.txt --to "$bad" 2>/dev/null && fail "restore to $bad accepted"
done
ln -s /etc "$M/shared/etclink"
as_nobody "$ADMIN" trash restore --mount "$M" /shared/nb.txt --to /shared/etclink/nbx 2>/dev/null && fail "restore followed a symlink"
[ -e /etc/nbx ] && { rm -f /etc/nbx; fail "restore escaped to /etc"; }
mkdir -m 755 "$M/rootonly"
as_nobody "$ADMIN" trash restore --mount "$M" /shared/nb.txt --to /rootonly/nb.txt 2>/dev/null && fail "nobody restored into root's directory"
as_nobody "$ADMIN" trash restore --mount "$M" /shared/nb.txt >/dev/null || fail "nobody cannot restore its own file"
[ "$(cat "$M/shared/nb.txt")" = "nobody data" ] || fail "nobody's file content"
[ "$(stat -c %U "$M/shared/nb.txt")" = nobody ] || fail "nobody's file owner"
"$ADMIN" trash purge --mount "$M" "$RID" >/dev/null || fail "root purge by id"
"$ADMIN" trash list --mount "$M" | grep -q "/shared/root.txt" && fail "purged entry still listed"

note "offline access on the backing directory is refused while mounted, works after"
"$ADMIN" rmr drain --backing "$B" 2>/dev/null && fail "offline drain while mounted"
"$ADMIN" trash list --mount "$M" --json >"$T/list.live" || fail "live list --json"
fs_umount
note "one command implementation: the offline list equals the daemon's"
"$ADMIN" trash list --backing "$B" --json >"$T/list.offline" || fail "offline list --json"
/usr/bin/python3 - "$T/list.live" "$T/list.offline" <<'PY' || fail "offline and live trash list differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop("retention_us"); b.pop("retention_us")
sys.exit(0 if a == b and a["entries"] else 1)
PY
"$ADMIN" trash list --backing "$B" | grep -q "/proj/conf" || fail "offline list"
"$ADMIN" trash restore --backing "$B" /proj/conf --to /proj/conf.offline >/dev/null || fail "offline restore"
[ "$(cat "$B/proj/conf.offline")" = v2 ] || fail "offline restore content"

note "expiry drops whole buckets after the retention"
fs_mount -o allow_other --trash-retention 3s
echo old >"$M/expiring"
rm "$M/expiring"
"$ADMIN" trash list --mount "$M" | grep -q "/expiring" || fail "entry not listed"
ok=0
for _ in $(seq 1 60); do
	if ! "$ADMIN" trash list --mount "$M" | grep -q " /"; then ok=1; break; fi
	sleep 0.5
done
[ $ok = 1 ] || fail "entries did not expire: $("$ADMIN" trash list --mount "$M")"
"$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "reclaim of expired buckets"
[ -z "$(ls -A "$B/.strata/rmr")" ] || fail "expired data not reclaimed"
[ "$(find "$B/.strata/trash" -type f | wc -l)" = 0 ] || fail "files left in the trash after expiry"
fs_umount
echo PASS
