#!/usr/bin/env bash
# Clients in a 3-node cluster (shards split between two primaries, every shard replicated on
# the other nodes): writes sent to any node follow the EMOVED redirect to the shard's
# primary, table changes follow it to the registry owner, a seed list skips a dead seed, a
# multi-get over entities of shards on different primaries answers in input order, and a
# client keeps working across a layout change (graceful promote of a third node, with zero
# loss). Rerun by hand: BIN=bin bash tests/integ/repl_routing.sh
set -uo pipefail
source tests/integ/repl_common.bash

make_split_cluster "a b a b" a b c
for n in a b c; do start $n; done
DEAD=127.0.0.1:$(free_port)
C="$DEAD,${ADDR[c]}"
$S --addr "$C" table create t --feature x:i64 >/dev/null || fail "create through a replica"
# the registry reaches the replicas asynchronously (the CLI reads the schema where it is)
for _ in $(seq 100); do $S --addr "${ADDR[c]}" table show t >/dev/null 2>&1 && break; sleep 0.05; done
for i in $(seq 0 39); do
  $S --addr "$C" put t e$i x=$i --ts 2026-01-01T00:00:01Z >/dev/null || fail "put e$i through a replica"
done
for n in a b c; do wait_caught_up $n; done
# both primaries took writes (the entities spread over shards of a and of b)
"$ADM" cluster status --cluster "$T/cluster.ini" > "$T/status.out"
awk '$1 == "a" && $3 == "primary" && $6 > 1 {a++} $1 == "b" && $3 == "primary" && $6 > 1 {b++}
     END {exit !(a > 0 && b > 0)}' "$T/status.out" || fail "writes did not reach both primaries: $(cat "$T/status.out")"
for s in 0 1 2 3; do "$ADM" cluster verify --cluster "$T/cluster.ini" --shard $s >/dev/null || fail "verify $s"; done

PYTHONPATH=$PWD/client/python PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 - "$DEAD" "${ADDR[c]}" <<'PY' || fail "multi-get order"
import sys, strata
c = strata.connect([sys.argv[1], sys.argv[2]])  # seed list: the dead seed is skipped
ents = ["e%d" % i for i in (37, 2, 19, 0, 33, 8, 11, 25, 39, 4)]
d = c.get("t", ents, ["x"]).to_dict()
vals = list(d["x"]) if not isinstance(d["x"], dict) else [d["x"][e] for e in ents]
assert [int(v) for v in vals] == [int(e[1:]) for e in ents], (ents, d)
print("multi-get in input order:", vals)
PY

# layout change: c takes shard 0 gracefully; the client keeps writing through redirects
"$ADM" cluster promote --cluster "$T/cluster.ini" --graceful c 0 >/dev/null 2>"$T/promote.err" ||
  fail "graceful promote: $(cat "$T/promote.err")"
for i in $(seq 0 39); do
  $S --addr "${ADDR[a]}" put t e$i x=$((i + 100)) --ts 2026-01-01T00:00:02Z >/dev/null || fail "put e$i after the layout change"
done
for n in a b c; do wait_caught_up $n 1200; done
for i in $(seq 0 39); do
  [ "$($S --addr "$C" get t e$i x | cut -f2)" = $((i + 100)) ] || fail "e$i not updated"
done
out=$($S --addr "${ADDR[c]}" put t e0 x=1 2>&1); echo "$out" | grep -q "ok" || fail "write on the new primary: $out"
for n in a b c; do wait_caught_up $n 1200; done
"$ADM" cluster status --cluster "$T/cluster.ini" | grep -E "^c +0 +primary" >/dev/null || fail "c is not primary of 0"
for s in 0 1 2 3; do "$ADM" cluster verify --cluster "$T/cluster.ini" --shard $s >/dev/null || fail "verify $s after promote"; done
echo "ok: redirects, seed list, multi-get order, client across a graceful layout change"
