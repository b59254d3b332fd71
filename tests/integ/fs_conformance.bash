#!/usr/bin/env bash
# `make conformance`: the POSIX conformance suite (pjdfstest, from CONFORMANCE_DIR, default
# ../shared/conformance next to the checkout; never copied into the project) run inside a
# stratafs mount (-o allow_other) of a temporary backing directory. Passes only when every
# test file passes; a missing suite or a machine that cannot mount is a failure, not a skip.
# The mount is removed however the run ends.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-bin}
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
SUITE=${CONFORMANCE_DIR:-$ROOT/../shared/conformance}
RUNNER="$SUITE/run-pjdfstest.sh"

die() {
	echo "conformance: FAIL: $*"
	exit 1
}
[ -x "$RUNNER" ] || die "the suite is not available: $RUNNER not found (set CONFORMANCE_DIR)"
[ "$(id -u)" = 0 ] || die "must run as root (pjdfstest switches users; mounting needs root here)"
[ -e /dev/fuse ] || die "no /dev/fuse"
command -v fusermount3 >/dev/null || die "fusermount3 not installed (ops/install-deps.sh)"
[ -x "$BIN/stratafs" ] || die "build $BIN/stratafs first"

T=$(mktemp -d /tmp/strata-conformance.XXXXXX)
chmod 755 "$T"
B="$T/backing"
M="$T/mnt"
mkdir -p "$B" "$M"
chmod 755 "$B" "$M"
FS_PID=
cleanup() {
	local rc=$?
	if mountpoint -q "$M"; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
	fi
	if [ -n "$FS_PID" ]; then
		kill "$FS_PID" 2>/dev/null
		wait "$FS_PID" 2>/dev/null
	fi
	if [ $rc -ne 0 ]; then
		echo "--- stratafs log (last 20 lines):"
		tail -20 "$T/stratafs.log" 2>/dev/null
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'echo "conformance: interrupted"; exit 130' INT TERM

# CONFORMANCE_FS_ARGS: more stratafs options, e.g. "--journal-dir DIR" (the SSD journal)
# shellcheck disable=SC2086
"$BIN/stratafs" "$B" "$M" -f -o allow_other ${CONFORMANCE_FS_ARGS:-} 2>"$T/stratafs.log" &
FS_PID=$!
for _ in $(seq 1 100); do
	mountpoint -q "$M" && break
	kill -0 "$FS_PID" 2>/dev/null || die "stratafs exited: $(cat "$T/stratafs.log")"
	sleep 0.1
done
mountpoint -q "$M" || die "stratafs did not mount"
echo "conformance: pjdfstest in a stratafs mount of $B"
bash "$RUNNER" "$M" "$@" 2>&1 | tee "$T/run.out"
kill -0 "$FS_PID" 2>/dev/null || die "stratafs died during the suite"
grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/stratafs.log" &&
	die "sanitizer report from stratafs: $(grep -m3 -E 'Sanitizer|runtime error' "$T/stratafs.log")"
# The runner's verdict counts "not ok # TODO" assertions too, which fail natively as well
# (known deviations of Linux that pjdfstest marks as such): judge by files and by the
# assertions that are not TODO, as for the native run.
summary=$(grep -E '^pjdfstest: [0-9]+/[0-9]+ files pass' "$T/run.out" | tail -1)
[ -n "$summary" ] || die "pjdfstest did not run to the end (output above)"
read -r pass total <<<"$(sed -E 's|^pjdfstest: ([0-9]+)/([0-9]+) files pass.*|\1 \2|' <<<"$summary")"
log=$(sed -nE 's|.*\(full log: (.*)\)$|\1|p' <<<"$summary")
real=$(grep '^not ok' "$log" 2>/dev/null | grep -vc '# TODO')
rm -f "$log"
[ "$total" -gt 0 ] && [ "$pass" = "$total" ] || die "$pass/$total test files pass"
[ "$real" = 0 ] || die "$real failed assertions"
echo "conformance: ok, $pass/$total test files pass"
