#!/usr/bin/env bash
# Replicas of the old history rejoin a promoted primary without a resync, also when they were
# not at its promotion point P (static layout, manual promote, async replication so that the
# copies can differ; random write counts and timings):
# 1. c down (kill -9) behind P: the new primary b sends it the old history's batches up to
#    P from its own WAL ("sent sequences L..P-1 of history H from this copy's WAL"), then c
#    joins b's history at the fork.
# 2. a down behind c, then restarted and promoted: c is beyond P and undoes its own batches
#    from P on (found through the positions in its WAL), then joins.
# (Nodes are killed, not stopped: a stopped process still finds the batches sent meanwhile
# in its socket buffer when it continues.)
# Each time: no resync on any node (strata_repl_resyncs_done_total, rejoin_resyncs 0), the
# killed old primary rejoins in place too, every node holds every write the new primary has,
# and cluster verify finds no difference.
# Rerun by hand: BIN=bin bash tests/integ/repl_rejoin_fork.sh
set -uo pipefail
source tests/integ/repl_common.bash

OPT=(--admin 127.0.0.1:0)
make_cluster 2 a b c
for n in a b c; do start $n "${OPT[@]}"; done
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
rnd() { /usr/bin/python3 -c "import random; print(random.randint($1, $2))"; }
# puts N TAG PRIMARY: N writes (a 4-way parallel CSV-free loop: 4 CLI writers)
puts() {
  local n=$1 tag=$2 p=$3 pids=()
  for w in 1 2 3 4; do
    ( for i in $(seq $(( n / 4 ))); do
        $S --addr "${ADDR[$p]}" put t "$tag-$w-$i" x=$i >/dev/null || exit 1
        echo "$tag-$w-$i $i" >> "$T/written.$tag.$w"
      done ) & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a write to $p failed"; done
}
# lag_zero NODE: NODE's copies of every shard are 0 sequences behind their primary (from its
# own /metrics: cluster status would wait for the stopped node)
lag_zero() {
  local port; port=$(awk '{print $2}' "$T/$1.ready")
  for _ in $(seq 200); do
    sleep 0.2
    curl -sf "127.0.0.1:$port/metrics" | awk '/^strata_repl_lag_seq\{/ {n++; if ($2 != 0) bad=1}
      END {exit (n > 0 && !bad) ? 0 : 1}' && return 0
  done
  fail "$1 did not catch up"
}
resyncs() { echo $(( $(metric "$1" strata_repl_resyncs_done_total) + $(metric "$1" strata_repl_rejoin_resyncs_total) )); }

puts "$(rnd 40 200)" pre a
wait_caught_up b; wait_caught_up c

# ---- 1. c behind the promotion point ----
declare -A R0
for n in a b c; do R0[$n]=$(resyncs $n); done  # the first resync of each new replica
kill9 c
puts "$(rnd 40 400)" r1 a
lag_zero b
sleep "0.$(rnd 0 9)"
kill9 a
for s in 0 1; do
  "$ADM" cluster promote --cluster "$T/cluster.ini" b $s >/dev/null 2>"$T/promote.err" ||
    fail "promote: $(cat "$T/promote.err")"
done
start c "${OPT[@]}"
puts "$(rnd 10 100)" r1new b
start a "${OPT[@]}"
wait_caught_up c 600
grep -q "replica c: sent sequences [0-9]*\.\.[0-9]* of history .* from this copy's WAL" "$T/b.log" ||
  fail "b did not serve c's catch-up from its WAL"
grep -q "joined b at its fork point" "$T/c.log" || fail "c did not join b at its fork point"
[ "$(resyncs c)" -eq 0 ] || fail "c resynced"  # restarted: counts anew
[ "$(metric b strata_repl_rejoin_catchups_total)" -ge 1 ] || fail "catch-up not counted on b"
grep -o "replica c: sent sequences [0-9.]* of history" "$T/b.log" | sort -u
wait_caught_up a 600
[ "$(resyncs a)" -eq 0 ] || fail "a (the old primary) resynced"  # restarted: counts anew
verify_all 2
check_acked_on() { # NODE: every write logged so far reads back from NODE's copy
  { echo "entity,ts"; cat "$T"/written.* | awk '{print $1",2100-01-01T00:00:00Z"}'; } > "$T/samples.csv"
  $S --addr "${ADDR[$1]}" --allow-any-ts join t --samples "$T/samples.csv" --features x \
    --out "$T/joined.csv" 2>"$T/join.err" || fail "join on $1: $(cat "$T/join.err")"
  /usr/bin/python3 - "$T/joined.csv" "$T"/written.* <<'PY' || fail "writes missing on $1"
import csv, sys
got = {r["entity"]: r["x"] for r in csv.DictReader(open(sys.argv[1]))}
want = dict(l.split() for f in sys.argv[2:] for l in open(f))
missing = [k for k, v in want.items() if got.get(k) != v]
print(f"{len(want)} writes, {len(missing)} missing {missing[:5]}")
sys.exit(1 if missing else 0)
PY
}
check_acked_on b
echo "round 1: c behind the promotion point caught up from b's WAL, no resync"

# ---- 2. c beyond the promotion point: a behind primary is promoted ----
# now b is primary, a and c replicas; a down, writes, so that c is ahead of a; promote a
R0[c]=$(resyncs c)
kill9 a
puts "$(rnd 40 200)" r2 b
lag_zero c
sleep "0.$(rnd 0 9)"
kill9 b
start a "${OPT[@]}"
for s in 0 1; do
  "$ADM" cluster promote --cluster "$T/cluster.ini" a $s >/dev/null 2>"$T/promote.err" ||
    fail "promote: $(cat "$T/promote.err")"
done
puts "$(rnd 10 100)" r2new a
start b "${OPT[@]}"
wait_caught_up c 600
line=$(grep -o "rejoining a: truncated in place [0-9]* divergent sequences [0-9.]*" "$T/c.log" | head -1)
[ -n "$line" ] || fail "c (beyond a's promotion point) did not truncate in place"
echo "$line"
[ "$(resyncs c)" -eq "${R0[c]}" ] || fail "c resynced"
# the writes of round 2 that a never got are gone from c too: c equals a
rm -f "$T"/written.r2.*
wait_caught_up b 600
[ "$(resyncs b)" -eq 0 ] || fail "b (the old primary) resynced"  # restarted: counts anew
[ "$(resyncs a)" -eq 0 ] || fail "a resynced"
verify_all 2
check_acked_on a
check_acked_on c
echo "ok: replicas behind and beyond the promotion point rejoined without a resync"
