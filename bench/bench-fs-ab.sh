#!/usr/bin/env bash
# Two stratafs builds against each other and the native directory in the same minutes: tar x,
# find -type f -exec stat (caches dropped) and rm -rf of /usr/include, on a backing directory
# per side, the order of the sides rotating per round. Times move with the machine's load;
# what does not is printed beside them: FUSE requests per file and the daemon's CPU time per
# request (/proc/PID/stat). Every round's tar x runs before any rm -rf (ext4 without a
# journal makes creates pay for inodes freed in the last minutes, see docs/stratafs.md).
#   bench-fs-ab.sh [--rounds N] [--steps tar,find,rm] PEER [STRATAFS_OPTION...]
# PEER: a directory holding stratafs and strata-admin, or a git revision (built in a
# temporary worktree, removed at the end). The other side is this tree's bin/. Needs root.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
STEPS="tar find rm"
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--steps) STEPS=${2//,/ }; shift 2 ;;
	-*) echo "usage: bench-fs-ab.sh [--rounds N] [--steps tar,find,rm] PEER [STRATAFS_OPTION...]"; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "bench-fs-ab.sh: PEER missing (a bin directory or a git revision)"; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "bench-fs-ab.sh: --rounds wants 1..99"; exit 2; }
PEER=$1
shift
[ "$(id -u)" = 0 ] || { echo "bench-fs-ab: needs root to mount; skipped"; exit 0; }
[ -x "$ROOT/bin/stratafs" ] || { echo "bench-fs-ab: build first (make)"; exit 1; }

T=$(mktemp -d /tmp/strata-bench-fs-ab.XXXXXX)
declare -A BIN MNT PID
SIDES=(native)
WT=
cleanup() {
	for n in "${SIDES[@]}"; do
		[ "$n" = native ] || [ -z "${PID[$n]:-}" ] && continue
		fusermount3 -u "${MNT[$n]}" 2>/dev/null || umount -l "${MNT[$n]}"
		wait "${PID[$n]}" 2>/dev/null
	done
	[ -n "$WT" ] && git -C "$ROOT" worktree remove --force "$WT"
	rm -rf "$T"
}
trap cleanup EXIT

if [ -x "$PEER/stratafs" ] && [ -x "$PEER/strata-admin" ]; then
	BIN[peer]=$(cd "$PEER" && pwd)
else
	WT=$T/peer-src
	git -C "$ROOT" worktree add --detach "$WT" "$PEER" >/dev/null 2>&1 ||
		{ echo "bench-fs-ab: $PEER is neither a bin directory nor a revision"; WT=; exit 1; }
	make -C "$WT" -j2 bin/stratafs bin/strata-admin >"$T/peer-build.log" 2>&1 ||
		{ tail -20 "$T/peer-build.log"; exit 1; }
	BIN[peer]=$WT/bin
fi
BIN[head]=$ROOT/bin
mkdir -p "$T/b/native"
for n in peer head; do
	MNT[$n]=$T/m/$n
	mkdir -p "$T/b/$n" "${MNT[$n]}"
	"${BIN[$n]}/stratafs" "$T/b/$n" "${MNT[$n]}" -f --trash-retention 1h "$@" 2>>"$T/$n.log" &
	PID[$n]=$!
	SIDES+=("$n")
	for _ in $(seq 1 100); do mountpoint -q "${MNT[$n]}" && break; sleep 0.1; done
	mountpoint -q "${MNT[$n]}" || { cat "$T/$n.log"; exit 1; }
done

tar -C /usr -cf "$T/inc.tar" include 2>/dev/null
NF=$(tar -tf "$T/inc.tar" | grep -vc '/$')
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
reqs() {
	"${BIN[$1]}/strata-admin" fs status --mount "${MNT[$1]}" --json |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"]["total"])'
}
dir() { if [ "$1" = native ]; then echo "$T/b/native"; else echo "${MNT[$1]}"; fi; }
step() { # STEP SIDE ROUND: one line of results
	local d c0=0 c1=0 q0=0 q1=0 t0 t1 sys
	d=$(dir "$2")/r$3
	case $1 in
	tar) mkdir -p "$d"; sync ;;
	find) sync; echo 3 >/proc/sys/vm/drop_caches ;;
	rm) sync ;;
	esac
	[ "$2" = native ] || { c0=$(ticks "${PID[$2]}"); q0=$(reqs "$2"); }
	t0=$(date +%s%N)
	case $1 in
	tar) sys=$({ /usr/bin/time -f %S tar -C "$d" -xf "$T/inc.tar"; } 2>&1 | tail -1) ;;
	find) sys=$({ /usr/bin/time -f %S find "$d" -type f -exec stat {} + >/dev/null; } 2>&1 | tail -1) ;;
	rm) sys=$({ /usr/bin/time -f %S rm -rf "$d"; } 2>&1 | tail -1) ;;
	esac
	t1=$(date +%s%N)
	[ "$2" = native ] || { c1=$(ticks "${PID[$2]}"); q1=$(reqs "$2"); }
	awk -v s="$1" -v n="$2" -v r="$3" -v t="$(((t1 - t0) / 1000000))" -v sys="$sys" \
		-v dq="$((q1 - q0))" -v dc="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v nf="$NF" 'BEGIN {
		printf "%-5s %2d  %-6s %7d ms  caller sys %5.2f s", s, r, n, t, sys
		if (n != "native")
			printf "  requests/file %5.2f  daemon %6.0f ms, %5.1f us/request", dq / nf,
				dc * 1000 / hz, dq ? dc * 1e6 / hz / dq : 0
		printf "\n" }'
}
echo "bench-fs-ab: $NF files; peer ${PEER} (${BIN[peer]}), head $ROOT/bin; options: ${*:-none}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $STEPS; do
	for r in $(seq 1 "$ROUNDS"); do
		k=$(((r - 1) % ${#SIDES[@]}))
		for n in "${SIDES[@]:k}" "${SIDES[@]:0:k}"; do step "$s" "$n" "$r"; done
	done
	echo "  (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
