#!/usr/bin/env bash
# stratad against Redis on this machine, one harness (strata-bench) for both: the serving hot
# path (latest get of one entity x F features; Redis: HMGET of the same F fields), 50
# connections, pipelining 1 and 16, stratad on io_uring and on epoll, persisting to disk
# (--sync batch; Redis without persistence). Prints a table of ratios and writes a PNG.
# Sizes: BENCH_ENTITIES (default 1000000), BENCH_SECONDS (10); BENCH_QUICK=1 shrinks both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
ENTITIES=${BENCH_ENTITIES:-1000000}
SECS=${BENCH_SECONDS:-10}
FEATURES=10
CONNS=50
if [ "${BENCH_QUICK:-0}" = 1 ]; then ENTITIES=100000; SECS=3; fi
OUT=${BENCH_OUT:-build/bench}
mkdir -p "$OUT"
T=$(mktemp -d /tmp/strata-bench-srv.XXXXXX)
SPID= RPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
for b in stratad strata strata-bench; do
  [ -x "$BIN/$b" ] || { echo "bench-server: $BIN/$b missing: run make first"; exit 1; }
done
command -v redis-server >/dev/null || { echo "bench-server: redis-server not installed"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_stratad() { # io [extra flags...]
  local io=$1; shift
  rm -f "$T/ready"
  "$BIN/stratad" --data-dir "$T/data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --io "$io" \
    --sync batch --row-cache 1g --ready-file "$T/ready" "$@" 2>>"$T/stratad.log" &
  SPID=$!
  for _ in $(seq 300); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || { echo "stratad did not start:"; tail "$T/stratad.log"; exit 1; }
  SADDR=$(awk '{print $1}' "$T/ready")
}
stop_stratad() { kill "$SPID"; wait "$SPID" || true; SPID=; }

echo "machine: $(nproc) cores, $(uname -r); $ENTITIES entities x $FEATURES features; ${SECS}s per run"

# Redis, no persistence (its fastest configuration).
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$T/redis.log" 2>&1 &
RPID=$!
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/strata-bench" --target redis --addr 127.0.0.1:$RPORT --load --entities "$ENTITIES" \
  --features $FEATURES

# stratad: the same entities through a preload job (CSV -> sorted SST files, ingested).
start_stratad uring
feats=(); for f in $(seq 0 $((FEATURES - 1))); do feats+=(--feature "f$f:i64"); done
"$BIN/strata" --addr "$SADDR" table create bench "${feats[@]}" >/dev/null
awk -v n="$ENTITIES" -v nf=$FEATURES 'BEGIN {
  printf "entity,ts"; for (f = 0; f < nf; f++) printf ",f%d", f; printf "\n";
  for (k = 0; k < n; k++) { printf "e%07d,2026-01-01T00:00:00Z", k;
    for (f = 0; f < nf; f++) printf ",%d", k * 100 + f; printf "\n" } }' > "$T/bench.csv"
t0=$(date +%s.%N)
"$BIN/strata" --addr "$SADDR" preload bench "$T/bench.csv" --wait >/dev/null
echo "stratad: preloaded $ENTITIES entities in $(echo "$(date +%s.%N) - $t0" | bc) s"
rm -f "$T/bench.csv"

# Serving runs warm: one read of every entity first (what a serving tier sees in steady
# state; the row cache then answers on the network thread).
warm() { "$BIN/strata-bench" --target strata --addr "$1" --entities "$ENTITIES" \
  --features $FEATURES --conns 8 --op mget --mget-k 50 --keys seq \
  --count $((ENTITIES / 50 + 1)) --warmup 0 >/dev/null; }
warm "$SADDR"

RES="$OUT/server-bench.jsonl"
: > "$RES"
run() { # label target addr pipeline [op]
  "$BIN/strata-bench" --target "$2" --addr "$3" --entities "$ENTITIES" --features $FEATURES \
    --conns $CONNS --pipeline "$4" --duration "$SECS" --warmup 1 --op "${5:-get}" --json \
    --label "$1" | tee -a "$RES"
}
for p in 1 16; do run "redis-p$p" redis "127.0.0.1:$RPORT" $p; done
run "redis-ping" redis "127.0.0.1:$RPORT" 1 ping
for io in uring epoll; do
  [ "$io" = epoll ] && { stop_stratad; start_stratad epoll; warm "$SADDR"; }
  for p in 1 16; do run "$io-p$p" strata "$SADDR" $p; done
  # the protocol and network path alone (no store call): where the time goes
  run "$io-ping" strata "$SADDR" 1 ping
done
# For comparison: reads run on two network threads instead of the read pool (fine when the
# data is in memory; a disk read would stall every connection of that thread).
stop_stratad; start_stratad uring --inline-reads 1 --threads 2; warm "$SADDR"
for p in 1 16; do run "inline-p$p" strata "$SADDR" $p; done
stop_stratad

python3 - "$RES" "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in rows}
print()
print("%-22s %12s %12s %7s %10s %10s %7s" % ("get 1x10, 50 conns", "strata op/s", "redis op/s",
      "ratio", "strata p99", "redis p99", "p99 x"))
dat = open(sys.argv[2] + "/server-bench.dat", "w")
for io in ("uring", "epoll"):
    for p in (1, 16):
        s, r = by["%s-p%d" % (io, p)], by["redis-p%d" % p]
        name = "%s pipeline %d" % (io, p)
        print("%-22s %12.0f %12.0f %6.2fx %8d us %8d us %6.2fx" % (name, s["ops_per_s"],
              r["ops_per_s"], s["ops_per_s"] / r["ops_per_s"], s["p99_us"], r["p99_us"],
              s["p99_us"] / max(r["p99_us"], 1)))
        dat.write('"%s-P%d" %f %f\n' % (io, p, s["ops_per_s"], r["ops_per_s"]))
for p in (1, 16):
    s, r = by["inline-p%d" % p], by["redis-p%d" % p]
    print("%-22s %12.0f %12.0f %6.2fx %8d us %8d us %6.2fx" % ("uring inline2 P%d" % p,
          s["ops_per_s"], r["ops_per_s"], s["ops_per_s"] / r["ops_per_s"], s["p99_us"],
          r["p99_us"], s["p99_us"] / max(r["p99_us"], 1)))
for io in ("uring", "epoll"):
    s, r = by["%s-ping" % io], by["redis-ping"]
    print("%-22s %12.0f %12.0f %6.2fx %8d us %8d us %6.2fx" % ("%s ping (no store)" % io,
          s["ops_per_s"], r["ops_per_s"], s["ops_per_s"] / r["ops_per_s"], s["p99_us"],
          r["p99_us"], s["p99_us"] / max(r["p99_us"], 1)))
print("target (uring, pipeline 1): throughput >= 1.00x Redis, p99 <= 1.50x Redis")
PY
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal png size 900,500
set output "$OUT/server-bench.png"
set title "stratad vs Redis: latest get of 1 entity x $FEATURES features, $CONNS connections"
set style data histograms
set style fill solid 0.8 border -1
set ylabel "ops/s"
set key top left
plot "$OUT/server-bench.dat" using 2:xtic(1) title "stratad", "" using 3 title "Redis HMGET"
GP
  echo "plot: $OUT/server-bench.png"
fi
