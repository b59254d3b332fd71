# Shared by tests/integ/repl_*.sh: a static cluster of stratad nodes on loopback, each in its
# own directory under $T, with helpers to start, stop, kill and wait for replication.
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
ADM="$PWD/$BIN/strata-admin"
SB="$PWD/$BIN/strata-bench"
# the load generator is a tool, not under test: its leaks at exit do not fail an ASan run
sb() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$SB" "$@"; }
T=$(mktemp -d /tmp/strata-repl.XXXXXX)
declare -A PID ADDR
cleanup() { for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
  echo "FAIL: $*" # again, last: the runner shows only the tail of this output
  echo "rerun: BIN=$BIN bash $0"
  exit 1
}

# drv ARGS: the libstrata routing driver (tests/unit/test_client_route), leaks checked under ASan.
drv() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 "$PWD/$BIN/tests/test_client_route" "$@"; }

# free_port: a TCP port nothing listens on now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# make_cluster NSHARDS NODE... : writes $T/cluster.ini with the first node primary of every
# shard and the others replicas.
make_cluster() {
  local nshards=$1; shift
  NODES=("$@")
  { echo "[cluster]"; echo "version = 1"; echo "shards = $nshards"
    for n in "${NODES[@]}"; do
      ADDR[$n]=127.0.0.1:$(free_port)
      echo "[node $n]"; echo "addr = ${ADDR[$n]}"; echo "repl = 127.0.0.1:$(free_port)"
    done
    echo "[shard *]"; echo "primary = ${NODES[0]}"; echo "replicas = ${NODES[*]:1}"
  } > "$T/cluster.ini"
}

# make_split_cluster "P0 P1 ..." NODE... : writes $T/cluster.ini with one shard per listed
# primary (shard i's primary is the i-th name) and every other node its replica.
make_split_cluster() {
  local prims=($1); shift
  NODES=("$@")
  { echo "[cluster]"; echo "version = 1"; echo "shards = ${#prims[@]}"
    for n in "${NODES[@]}"; do
      ADDR[$n]=127.0.0.1:$(free_port)
      echo "[node $n]"; echo "addr = ${ADDR[$n]}"; echo "repl = 127.0.0.1:$(free_port)"
    done
    for i in "${!prims[@]}"; do
      local reps=()
      for n in "${NODES[@]}"; do [ "$n" = "${prims[$i]}" ] || reps+=("$n"); done
      echo "[shard $i]"; echo "primary = ${prims[$i]}"; echo "replicas = ${reps[*]}"
    done
  } > "$T/cluster.ini"
}

# start NODE [extra stratad flags...]: starts and waits until it serves.
start() {
  local n=$1; shift
  rm -f "$T/$n.ready"
  "$SD" --data-dir "$T/$n" --listen "${ADDR[$n]}" --admin off --cluster "${CLUSTER:-$T/cluster.ini}" \
    --node "$n" --ready-file "$T/$n.ready" "$@" >>"$T/$n.log" 2>&1 &
  PID[$n]=$!
  for _ in $(seq 300); do [ -s "$T/$n.ready" ] && return 0; sleep 0.05; done
  fail "node $n did not start"
}

stop() { kill "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }
kill9() { kill -9 "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; } 2>/dev/null

# caught_up NODE: every shard NODE replicates is tailing and has applied everything its
# primary had when asked (the primary's next sequence, from the primary's own status).
caught_up() {
  "$ADM" cluster status --cluster "${STATUS_CLUSTER:-$T/cluster.ini}" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
node = sys.argv[1]
sts = {st["node"]: st for st in json.load(sys.stdin) if "error" not in st}
if node not in sts: sys.exit(1)
for sh in sts[node]["shards"]:
    if sh["role"] != "replica": continue
    p = sts.get(sh["primary"])
    if p is None or sh["state"] != "tailing": sys.exit(1)
    if sh["applied_next"] < p["shards"][sh["shard"]]["next_seq"]: sys.exit(1)
sys.exit(0)' "$1"
}

wait_caught_up() {
  for _ in $(seq ${2:-600}); do caught_up "$1" && return 0; sleep 0.1; done
  "$ADM" cluster status --cluster "${STATUS_CLUSTER:-$T/cluster.ini}"
  fail "node $1 did not catch up"
}

# verify_all NSHARDS: cluster verify finds no difference on any shard.
verify_all() {
  for s in $(seq 0 $(($1 - 1))); do
    "$ADM" cluster verify --cluster "$T/cluster.ini" --shard "$s" > "$T/verify.out" 2>&1 ||
      fail "verify shard $s: $(cat "$T/verify.out")"
  done
}

# metric NODE NAME: a metric of a node started with --admin 127.0.0.1:0.
metric() {
  local port; port=$(awk '{print $2}' "$T/$1.ready")
  curl -sf "127.0.0.1:$port/metrics" | awk -v m="$2" '$1 == m {print $2}'
}
