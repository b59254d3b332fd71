#!/usr/bin/env bash
# libstrata's routed batches and joins over 3 nodes with split primaries (shards 0,3 on a, 1
# on b, 2 on c): random puts, deletes, multi-gets and pipelined batches (every operation's
# parts sent to every node at once) equal a reference map, with every node's memtables
# flushed (a backup) every few rounds, as a replica's resync checkpoint does on its primary
# (reads must then find the newest version across memtable and SST files, the row cache must
# not keep an older one); one streaming join keeps going,
# every row checked, across a graceful promote (a -> b for shard 0) and the kill -9 of c
# followed by a manual promote of b for shard 2 (the join refetches the layout and pushes
# its unanswered rows again); while c is dead, a batch's operations that avoid c succeed and
# the one that needs c fails with STRATA_EUNAVAILABLE within its timeout.
# Rerun by hand: BIN=bin bash tests/integ/repl_route_batch.sh
set -uo pipefail
source tests/integ/repl_common.bash

make_split_cluster "a b c a" a b c
for n in a b c; do start $n; done
SEEDS="${ADDR[a]},${ADDR[b]}"

seed=${SEED:-$RANDOM} # SEED= replays a run
mkdir -p "$T/bk"
drv --model "$SEEDS" "$seed" "$T/bk" > "$T/model.out" 2>&1 || fail "model (seed $seed): $(cat "$T/model.out")"
cat "$T/model.out"

drv --join-load "$SEEDS" > "$T/load.out" 2>&1 || fail "join load: $(cat "$T/load.out")"
for n in a b c; do wait_caught_up $n; done

drv --join-soak "$SEEDS" 8 > "$T/join.out" 2>&1 &
JOIN=$!
sleep 1.5
"$ADM" cluster promote --cluster "$T/cluster.ini" --graceful b 0 >/dev/null 2>"$T/promote.err" ||
  fail "graceful promote: $(cat "$T/promote.err")"
sleep 1.5
kill9 c
# c is dead and still shard 2's primary: a batch fails only the operation that needs it
drv --partial "$SEEDS" 2 4 1500 > "$T/partial.out" 2>&1 || fail "partial batch: $(cat "$T/partial.out")"
grep -q "^partial ok: .*within the call's timeout" "$T/partial.out" || fail "partial batch: $(cat "$T/partial.out")"
cat "$T/partial.out"
"$ADM" cluster promote --cluster "$T/cluster.ini" b 2 >/dev/null 2>"$T/promote2.err" ||
  fail "promote b 2: $(cat "$T/promote2.err")"
wait $JOIN || fail "join across the layout changes: $(cat "$T/join.out")"
cat "$T/join.out"
grep -q "^join: [0-9]* rows" "$T/join.out" || fail "join: $(cat "$T/join.out")"
echo "ok: routed batches equal a reference map, a batch fails only what a dead node held, a join survives two layout changes"
