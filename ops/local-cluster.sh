#!/usr/bin/env bash
# A replicated Strata cluster on one machine: N stratad nodes on loopback with a static
# layout (ops/local-cluster.sh writes it) where shard i's primary is node i % N and its
# replicas are the next R nodes.
#   ops/local-cluster.sh start  [--nodes 3] [--replicas 2] [--shards 4] [--dir ./cluster]
#                               [--port 7170] [--etcd]
#                               [-- extra stratad flags, e.g. --min-sync-replicas 1]
#   ops/local-cluster.sh status [--dir ./cluster] [--json]
#   ops/local-cluster.sh stop   [--dir ./cluster]
# Node k listens on PORT+2k (clients) and PORT+2k+1 (replication); admin HTTP is off.
# --etcd: a local etcd (data in DIR/etcd, loopback, client port PORT+2N, peer PORT+2N+1)
# holds the layout and elects primaries automatically (docs/replication.md).
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
cmd=${1:-}; shift || true
NODES=3 REPL=2 SHARDS=4 DIR=./cluster PORT=7170 JSON=() EXTRA=() ETCD=0
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=$2; shift 2;;
    --replicas) REPL=$2; shift 2;;
    --shards) SHARDS=$2; shift 2;;
    --dir) DIR=$2; shift 2;;
    --port) PORT=$2; shift 2;;
    --json) JSON=(--json); shift;;
    --etcd) ETCD=1; shift;;
    --) shift; EXTRA=("$@"); break;;
    *) echo "local-cluster.sh: unknown argument '$1'" >&2; exit 2;;
  esac
done
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
name() { printf 'n%d' "$1"; }

write_layout() {
  { echo "[cluster]"; echo "version = 1"; echo "shards = $SHARDS"
    for k in $(seq 0 $((NODES - 1))); do
      echo "[node $(name $k)]"
      echo "addr = 127.0.0.1:$((PORT + 2 * k))"
      echo "repl = 127.0.0.1:$((PORT + 2 * k + 1))"
    done
    for s in $(seq 0 $((SHARDS - 1))); do
      p=$((s % NODES)); reps=()
      for r in $(seq 1 "$REPL"); do reps+=("$(name $(((p + r) % NODES)))"); done
      echo "[shard $s]"; echo "primary = $(name $p)"; echo "replicas = ${reps[*]}"
    done
  } > "$DIR/cluster.ini"
}

# The layout source: the file, or the etcd URL written by start_etcd.
cluster_arg() { [ -s "$DIR/etcd.url" ] && cat "$DIR/etcd.url" || echo "$DIR/cluster.ini"; }

start_etcd() {
  command -v etcd >/dev/null || { echo "etcd is not installed (ops/install-deps.sh)" >&2; exit 1; }
  local cp=$((PORT + 2 * NODES)) pp=$((PORT + 2 * NODES + 1))
  etcd --name local --data-dir "$DIR/etcd" --listen-client-urls "http://127.0.0.1:$cp" \
    --advertise-client-urls "http://127.0.0.1:$cp" --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "local=http://127.0.0.1:$pp" >>"$DIR/etcd.log" 2>&1 &
  echo $! > "$DIR/etcd.pid"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$cp/health" 2>/dev/null | grep -q true && break; sleep 0.1
  done
  curl -sf "http://127.0.0.1:$cp/health" >/dev/null || { echo "etcd did not start: see $DIR/etcd.log" >&2; stop; exit 1; }
  local url="etcd://127.0.0.1:$cp/strata/local"
  if [ ! -s "$DIR/etcd.url" ]; then
    "$BIN/strata-admin" cluster init --cluster "$url" "$DIR/cluster.ini" >/dev/null || { stop; exit 1; }
    echo "$url" > "$DIR/etcd.url"
  fi
}

start() {
  [ "$REPL" -lt "$NODES" ] || { echo "--replicas must be below --nodes" >&2; exit 2; }
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  [ -s "$DIR/pids" ] && { echo "a cluster is already running in $DIR (stop it first)" >&2; exit 1; }
  [ -f "$DIR/cluster.ini" ] || write_layout
  : > "$DIR/pids"
  [ "$ETCD" = 1 ] || [ -s "$DIR/etcd.url" ] && start_etcd
  for k in $(seq 0 $((NODES - 1))); do
    n=$(name $k)
    rm -f "$DIR/$n.ready"
    "$BIN/stratad" --data-dir "$DIR/$n" --listen "127.0.0.1:$((PORT + 2 * k))" --admin off \
      --cluster "$(cluster_arg)" --node "$n" --ready-file "$DIR/$n.ready" "${EXTRA[@]}" \
      >>"$DIR/$n.log" 2>&1 &
    echo "$! $n" >> "$DIR/pids"
  done
  for k in $(seq 0 $((NODES - 1))); do
    n=$(name $k)
    for _ in $(seq 200); do [ -s "$DIR/$n.ready" ] && break; sleep 0.05; done
    [ -s "$DIR/$n.ready" ] || { echo "node $n did not start: see $DIR/$n.log" >&2; stop; exit 1; }
  done
  seeds=$(for k in $(seq 0 $((NODES - 1))); do printf '127.0.0.1:%d,' $((PORT + 2 * k)); done)
  echo "started $NODES nodes ($SHARDS shards, $REPL replicas each) in $DIR"
  echo "  clients: $BIN/strata --addr ${seeds%,} table list"
  echo "  status:  $BIN/strata-admin cluster status --cluster $(cluster_arg)"
  echo "  stop:    $0 stop --dir $DIR"
}

stop() {
  [ -f "$DIR/pids" ] || [ -f "$DIR/etcd.pid" ] || { echo "no cluster in $DIR"; return 0; }
  touch "$DIR/pids"
  while read -r pid n; do kill "$pid" 2>/dev/null || true; done < "$DIR/pids"
  while read -r pid n; do
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && { echo "node $n did not stop: kill -9" >&2; kill -9 "$pid"; }
  done < "$DIR/pids"
  rm -f "$DIR/pids"
  if [ -s "$DIR/etcd.pid" ]; then # after the nodes: they revoke their leases as they stop
    epid=$(cat "$DIR/etcd.pid")
    kill "$epid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$epid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$DIR/etcd.pid"
  fi
  echo "stopped the cluster in $DIR"
}

case $cmd in
  start) start;;
  stop) stop;;
  status) exec "$BIN/strata-admin" cluster status --cluster "$(cluster_arg)" "${JSON[@]}";;
  *) usage;;
esac
