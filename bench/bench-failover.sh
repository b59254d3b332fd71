#!/usr/bin/env bash
# Automatic failover with etcd (docs/replication.md), measured in this run on this machine:
#   1. write throughput at 50 concurrent writers (strata-bench put, semi-sync K=1, three
#      nodes) with etcd coordination versus the same cluster with a static layout file
#      (target >= 0.95x): leases and elections must not tax the write path;
#   2. failover with default lease settings (TTL 2 s): kill -9 of the primary under a write
#      probe and four readers going through the seed list; the time from the kill to the
#      first acknowledged write on the new primary (target <= 3 s), and the readers' error
#      rate from the kill until then. ROUNDS rounds (default 5; BENCH_QUICK=1: 2).
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/integ/repl_etcd_common.bash
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-5}
if [ "${BENCH_QUICK:-0}" = 1 ]; then SECS=3; ROUNDS=2; fi
SYNC=(--min-sync-replicas 1 --sync-timeout 5s --sync batch)

put_rate() { # ADDR -> ops/s
  sb --addr "$1" --op put --conns 50 --features 2 --entities 100000 --table w \
    --duration "$SECS" --warmup 1 2>&1 | sed -n 's/.*: \([0-9]*\) ops\/s.*/\1/p'
}
run_cluster() { # static|etcd
  for n in a b c; do [ -n "${PID[$n]:-}" ] && stop $n; rm -rf "${T:?}/$n"; done
  if [ "$1" = etcd ]; then # a fresh prefix: the copies are fresh too
    PREFIX=/strata/run$((++RUNS)); CLUSTER="etcd://127.0.0.1:$ECP$PREFIX"
    "$ADM" cluster init --cluster "$CLUSTER" "$T/cluster.ini" >/dev/null
  else CLUSTER=$T/cluster.ini; fi
  for n in a b c; do start $n "${SYNC[@]}"; done
  [ "$1" = static ] || wait_leader 0 >/dev/null
  sb --addr "${ADDR[a]}" --load --entities 1 --features 2 --table w >/dev/null 2>&1
  sleep 0.5
}

etcd_cluster 4 a b c
RUNS=0
# 1. throughput, alternating so that drift of a shared machine hits both sides alike
RS=(); RE=()
for i in 1 2; do
  run_cluster static; RS+=("$(put_rate "${ADDR[a]}")")
  run_cluster etcd; RE+=("$(put_rate "${ADDR[a]}")")
done

# 2. failover: one shard, so that one kill takes down the only primary
for n in a b c; do [ -n "${PID[$n]:-}" ] && stop $n; rm -rf "${T:?}/$n"; done
stop_etcd; rm -rf "$T/etcd"; unset ECP PREFIX
etcd_cluster 1 a b c
for n in a b c; do start $n "${SYNC[@]}"; done
wait_leader 0 >/dev/null
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null
for _ in $(seq 100); do $S --addr "${ADDR[c]}" table show t >/dev/null 2>&1 && break; sleep 0.05; done
$S --addr "${ADDR[a]}" put t r x=1 >/dev/null
reader() { # SEEDS OUT: reads until $T/stop, one "t_ns ok|err" line per read
  while [ ! -e "$T/stop" ]; do
    if $S --addr "$1" get t r x >/dev/null 2>&1; then echo "$(date +%s%N) ok"; else echo "$(date +%s%N) err"; fi
  done > "$2"
}
FT=(); ERRS=0; READS=0
for round in $(seq "$ROUNDS"); do
  p=$(leader 0); wait_caught_up "$([ "$p" = b ] && echo c || echo b)" 600
  seeds="${ADDR[$p]},${ADDR[a]},${ADDR[b]},${ADDR[c]}"
  rm -f "$T/stop"; RP=()
  for i in 1 2 3 4; do reader "$seeds" "$T/reads.$i" & RP+=($!); done
  sleep 1
  tk=$(date +%s%N)
  kill9 "$p"
  until $S --addr "$seeds" put t "f$round" x=$round >/dev/null 2>&1; do
    [ $(( ($(date +%s%N) - tk) / 1000000000 )) -gt 30 ] && { echo "bench-failover: no write after 30 s"; exit 1; }
    sleep 0.01
  done
  tw=$(date +%s%N)
  touch "$T/stop"; for r in "${RP[@]}"; do wait "$r"; done
  FT+=("$(( (tw - tk) / 1000000 ))")
  read -r e n < <(cat "$T"/reads.* | awk -v a="$tk" -v b="$tw" '$1 >= a && $1 <= b {n++; if ($2 == "err") e++} END {print e + 0, n + 0}')
  ERRS=$((ERRS + e)); READS=$((READS + n))
  start "$p" "${SYNC[@]}"
done
/usr/bin/python3 - "${RS[*]}" "${RE[*]}" "${FT[*]}" "$ERRS" "$READS" <<'PY'
import statistics, sys
rs = [float(x) for x in sys.argv[1].split()]; re_ = [float(x) for x in sys.argv[2].split()]
ft = sorted(int(x) for x in sys.argv[3].split()); errs, reads = int(sys.argv[4]), int(sys.argv[5])
s, e = statistics.mean(rs), statistics.mean(re_)
print("| measurement | value | peer (same run) | ratio | target |")
print("|---|---|---|---|---|")
print("| put ops/s, 50 writers, semi-sync K=1, etcd coordination | %.0f | static layout %.0f | %.2fx | >= 0.95x |" % (e, s, e / s))
print("| kill -9 -> first acknowledged write (ms), %d rounds: median / max | %d / %d | - | - | <= 3000 |" % (len(ft), statistics.median(ft), ft[-1]))
print("| read errors during failover (4 readers, seed list) | %d of %d (%.1f%%) | - | - | - |" % (errs, reads, 100.0 * errs / max(reads, 1)))
PY
