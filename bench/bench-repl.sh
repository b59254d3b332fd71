#!/usr/bin/env bash
# Replication cost and speed, all measured in this run on this machine:
#   1. write throughput at 50 concurrent writers (strata-bench put): unreplicated stratad vs
#      a primary with two replicas in async mode vs semi-sync K=1 (target >= 0.7x), in
#      BENCH_TP_ROUNDS rounds (the median round by the semi-sync ratio is reported);
#   2. replication lag (write acknowledged on the primary -> visible on a replica) p50/p99
#      while a background load runs at about half of the async peak (target p99 <= 10 ms);
#   3. resync throughput (MB/s) of a fresh replica versus a plain `cp -r` of the same
#      checkpoint files (target >= 0.8x), for each data set of BENCH_RESYNC_SIZES.
# Sizes: BENCH_SECONDS (default 10), BENCH_ENTITIES (default 400000); BENCH_QUICK=1 shrinks.
# BENCH_PARTS (default tp,lag,resync) runs some of the three parts only; BENCH_KEEPLOG=FILE
# keeps the log of replica b (the resync timings of each install) at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
SECS=${BENCH_SECONDS:-10}
ENTITIES=${BENCH_ENTITIES:-400000}
if [ "${BENCH_QUICK:-0}" = 1 ]; then SECS=3; ENTITIES=100000; fi
T=$(mktemp -d /tmp/strata-bench-repl.XXXXXX)
declare -A PID ADDR
cleanup() { for p in "${PID[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; [ -n "${BENCH_KEEPLOG:-}" ] && cp "$T/b.log" "$BENCH_KEEPLOG" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
trap 'echo "bench-repl: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for n in a b c; do ADDR[$n]=127.0.0.1:$(free_port); done
{ echo "[cluster]"; echo "shards = 4"
  for n in a b c; do echo "[node $n]"; echo "addr = ${ADDR[$n]}"; echo "repl = 127.0.0.1:$(free_port)"; done
  echo "[shard *]"; echo "primary = a"; echo "replicas = b c"; } > "$T/cluster.ini"

start() { # NAME DATADIR [flags...]
  local n=$1 d=$2; shift 2
  rm -f "$T/$n.ready"
  "$BIN/stratad" --data-dir "$d" --listen "${ADDR[$n]}" --admin off --sync batch \
    --ready-file "$T/$n.ready" "$@" >>"$T/$n.log" 2>&1 &
  PID[$n]=$!
  for _ in $(seq 300); do [ -s "$T/$n.ready" ] && return; sleep 0.05; done
  echo "bench-repl: $n did not start"; tail "$T/$n.log"; exit 1
}
stop_all() { for n in "${!PID[@]}"; do kill "${PID[$n]}"; wait "${PID[$n]}" 2>/dev/null || true; done; PID=(); }
cluster() { # MODE-FLAGS...
  rm -rf "$T"/d-*
  for n in b c a; do start $n "$T/d-$n" --cluster "$T/cluster.ini" --node $n "$@"; done
}
PARTS=",${BENCH_PARTS:-tp,lag,resync},"
part() { [[ $PARTS == *",$1,"* ]]; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process
put_rate() { # ADDR CONNS -> ops/s; CPU.us: each running stratad's CPU µs per write
  local n t0=() t1=() i=0 ops
  for n in a b c; do t0+=("$([ -n "${PID[$n]:-}" ] && ticks "${PID[$n]}" || echo -)"); done
  ops=$("$BIN/strata-bench" --addr "$1" --op put --conns "$2" --features 2 --entities 100000 \
    --table w --duration "$SECS" --warmup 1 2>&1 | sed -n 's/.*: \([0-9]*\) ops\/s.*/\1/p')
  for n in a b c; do t1+=("$([ -n "${PID[$n]:-}" ] && ticks "${PID[$n]}" || echo -)"); done
  # the ticks cover the warmup second too: writes = ops/s x (duration + 1)
  for n in a b c; do
    [ "${t0[$i]}" = - ] || /usr/bin/python3 -c "print('$n %.0f' % ((${t1[$i]} - ${t0[$i]}) * 1e6 / $(getconf CLK_TCK) / max(1, $ops * ($SECS + 1))), end=' ')"
    i=$((i + 1))
  done > "$T/cpu.us"
  echo "$ops"
}
mktable() { "$BIN/strata-bench" --addr "$1" --load --entities 1 --features 2 --table w >/dev/null 2>&1; }

# 1. throughput: BENCH_TP_ROUNDS (default 3) rounds, each unreplicated, async and semi-sync
# one after the other, so that the other work on these shared cores weighs on all three
# alike; each ratio is taken within its round, and the median round (by the semi-sync
# ratio) is reported, with every round listed
TPR=${BENCH_TP_ROUNDS:-3}
: > "$T/tp.rounds"
R0=0 R1=0 R2=0 L0=0 L2=0 TPALL=- CPUALL=-
for round in $(seq "$TPR"); do
  part tp || break
  rm -rf "$T/single"; start a "$T/single"; mktable "${ADDR[a]}"
  r0=$(put_rate "${ADDR[a]}" 50); c0=$(cat "$T/cpu.us")
  [ "$round" = 1 ] && L0=$(put_rate "${ADDR[a]}" 1); stop_all
  cluster; mktable "${ADDR[a]}"; sleep 0.5
  r1=$(put_rate "${ADDR[a]}" 50); c1=$(cat "$T/cpu.us"); stop_all
  cluster --min-sync-replicas 1 --sync-timeout 5s; mktable "${ADDR[a]}"; sleep 0.5
  r2=$(put_rate "${ADDR[a]}" 50); c2=$(cat "$T/cpu.us")
  [ "$round" = 1 ] && L2=$(put_rate "${ADDR[a]}" 1)
  [ "$round" = "$TPR" ] || stop_all
  echo "$r0 $r1 $r2" >> "$T/tp.rounds"
  echo "unreplicated ${c0}| async ${c1}| semi-sync ${c2}" >> "$T/cpu.rounds"
done
if part tp; then
read -r R0 R1 R2 <<< "$(/usr/bin/python3 -c '
import sys
r = [tuple(map(float, l.split())) for l in sys.stdin]
print("%.0f %.0f %.0f" % sorted(r, key=lambda x: x[2] / x[0])[len(r) // 2])' < "$T/tp.rounds")"
TPALL=$(/usr/bin/python3 -c "
for l in open('$T/tp.rounds'):
    r0, r1, r2 = map(float, l.split()); print('%.0f/%.0f/%.0f (%.2fx/%.2fx)' % (r0, r1, r2, r1 / r0, r2 / r0), end='  ')")
CPUALL=$(sed 's/$/;/' "$T/cpu.rounds" | tr '\n' ' ')
fi

# 2. lag at about half the async peak: writers throttled by a probe-paced load
LAG="0 0 0" BGRATE=0
if part lag; then
stop_all; cluster; mktable "${ADDR[a]}"; sleep 0.5
"$BIN/strata-bench" --addr "${ADDR[a]}" --op put --conns 8 --features 2 --entities 100000 \
  --table w --duration $((SECS + 5)) --warmup 0 > "$T/bg.out" 2>&1 &
BG=$!
sleep 1
LAG=$(PYTHONPATH=$PWD/client/python /usr/bin/python3 - "${ADDR[a]}" "${ADDR[b]}" "$SECS" <<'PY'
import sys, time, strata
p, r = strata.connect(sys.argv[1]), strata.connect(sys.argv[2])
lags, end, i = [], time.time() + float(sys.argv[3]), 0
while time.time() < end:
    i += 1
    p.put("w", "probe", {"f0": i})
    t0 = time.perf_counter()
    while True:
        v = r.get("w", ["probe"], ["f0"]).to_dict()["f0"]
        v = list(v.values())[0] if isinstance(v, dict) else v[0]
        if v == i:
            break
    lags.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.005)
lags.sort()
print("%.2f %.2f %d" % (lags[len(lags) // 2], lags[int(len(lags) * 0.99)], len(lags)))
PY
)
wait $BG
BGRATE=$(sed -n 's/.*: \([0-9]*\) ops\/s.*/\1/p' "$T/bg.out")
fi

# 3. resync throughput vs cp -r of the same files, for each data set of BENCH_RESYNC_SIZES
# (ENTITIES:VALUE-SIZE[:random] x 10 features; default "$ENTITIES:32 40000:1000:random":
# ~43 MB of compressible values, where the per-shard fixed costs weigh, and ~410 MB of
# random ones, which is mostly bulk transfer)
ROUNDS=${BENCH_RESYNC_ROUNDS:-3} RSALL=
: > "$T/resync.sizes"
resync_size() { # ENTITIES:VALUE-SIZE[:random]: appends "BYTES RS CP RN CPN" to resync.sizes
local spec=(${1//:/ })
stop_all; rm -rf "$T"/d-*
: > "$T/b.log"
start a "$T/d-a" --cluster "$T/cluster.ini" --node a
"$BIN/strata-bench" --addr "${ADDR[a]}" --load --entities "${spec[0]}" --features 10 \
  --value-size "${spec[1]}" ${spec[2]:+--value-random} --table big >/dev/null
start b "$T/d-b" --cluster "$T/cluster.ini" --node b
for _ in $(seq 12000); do [ "$(grep -c 'resync installed' "$T/b.log")" -ge 4 ] && break; sleep 0.01; done
[ "$(grep -c 'resync installed' "$T/b.log")" -ge 4 ] || { echo "bench-repl: resync did not finish"; tail "$T/b.log"; exit 1; }
# the first join included flushing the primary's memtable; time further resyncs of every
# shard, which move the same checkpoint files (the four requests at once: a node's resync,
# not four operator command start-ups one after the other), each followed by a `cp -r` +
# `sync` of the installed copy: the ratio of each pair, and the median pair of ROUNDS, so
# that the load of the moment (other builds on these cores) weighs on both sides alike
local SH=("$T"/d-b/shard-000 "$T"/d-b/shard-001 "$T"/d-b/shard-002 "$T"/d-b/shard-003)
local round want t0 t1 t2 t3 TN BYTES RQ ca cb cp0 cp1 cpt
: > "$T/resync.rounds"
# CPU of each side over all rounds (replica b, primary a, and the cp + sync processes)
ca=$(ticks "${PID[a]}") cb=$(ticks "${PID[b]}") cpt=0
for round in $(seq "$ROUNDS"); do
  sleep 1
  want=$((4 + 4 * round))
  t0=$(date +%s%N)
  RQ=()
  for s in 0 1 2 3; do "$BIN/strata-admin" cluster resync --cluster "$T/cluster.ini" b $s >/dev/null & RQ+=($!); done
  wait "${RQ[@]}"
  for _ in $(seq 60000); do [ "$(grep -c 'resync installed' "$T/b.log")" -ge $want ] && break; sleep 0.005; done
  t1=$(date +%s%N)
  [ "$(grep -c 'resync installed' "$T/b.log")" -ge $want ] || { echo "bench-repl: resync did not finish"; tail "$T/b.log"; exit 1; }
  BYTES=$(du -sb "${SH[@]}" | awk '{s += $1} END {print s}')
  rm -rf "$T/copy"; sync
  cp0=$(awk '{print $16 + $17}' /proc/$$/stat) # children's CPU: here cp, sync, mkdir, date
  t2=$(date +%s%N); mkdir "$T/copy"; cp -r "${SH[@]}" "$T/copy/"; sync; t3=$(date +%s%N)
  cp1=$(awk '{print $16 + $17}' /proc/$$/stat); cpt=$((cpt + cp1 - cp0))
  rm -rf "$T/copy"
  # the node's own time: from the first request's arrival to the last install (log times)
  TN=$(grep -E 'resync requested by an operator|resync installed' "$T/b.log" | tail -8 |
    /usr/bin/python3 -c '
import sys, datetime
ts = lambda l: datetime.datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
ls = sys.stdin.read().splitlines()
req = [ts(l) for l in ls if "requested" in l]; ins = [ts(l) for l in ls if "installed" in l]
print(int((max(ins) - min(req)) * 1e9))')
  echo "$BYTES $((t1 - t0)) $((t3 - t2)) $TN" >> "$T/resync.rounds"
done
# CPU ms per 100 MB moved: replica / primary / cp -r + sync (over all rounds)
/usr/bin/python3 -c "
hz, mb = $(getconf CLK_TCK), $BYTES * $ROUNDS / 1e8
print('%.0f/%.0f/%.0f' % (($(ticks "${PID[b]}") - $cb) * 1e3 / hz / mb,
      ($(ticks "${PID[a]}") - $ca) * 1e3 / hz / mb, $cpt * 1e3 / hz / mb))" >> "$T/resync.cpu"
# the median round by ratio: MB/s of the resync (end to end, and the node's own time) and of
# the copy
/usr/bin/python3 - "$T/resync.rounds" >> "$T/resync.sizes" <<'PY'
import sys
r = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
def median(k):
    v = sorted(r, key=k)
    return v[len(v) // 2]
b, tr, tc, tn = median(lambda x: x[2] / x[1])
mb = lambda b, t: b / 1e6 / (t / 1e9)
bn, _, tcn, tnn = median(lambda x: x[2] / x[3])
print("%d %.1f %.1f %.1f %.1f" % (b, mb(b, tr), mb(b, tc), mb(bn, tnn), mb(bn, tcn)))
PY
RSALL="$RSALL $(/usr/bin/python3 -c "
b = 0
for l in open('$T/resync.rounds'):
    b, tr, tc, tn = map(int, l.split()); print('%.2f/%.2f' % (tc / tr, tc / tn), end=' ')
print('(%.0f MB, CPU ms per 100 MB replica/primary/cp %s);' % (b / 1e6, '$(tail -1 "$T/resync.cpu")'), end='')")"
grep 'resync installed' "$T/b.log" | tail -4 | sed 's/.*(\(.*\))$/  resync breakdown: \1/'
}
if part resync; then
  for spec in ${BENCH_RESYNC_SIZES:-$ENTITIES:32 40000:1000:random}; do resync_size "$spec"; done
fi

read -r P50 P99 N <<< "$LAG"
/usr/bin/python3 - "$R0" "$R1" "$R2" "$P50" "$P99" "$N" "$BGRATE" "$L0" "$L2" "$ROUNDS" "$PARTS" "$T/resync.sizes" <<'PY'
import sys
r0, r1, r2, p50, p99, n, bg, l0, l2 = map(float, sys.argv[1:10])
rounds, parts = sys.argv[10], sys.argv[11]
print("| measurement | value | peer (same run) | ratio | target |")
print("|---|---|---|---|---|")
if ",tp," in parts:
    print("| put ops/s, 50 writers, async, 2 replicas (median round) | %.0f | unreplicated %.0f | %.2fx | - |" % (r1, r0, r1 / r0))
    print("| put ops/s, 50 writers, semi-sync K=1, 2 replicas (median round) | %.0f | unreplicated %.0f | %.2fx | >= 0.7x |" % (r2, r0, r2 / r0))
    print("| put latency, 1 writer, semi-sync K=1 (ms) | %.2f | unreplicated %.2f | %.2fx | - |" % (1000 / l2, 1000 / l0, l0 / l2))
    print("| mean put latency at 50 writers (ms), semi-sync K=1 | %.2f | unreplicated %.2f | %.2fx | - |" % (50000 / r2, 50000 / r0, r0 / r2))
if ",lag," in parts:
    print("| replication lag p50 / p99 (ms), %d probes, load %.0f ops/s (%s of async peak) | %.2f / %.2f | - | - | p99 <= 10 ms |" % (n, bg, "%.0f%%" % (100 * bg / r1) if r1 else "?", p50, p99))
if ",resync," in parts:
  for l in open(sys.argv[12]):
    b, rs, cp, rn, cpn = map(float, l.split())
    print("| resync MB/s (%.0f MB checkpoint, median of %s rounds), end to end (4 strata-admin requests to the last install seen) | %.1f | cp -r + sync %.1f | %.2fx | >= 0.8x |" % (b / 1e6, rounds, rs, cp, rs / cp))
    print("| resync MB/s (%.0f MB), the node's own time (first request received to last install, log times; median round) | %.1f | cp -r + sync %.1f | %.2fx | >= 0.8x |" % (b / 1e6, rn, cpn, rn / cpn))
PY
echo "throughput rounds, unreplicated/async/semi-sync ops/s (async and semi-sync ratios): $TPALL"
echo "CPU µs per write of each stratad (a = primary) in each throughput round: $CPUALL"
echo "resync/cp ratio of each round (end to end / node's own time):$RSALL"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
