#!/usr/bin/env bash
# Asynchronous removal through a real mount: a 100k-file tree leaves the namespace in under
# a second, the reclaimer finishes it, kill -9 mid-reclaim then remount resumes, nothing
# outside the tree is touched, --via-trash keeps it restorable, permissions as for rm -rf.
. "$(dirname "$0")/fs_common.bash"

# make_tree DIR FILES: FILES small files in 100 subdirectories (written on the backing tree:
# this test is about removal, not creation), plus a symlink pointing outside.
make_tree() {
	local d=$1 per=$(($2 / 100))
	mkdir -p "$d"
	(cd "$d" && for i in $(seq -w 0 99); do mkdir "s$i"; done)
	local last=$((per - 1))
	for s in "$d"/s*; do (cd "$s" && eval "touch f{0..$last}" && echo data >f0); done
	ln -s "$B/keep" "$d/outside-link"
}

mkdir -p "$B/keep/sub"
echo precious >"$B/keep/sub/file"
make_tree "$B/big" 100000
find "$B/keep" -printf '%P %s %T@\n' | sort >"$T/keep.before"
fs_mount --attr-timeout 30
ls "$M/big" >/dev/null; stat "$M/big/s00/f1" >/dev/null   # the kernel caches the tree

note "rmr of 100k files returns in under a second"
t0=$(now_ms)
"$ADMIN" rmr "$M/big" >"$T/rmr.out" || fail "rmr failed: $(cat "$T/rmr.out")"
dt=$(( $(now_ms) - t0 ))
echo "rmr returned in ${dt} ms: $(cat "$T/rmr.out")"
[ $dt -lt 1000 ] || fail "rmr took ${dt} ms"
[ -e "$M/big" ] && fail "big still visible after rmr"
mkdir "$M/big" && echo new >"$M/big/new" || fail "the name is not free at once"
"$ADMIN" rmr status --mount "$M" --json >"$T/st.json" || fail "rmr status"
/usr/bin/python3 - "$T/st.json" <<'PY' || fail "status JSON: $(cat "$T/st.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["ok"] and len(s["jobs"]) == 1, s
j = s["jobs"][0]
assert j["path"] == "/big" and j["state"] in ("queued", "scanning", "deleting"), j
for k in ("files_left", "bytes_left", "rate_files", "files_done", "files_total"):
    assert k in j or k in s, k
PY
timeout 120 "$ADMIN" rmr status --mount "$M" --wait >"$T/wait.out" || fail "reclaim did not finish: $(tail -3 "$T/wait.out")"
# the last line has the real totals (the job has left the queue by then) and the rates
tail -1 "$T/wait.out" | grep -Eq "^rmr done: 1001[0-9]{2} files in [0-9.]+s \([0-9]+ files/s\), [0-9.]+ [KM]iB, [0-9.]+ [KM]iB/s$" ||
	fail "rmr status --wait summary: $(tail -1 "$T/wait.out")"
[ -z "$(ls -A "$B/.strata/rmr")" ] || fail "queue not empty: $(ls "$B/.strata/rmr")"
[ "$(cat "$M/big/new")" = new ] || fail "the new big was touched"
find "$B/keep" -printf '%P %s %T@\n' | sort | diff - "$T/keep.before" || fail "keep was touched"

note "kill -9 during reclaim, remount, and it finishes"
make_tree "$B/big2" 100000
fs_umount
fs_mount --rmr-rate 20000
"$ADMIN" rmr "$M/big2" >/dev/null || fail "rmr big2"
for _ in $(seq 1 100); do
	done_files=$("$ADMIN" rmr status --mount "$M" --json | /usr/bin/python3 -c '
import json,sys; j=json.load(sys.stdin)["jobs"]; print(j[0]["files_done"] if j else -1)')
	[ "$done_files" -gt 2000 ] 2>/dev/null && break
	sleep 0.2
done
[ "$done_files" -gt 0 ] 2>/dev/null || fail "reclaim did not start (files_done=$done_files)"
fs_kill9
echo "killed at files_done=$done_files"
ls "$B/.strata/rmr" | grep -q '\.tree$' || fail "the tree was already gone: kill came too late"
left=$(find "$B/.strata/rmr" -type f | wc -l)
[ "$left" -gt 0 ] && [ "$left" -lt 100000 ] || fail "expected a partly reclaimed tree, found $left files"
fs_mount
timeout 120 "$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "resumed reclaim did not finish"
[ -z "$(ls -A "$B/.strata/rmr")" ] || fail "queue not empty after resume"
find "$B/keep" -printf '%P %s %T@\n' | sort | diff - "$T/keep.before" || fail "keep was touched"

note "--via-trash: one trash entry, restorable"
mkdir -p "$M/t1/a/b"; echo one >"$M/t1/a/b/f"; echo two >"$M/t1/g"
"$ADMIN" rmr --via-trash "$M/t1" >/dev/null || fail "rmr --via-trash"
[ -e "$M/t1" ] && fail "t1 still visible"
[ "$("$ADMIN" trash list --mount "$M" --json | /usr/bin/python3 -c '
import json,sys; print(sum(1 for e in json.load(sys.stdin)["entries"] if e["path"]=="/t1" and e["type"]=="d"))')" = 1 ] || fail "t1 is not one trash entry"
"$ADMIN" trash restore --mount "$M" /t1 >/dev/null || fail "restore t1"
[ "$(cat "$M/t1/a/b/f")$(cat "$M/t1/g")" = onetwo ] || fail "t1 content after restore"

note "permissions as for rm -rf"
fs_umount
fs_mount -o allow_other
mkdir -m 1777 "$M/pub"
mkdir -p "$M/pub/rootdir/x"
as_nobody "$ADMIN" rmr "$M/pub/rootdir" 2>/dev/null && fail "nobody removed root's dir in a sticky dir"
as_nobody mkdir -p "$M/pub/nbdir/inner"
mkdir "$M/pub/nbdir/inner/rootsub"; touch "$M/pub/nbdir/inner/rootsub/f"
as_nobody "$ADMIN" rmr "$M/pub/nbdir" 2>/dev/null && fail "nobody removed a tree with a root-only subdirectory"
[ -e "$M/pub/nbdir/inner/rootsub/f" ] || fail "tree damaged by a refused rmr"
rm -rf "$M/pub/nbdir/inner/rootsub"
as_nobody "$ADMIN" rmr "$M/pub/nbdir" >/dev/null || fail "nobody cannot rmr its own tree"
[ -e "$M/pub/nbdir" ] && fail "nbdir still there"
"$ADMIN" rmr "$M/.trash" 2>/dev/null && fail "rmr of .trash accepted"
"$ADMIN" rmr "$M" 2>"$T/root.err" && fail "rmr of the mount root accepted"
grep -q "refusing to remove $M: it is the root of the stratafs mount $M" "$T/root.err" || fail "rmr of the root: $(cat "$T/root.err")"
(cd "$M/pub" && "$ADMIN" rmr .. 2>"$T/root.err") && fail "rmr of .. (the root) accepted"
grep -q "root of the stratafs mount $M" "$T/root.err" || fail "rmr .. from a subdirectory: $(cat "$T/root.err")"
[ -d "$M/pub" ] || fail "the mount was emptied"
timeout 60 "$ADMIN" rmr status --mount "$M" --wait >/dev/null || fail "final reclaim"
fs_umount
echo PASS
