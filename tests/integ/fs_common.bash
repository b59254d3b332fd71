# Sourced by tests/integ/fs_*.sh: a temporary backing dir + mount point, stratafs started in
# the foreground (so sanitizer reports land in its log), cleanup that always unmounts, a
# whole-script timeout, and how to rerun on failure.
# Exit codes: 0 pass, 77 skip, anything else fail.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-bin}
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
ADMIN="$BIN/strata-admin"
SCRIPT="$ROOT/tests/integ/$(basename "$0")"

if [ -z "${FS_TEST_INNER:-}" ]; then
	export FS_TEST_INNER=1 BIN
	exec timeout -k 10 "${FS_TEST_TIMEOUT:-240}" bash "$SCRIPT" "$@"
fi

[ -e /dev/fuse ] || { echo "skip: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || { echo "skip: fusermount3 not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: mounting needs root here"; exit 77; }
[ -x "$BIN/stratafs" ] && [ -x "$ADMIN" ] || { echo "skip: build $BIN/stratafs first"; exit 77; }

T=$(mktemp -d "/tmp/strata-$(basename "$0" .sh).XXXXXX")
chmod 755 "$T"
B="$T/backing"
M="$T/mnt"
mkdir -p "$B" "$M"
chmod 755 "$B" "$M"
FS_PID=
LOG="$T/stratafs.log"

fail() {
	echo "FAIL: $*"
	exit 1
}

note() { echo "--- $*"; }

# fs_mount [stratafs options...]: mounts B on M and waits until it answers.
fs_mount() {
	"$BIN/stratafs" "$B" "$M" -f "$@" 2>>"$LOG" &
	FS_PID=$!
	for _ in $(seq 1 100); do
		if mountpoint -q "$M" && "$ADMIN" rmr status --mount "$M" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$FS_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$LOG"
	fail "stratafs did not come up"
}

# fs_umount: clean unmount; the daemon must exit 0 with no sanitizer report.
fs_umount() {
	[ -n "$FS_PID" ] || return 0
	local rc=0
	fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
	wait "$FS_PID" || rc=$?
	FS_PID=
	if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$LOG"; then
		cat "$LOG"
		fail "sanitizer report from stratafs"
	fi
	[ $rc -eq 0 ] || { tail -20 "$LOG"; fail "stratafs exited with $rc"; }
}

# fs_kill9: the crash case.
fs_kill9() {
	kill -9 "$FS_PID"
	wait "$FS_PID" 2>/dev/null
	FS_PID=
	fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
}

fs_cleanup() {
	local rc=$?
	if [ -n "$FS_PID" ]; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
		kill "$FS_PID" 2>/dev/null
		wait "$FS_PID" 2>/dev/null
	fi
	mountpoint -q "$M" && umount -l "$M"
	if [ $rc -ne 0 ]; then
		echo "--- stratafs log (last 30 lines):"
		tail -30 "$LOG" 2>/dev/null
		echo "--- to rerun by hand: BIN=$BIN bash $SCRIPT   (files kept in $T)"
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap fs_cleanup EXIT
trap 'echo "FAIL: timeout or signal"; exit 124' TERM INT

# as_nobody CMD...: runs a command as nobody:nogroup with no supplementary groups.
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
