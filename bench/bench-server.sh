#!/usr/bin/env bash
# stratad against Redis on this machine, one harness (strata-bench) for both: the serving hot
# path (latest get of one entity x F features; Redis: HMGET of the same F fields), 50
# connections, pipelining 1 and 16, stratad on io_uring and on epoll, persisting to disk
# (--sync batch; Redis without persistence); stratad's RESP port driven by the identical
# hiredis client; 4 client threads against 2 network threads; a multi-get of 50 entities x F
# (Redis and RESP: 50 pipelined HMGETs). Every comparison runs as a pair, Redis then stratad
# back to back, BENCH_REPEAT times (default 2), so machine noise hits both alike: the table
# shows the median ratio and the spread of the ratios. Writes a PNG.
# Sizes: BENCH_ENTITIES (default 1000000), BENCH_SECONDS (10); BENCH_QUICK=1 shrinks both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
ENTITIES=${BENCH_ENTITIES:-1000000}
SECS=${BENCH_SECONDS:-10}
REPEAT=${BENCH_REPEAT:-2}
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
    --resp 127.0.0.1:0 --sync batch --row-cache 1g --ready-file "$T/ready" "$@" \
    2>>"$T/stratad.log" &
  SPID=$!
  for _ in $(seq 300); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || { echo "stratad did not start:"; tail "$T/stratad.log"; exit 1; }
  SADDR=$(awk '{print $1}' "$T/ready")
  RESPADDR=127.0.0.1:$(awk '{print $5}' "$T/ready")
}
stop_stratad() { kill "$SPID"; wait "$SPID" || true; SPID=; }

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "$ENTITIES entities x $FEATURES features; ${SECS}s per run, $REPEAT pairs each"

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
run() { # label target addr pipeline [op [extra strata-bench flags...]]
  local label=$1 target=$2 addr=$3 p=$4 op=${5:-get}
  shift 5 2>/dev/null || shift $#
  "$BIN/strata-bench" --target "$target" --addr "$addr" --entities "$ENTITIES" \
    --features $FEATURES --conns $CONNS --pipeline "$p" --duration "$SECS" --warmup 1 \
    --op "$op" --mget-k 50 --json --label "$label" "$@" | tee -a "$RES"
}
# pair NAME PIPELINE OP TARGET ADDR [flags]: Redis, then the target, back to back.
pair() {
  local name=$1 p=$2 op=$3 target=$4 addr=$5
  shift 5
  run "$name/redis" redis "127.0.0.1:$RPORT" "$p" "$op" "$@"
  run "$name/strata" "$target" "$addr" "$p" "$op" "$@"
}
for rep in $(seq "$REPEAT"); do
  pair uring-p1 1 get strata "$SADDR"
  pair uring-p16 16 get strata "$SADDR"
  pair resp-p1 1 get resp "$RESPADDR"
  pair resp-p16 16 get resp "$RESPADDR"
  pair mget50 1 mget strata "$SADDR"
  pair resp-mget50 1 mget resp "$RESPADDR"
  pair ping 1 ping strata "$SADDR"
done
stop_stratad; start_stratad epoll; warm "$SADDR"
for rep in $(seq "$REPEAT"); do
  pair epoll-p1 1 get strata "$SADDR"
  pair epoll-p16 16 get strata "$SADDR"
done
# 4 client threads against 2 network threads (Redis: the same 4 client threads).
stop_stratad; start_stratad uring --threads 2; warm "$SADDR"
for rep in $(seq "$REPEAT"); do
  pair net2-c4-p1 1 get strata "$SADDR" --threads 4
  pair net2-c4-p16 16 get strata "$SADDR" --threads 4
done
# The same with a 100 us scheduler slice for the network threads (docs/server.md, third round).
stop_stratad; start_stratad uring --threads 2 --net-slice-us 100; warm "$SADDR"
for rep in $(seq "$REPEAT"); do
  pair net2-c4-p1-slice 1 get strata "$SADDR" --threads 4
