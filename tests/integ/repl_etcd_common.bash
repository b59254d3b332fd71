# Shared by tests/integ/repl_etcd_*.sh: repl_common.bash plus a private etcd (loopback ports,
# data in $T/etcd) holding the cluster's layout, and helpers around leadership.
source tests/integ/repl_common.bash
command -v etcd >/dev/null || { echo "etcd not installed (ops/install-deps.sh)"; exit 77; }

# start_etcd: starts (or restarts, same ports and data) the test's etcd and waits for it.
start_etcd() {
  [ -n "${ECP:-}" ] || { ECP=$(free_port); EPP=$(free_port); }
  etcd --name t --data-dir "$T/etcd" --listen-client-urls "http://127.0.0.1:$ECP" \
    --advertise-client-urls "http://127.0.0.1:$ECP" --listen-peer-urls "http://127.0.0.1:$EPP" \
    --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
    --initial-cluster "t=http://127.0.0.1:$EPP" >>"$T/etcd.log" 2>&1 &
  PID[_etcd]=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ECP/health" 2>/dev/null | grep -q true && return 0; sleep 0.1
  done
  fail "etcd did not start"
}
stop_etcd() { kill "${PID[_etcd]}" 2>/dev/null; wait "${PID[_etcd]}" 2>/dev/null; unset "PID[_etcd]"; }

# etcd_cluster NSHARDS NODE...: the static layout of make_cluster, stored in etcd; nodes
# then start with --cluster etcd://...
etcd_cluster() {
  make_cluster "$@"
  start_etcd
  CLUSTER="etcd://127.0.0.1:$ECP${PREFIX:=/strata/t}"
  "$ADM" cluster init --cluster "$CLUSTER" "$T/cluster.ini" >/dev/null || fail "cluster init"
}

# etcd_get KEY (under the cluster prefix): the value, decoded.
etcd_get() {
  local k; k=$(printf '%s/%s' "${PREFIX:-/strata/t}" "$1" | base64 -w0)
  curl -s "http://127.0.0.1:$ECP/v3/kv/range" -d "{\"key\":\"$k\"}" | /usr/bin/python3 -c '
import base64, json, sys
kvs = json.load(sys.stdin).get("kvs", [])
print(base64.b64decode(kvs[0].get("value", "")).decode() if kvs else "")'
}

# leader SHARD: the node named by the shard's leader key ("" when none).
leader() { etcd_get "shards/$1/leader" | /usr/bin/python3 -c '
import json, sys
t = sys.stdin.read().strip()
print(json.loads(t)["node"] if t else "")'; }
epoch() { etcd_get "shards/$1/epoch" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])'; }

# wait_leader SHARD [NOT] [TRIES]: waits until the shard has a leader (other than NOT) and
# prints it.
wait_leader() {
  local l
  for _ in $(seq "${3:-100}"); do
    l=$(leader "$1")
    [ -n "$l" ] && [ "$l" != "${2:-}" ] && { echo "$l"; return 0; }
    sleep 0.1
  done
  fail "shard $1: no leader${2:+ other than $2}"
}


# rnd LO HI: a random number between LO and HI with two decimals (sleep times).
rnd() { /usr/bin/python3 -c "import random; print(round(random.uniform($1, $2), 2))"; }

# three_nodes TABLE START-ARGS...: etcd and nodes a, b, c (one shard) started with
# START-ARGS; a must lead first; TABLE (one feature x:i64) created; b and c caught up.
three_nodes() {
  local table=$1 n; shift
  etcd_cluster 1 a b c
  for n in a b c; do start $n "$@"; done
  [ "$(wait_leader 0)" = a ] || fail "a should lead first"
  $S --addr "${ADDR[a]}" table create "$table" --feature x:i64 >/dev/null || fail "create"
  wait_caught_up b; wait_caught_up c
}

# writer SEEDS TAG: puts TAG-n x=n until $T/stop exists, retrying each write (the client
# follows EMOVED; during a failover the dead primary refuses connections) for up to 8 s;
# logs "key value" of every acknowledged write to $T/acked.TAG, and the time (ns) of the
# first acknowledged write whose attempt began after $T/killed appeared to $T/first.TAG.
writer() {
  local n=0 t0 after ok
  while [ ! -e "$T/stop" ]; do
    t0=$(date +%s%N); ok=0
    while :; do
      after=0; [ -e "$T/killed" ] && after=1
      $S --addr "$1" put t "$2-$n" x=$n >/dev/null 2>&1 && { ok=1; break; }
      [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 8000 ] && break
      [ -e "$T/stop" ] && return 0
      sleep 0.05
    done
    if [ $ok = 1 ]; then
      echo "$2-$n $n" >> "$T/acked.$2"
      [ $after = 1 ] && [ ! -e "$T/first.$2" ] && date +%s%N > "$T/first.$2"
    fi
    n=$((n + 1))
  done
}

# check_acked NODE FILE...: every "key value" line of the files reads back from NODE (one
# join request over all of them; table $CHECK_TABLE, default t, feature x).
check_acked() {
  local node=$1; shift
  { echo "entity,ts"; cat "$@" | awk '{print $1",2100-01-01T00:00:00Z"}'; } > "$T/samples.csv"
  $S --addr "${ADDR[$node]}" --allow-any-ts join "${CHECK_TABLE:-t}" --samples "$T/samples.csv" --features x \
    --out "$T/joined.csv" 2>"$T/join.err" || fail "join on $node: $(cat "$T/join.err")"
  /usr/bin/python3 - "$T/joined.csv" "$@" <<'PY' || fail "acknowledged writes missing on $node"
import csv, sys
got = {r["entity"]: r["x"] for r in csv.DictReader(open(sys.argv[1]))}
want = {}
for f in sys.argv[2:]:
    for line in open(f):
        k, v = line.split()
        want[k] = v
missing = [k for k, v in want.items() if got.get(k) != v]
print(f"{len(want)} acknowledged writes, {len(missing)} missing {missing[:5]}")
sys.exit(1 if missing else 0)
PY
}
