#!/usr/bin/env bash
# Real tools inside a stratafs mount give the same results as on a plain directory: tar
# extract/create, cp -a, git init/add/commit/status/checkout, make on a small C project,
# find, du, rsync -a.
. "$(dirname "$0")/fs_common.bash"

PLAIN="$T/plain"
mkdir -p "$PLAIN"
# few inode fds: most inodes live on file handles, the path big trees take
fs_mount --max-inode-fds 100

# A source tree with modes, times, symlinks, a hard link, an xattr and an empty directory.
SRC="$T/src"
mkdir -p "$SRC/a/b/c" "$SRC/empty"
for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom >"$SRC/a/file$i"; done
echo "script" >"$SRC/a/b/run.sh"
chmod 755 "$SRC/a/b/run.sh"
chmod 600 "$SRC/a/file1"
chmod 2750 "$SRC/a/b/c"
ln -s ../file2 "$SRC/a/b/link"
ln "$SRC/a/file3" "$SRC/a/hardlink"
setfattr -n user.origin -v test "$SRC/a/file4" 2>/dev/null
# old times everywhere, so that no tool mistakes them for "already equal" by the second
find "$SRC" -depth -exec touch -h -d "2023-05-06 07:08:09.5" {} +
touch -d "2020-01-02 03:04:05.123456789" "$SRC/a/file5" "$SRC/a/b"
tar -C "$T" -cf "$T/src.tar" --xattrs src

export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
export GIT_CONFIG_NOSYSTEM=1 HOME="$T"
unset MAKEFLAGS MAKELEVEL MFLAGS MAKEOVERRIDES   # an outer make (make test) must not leak in

workload() { # DIR -> prints results that must match between plain and mount
	local W=$1
	cd "$W" || exit 1
	mkdir x && tar -C x -xf "$T/src.tar" --xattrs --xattrs-include='user.*' || echo "tar x failed"
	tar -C x -cf created.tar src && tar -tvf created.tar | awk '{print $1, $3, $6}' | sort
	cp -a "$SRC" cp || echo "cp -a failed"
	if command -v rsync >/dev/null; then
		rsync -aHX "$SRC/" rs/ || echo "rsync failed"
	fi
	# git
	mkdir repo && cd repo
	git init -q -b main . && cp -a "$SRC/a" . && git add -A && git commit -qm one
	echo change >>file1 && git status --porcelain && git commit -qam two
	git checkout -q -b side HEAD~1 && cat file1 | md5sum && git checkout -q main
	git log --format=%H%x20%s && git status --porcelain && git fsck --strict 2>&1 && echo "fsck ok"
	cd "$W"
	# make
	mkdir proj && cd proj
	printf '#include "u.h"\nint main(void){return twice(21)==42?0:1;}\n' >main.c
	printf 'int twice(int x);\n' >u.h
	printf '#include "u.h"\nint twice(int x){return 2*x;}\n' >u.c
	printf 'prog: main.o u.o\n\tcc -o $@ $^\n%%.o: %%.c u.h\n\tcc -c -o $@ $<\n' >Makefile
	make -s && ./prog && echo "prog ok"
	make -s; echo "second make: $(make -q && echo up-to-date)"
	sleep 1.1; touch u.c; make | grep -c '^cc' ; ./prog && echo "rebuild ok"
	cd "$W"
	# find and du over the copies (data and metadata of copied trees must match)
	find x cp rs -mindepth 1 -printf '%P|%y|%m|%s|%n|%l|%T@\n' 2>/dev/null | sort
	find x cp rs -type f -print0 | du --files0-from=- -b --apparent-size | sort -k2
	find x cp rs -type f -print0 | sort -z | xargs -0 md5sum
	getfattr -h -d -m 'user\.' -R x cp rs 2>/dev/null | sort
}

(workload "$PLAIN") >"$T/plain.out" 2>&1
(workload "$M") >"$T/mount.out" 2>&1
if ! diff -u "$T/plain.out" "$T/mount.out"; then
	fail "tools behave differently on the mount (diff above)"
fi
grep -q "prog ok" "$T/mount.out" || fail "make/prog did not work: $(head -50 "$T/mount.out")"
grep -q "rebuild ok" "$T/mount.out" || fail "rebuild after touch did not work"
grep -q "fsck ok" "$T/mount.out" || fail "git fsck failed on the mount"
[ "$(grep -c . "$T/mount.out")" -gt 100 ] || fail "workload produced too little output"
grep -q "failed" "$T/mount.out" && fail "a tool failed: $(grep failed "$T/mount.out")"

note "the mount's readahead is 512 KiB (the kernel would keep 128 KiB)"
dev=$(stat -c %d "$M")
ra=$(cat "/sys/class/bdi/$(( (dev >> 8) & 0xfff )):$(( (dev & 0xff) | ((dev >> 12) & 0xfff00) ))/read_ahead_kb" 2>/dev/null)
[ -z "$ra" ] || [ "$ra" = 512 ] || fail "read_ahead_kb is $ra"