done
stop_stratad

python3 - "$RES" "$OUT" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = {}
for r in rows:
    name, side = r["label"].split("/")
    runs.setdefault(name, {"redis": [], "strata": []})[side].append(r)
def summary(name):
    rs, ss = runs[name]["redis"], runs[name]["strata"]
    ratios = [s["ops_per_s"] / r["ops_per_s"] for r, s in zip(rs, ss)]
    p99 = [s["p99_us"] / max(r["p99_us"], 1) for r, s in zip(rs, ss)]
    med = lambda v: statistics.median(v)
    # fairness: the least served connection's operations over the most served one's
    fair = lambda v: med([x.get("conn_ops_min", 0) / max(x.get("conn_ops_max", 1), 1) for x in v])
    return (med([s["ops_per_s"] for s in ss]), med([r["ops_per_s"] for r in rs]), med(ratios),
            min(ratios), max(ratios), med([s["p99_us"] for s in ss]),
            med([r["p99_us"] for r in rs]), med(p99), fair(ss), fair(rs))
rows_out = [
    ("uring-p1", "uring, pipeline 1", "get 1x10, 50 conns"),
    ("uring-p16", "uring, pipeline 16", ""),
    ("epoll-p1", "epoll, pipeline 1", ""),
    ("epoll-p16", "epoll, pipeline 16", ""),
    ("resp-p1", "RESP port, pipeline 1", "identical hiredis client"),
    ("resp-p16", "RESP port, pipeline 16", ""),
    ("net2-c4-p1", "2 net thr, 4 client thr, P1", ""),
    ("net2-c4-p16", "2 net thr, 4 client thr, P16", ""),
    ("net2-c4-p1-slice", "  the same P1, --net-slice-us 100", ""),
    ("mget50", "multi-get 50x10", "Redis: 50 pipelined HMGET"),
    ("resp-mget50", "RESP, 50 pipelined HMGET", ""),
    ("ping", "ping (no store)", "Redis: PING"),
]
print()
print("%-30s %10s %10s %7s %13s %8s %8s %6s %11s" % ("", "strata/s", "redis/s", "ratio",
      "ratio range", "p99 us", "redis", "p99 x", "fair s/r"))
dat = open(sys.argv[2] + "/server-bench.dat", "w")
for key, name, note in rows_out:
    if key not in runs:
        continue
    s, r, ratio, lo, hi, sp, rp, px, fs, fr = summary(key)
    print("%-30s %10.0f %10.0f %6.2fx %5.2f-%5.2fx %8d %8d %5.2fx %5.2f/%4.2f  %s" % (name, s, r,
          ratio, lo, hi, sp, rp, px, fs, fr, note))
    dat.write('"%s" %f %f\n' % (key, s, r))
u1, e1 = summary("uring-p1"), summary("epoll-p1")
u16, e16 = summary("uring-p16"), summary("epoll-p16")
# epoll vs io_uring: each normalised by its own Redis pair, so load changes between the
# two servers' runs cancel out.
print("epoll / io_uring (each over its Redis pair): pipeline 1 %.2fx, pipeline 16 %.2fx"
      % (e1[2] / u1[2], e16[2] / u16[2]))
print("targets: uring P1 >= 1.10x Redis with p99 <= 1.20x; P16 >= 1.00x; epoll >= 0.90x of uring")
print("fair s/r: per-connection operations, fewest over most, stratad / Redis (1.00 = even)")
PY
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal png size 1100,500
set output "$OUT/server-bench.png"
set title "stratad vs Redis: latest get of 1 entity x $FEATURES features, $CONNS connections"
set style data histograms
set style fill solid 0.8 border -1
set ylabel "ops/s"
set xtics rotate by -30
set key top left
plot "$OUT/server-bench.dat" using 2:xtic(1) title "stratad", "" using 3 title "Redis"
GP
  echo "plot: $OUT/server-bench.png"
fi