note "statfs is the backing filesystem's"
[ "$(stat -f -c %b "$M")" = "$(stat -f -c %b "$B")" ] || fail "statfs differs"
note "the state directory is hidden and protected"
ls -A "$M" | grep -qx .strata && fail ".strata visible in the mount"
ls -A "$M" | grep -qx .trash || fail ".trash missing from the root listing"
mkdir "$M/.strata" 2>/dev/null && fail "could create .strata"
touch "$M/.trash" 2>/dev/null && fail "could create over .trash"

note "rename flags: NOREPLACE and EXCHANGE"
echo A >"$M/ra"; echo B >"$M/rb"
mv --no-clobber "$M/ra" "$M/rb" 2>/dev/null
[ "$(cat "$M/rb")" = B ] || fail "RENAME_NOREPLACE overwrote"
if mv --help | grep -q -- --exchange; then
	mv --exchange "$M/ra" "$M/rb" && [ "$(cat "$M/ra")" = B ] || fail "RENAME_EXCHANGE"
else
	/usr/bin/python3 -c "
import ctypes,os,sys
libc=ctypes.CDLL(None,use_errno=True)
r=libc.renameat2(-100,b'$M/ra',-100,b'$M/rb',2)
sys.exit(0 if r==0 else 1)" && [ "$(cat "$M/ra")" = B ] && [ "$(cat "$M/rb")" = A ] || fail "RENAME_EXCHANGE"
fi

note "fallocate, truncate, symlink/readlink, link, chmod/chown/utimens, xattrs"
fallocate -l 1M "$M/fa" && [ "$(stat -c %s "$M/fa")" = 1048576 ] || fail fallocate
truncate -s 10 "$M/fa" && [ "$(stat -c %s "$M/fa")" = 10 ] || fail truncate
ln -s target "$M/sl" && [ "$(readlink "$M/sl")" = target ] || fail symlink
ln "$M/fa" "$M/fa2" && [ "$(stat -c %h "$M/fa")" = 2 ] || fail link
chmod 4711 "$M/fa" && [ "$(stat -c %a "$M/fa")" = 4711 ] || fail chmod
chown 65534:65534 "$M/fa" && [ "$(stat -c %u:%g "$B/fa")" = 65534:65534 ] || fail chown
touch -h -d "2001-02-03 04:05:06" "$M/sl" && [ "$(stat -c %Y "$M/sl")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] || fail "utimens on a symlink"
setfattr -n user.k -v v "$M/fa2" && [ "$(getfattr --only-values -n user.k "$M/fa2" 2>/dev/null)" = v ] || fail setxattr
setfattr -x user.k "$M/fa2" && ! getfattr -n user.k "$M/fa2" 2>/dev/null || fail removexattr
mkfifo "$M/fifo" && [ -p "$M/fifo" ] || fail mknod
sync -f "$M" && /usr/bin/python3 -c "import os;fd=os.open('$M/fa',os.O_RDWR);os.fsync(fd);os.fdatasync(fd)" || fail fsync

note "caller credentials with allow_other: files created by nobody are nobody's"
fs_umount
fs_mount -o allow_other
mkdir -m 1777 "$M/pub"
as_nobody touch "$M/pub/mine" || fail "nobody cannot create in a 1777 dir"
[ "$(stat -c %U:%G "$B/pub/mine")" = "nobody:nogroup" ] || fail "owner on the backing tree is $(stat -c %U:%G "$B/pub/mine")"
as_nobody touch "$M/x" 2>/dev/null && fail "nobody created a file in root's 755 dir"
echo secret >"$M/pub/rootfile"; chmod 600 "$M/pub/rootfile"
as_nobody cat "$M/pub/rootfile" 2>/dev/null && fail "nobody read a 0600 root file"
as_nobody rm -f "$M/pub/rootfile" 2>/dev/null
[ -e "$M/pub/rootfile" ] || fail "sticky bit not enforced"
fs_umount

note "--help on every filesystem subcommand: its own usage, exit 0"
for sub in "trash list" "trash restore" "trash purge" "rmr status" "rmr drain" "fs status" \
	"journal inspect" "journal replay"; do
	out=$("$ADMIN" $sub --help) || fail "strata-admin $sub --help exited $?"
	echo "$out" | grep -q "^  strata-admin $sub " || fail "strata-admin $sub --help: $out"
	[ "$(echo "$out" | grep -c '^  strata-admin ')" = 1 ] || fail "strata-admin $sub --help shows other commands: $out"
done
"$ADMIN" rmr --help | grep -q "^  strata-admin rmr \[--via-trash\]" || fail "strata-admin rmr --help"
"$BIN/stratafs" --help | grep -q -- "--metrics HOST:PORT" || fail "stratafs --help lacks --metrics"
"$BIN/stratafs" --help | grep -q -- "--log-file PATH" || fail "stratafs --help lacks --log-file"
echo "PASS"
