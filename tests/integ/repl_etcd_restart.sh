#!/usr/bin/env bash
# etcd itself restarted during steady state: the primary cannot renew its lease meanwhile, so
# it pauses writes at its lease deadline (reads go on), and when etcd is back (leases are
# restored and extended by etcd) it renews and resumes: no election, same epoch, same
# primary. A single failed renewal (fault repl.lease.renew) is counted and survived. Then two
# replicas race for the dead primary's shard (fault repl.elect.race makes the less caught-up
# one compete too, late, with a stale view): exactly one wins, the other follows it.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_restart.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

etcd_cluster 2 a b c
STRATA_FAULTS=repl.lease.renew@3 start a --admin 127.0.0.1:0
STRATA_FAULTS=repl.elect.race@1,repl.elect.race@2 start b --admin 127.0.0.1:0
STRATA_FAULTS=repl.elect.race@1,repl.elect.race@2 start c --admin 127.0.0.1:0
for s in 0 1; do [ "$(wait_leader $s)" = a ] || fail "a should lead shard $s"; done
$S --addr "${ADDR[a]}" table create t --feature x:i64 >/dev/null || fail "create"
for i in $(seq 20); do $S --addr "${ADDR[a]}" put t k$i x=$i >/dev/null || fail "put $i"; done
wait_caught_up b; wait_caught_up c
sleep 1.5
[ "$(metric a strata_repl_lease_renew_failures_total)" = 1 ] || fail "the failed renewal was not counted"
e0=$(epoch 0); e1=$(epoch 1)

# etcd down for longer than the lease TTL (2 s)
stop_etcd
sleep 3
[ "$($S --addr "${ADDR[a]}" get t k5 x | cut -f2)" = 5 ] || fail "reads stopped while etcd was down"
out=$($S --addr "${ADDR[a]}" put t down x=1 2>&1) && fail "a write acknowledged without a lease"
echo "$out" | grep -q "EUNAVAILABLE\|lease" || fail "unclear refusal: $out"
start_etcd
ok=0
for _ in $(seq 50); do
  $S --addr "${ADDR[a]}" put t back x=1 >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1
done
[ $ok = 1 ] || fail "writes did not resume after etcd came back"
sleep 1
for s in 0 1; do [ "$(leader $s)" = a ] || fail "shard $s changed primary across the etcd restart"; done
[ "$(epoch 0)" = "$e0" ] && [ "$(epoch 1)" = "$e1" ] || fail "the epoch moved: a spurious election"
for n in a b c; do [ "$(metric $n strata_repl_failovers_total)" = 0 ] || fail "$n counted a failover"; done
grep -q "won the election" "$T/b.log" "$T/c.log" && fail "a replica was elected"
echo "etcd restart: no failover, epoch $e0, writes resumed"

# the race: a dies; b and c both compete for both shards; one transaction per shard wins
wait_caught_up b; wait_caught_up c
kill9 a
for s in 0 1; do wait_leader $s a 100 >/dev/null; done
sleep 1.5
for s in 0 1; do
  won=$(grep -h "shard $s: won the election" "$T/b.log" "$T/c.log" | wc -l)
  lost=$(grep -h "shard $s: lost the election" "$T/b.log" "$T/c.log" | wc -l)
  [ "$won" = 1 ] || fail "shard $s: $won winners"
  [ "$lost" -ge 1 ] || fail "shard $s: the race did not happen (no loser)"
  [ "$(epoch $s)" = $(( $(eval echo \$e$s) + 1 )) ] || fail "shard $s: epoch $(epoch $s), expected one bump"
done
# the losers follow the winners
follows() {
  # (status exits 1 while a node is unreachable: a is dead)
  { $ADM cluster status --cluster "$CLUSTER" --json 2>/dev/null || true; } | /usr/bin/python3 -c '
import json, sys
st = {s["node"]: s for s in json.load(sys.stdin) if "error" not in s}
for n in ("b", "c"):
    for sh in st[n]["shards"]:
        if sh["role"] == "replica" and sh["state"] != "tailing": sys.exit(1)
        if sh["primary"] != sys.argv[1 + sh["shard"]]: sys.exit(1)
sys.exit(0)' "$(leader 0)" "$(leader 1)"
}
t0=$(date +%s)
for _ in $(seq 50); do follows && break; sleep 0.1; done
echo "followers settled in $(( $(date +%s) - t0 )) s"
follows || fail "the losers do not follow the winners"
$S --addr "${ADDR[b]},${ADDR[c]}" put t after x=1 >/dev/null || fail "write after the race"
echo "ok: etcd restart without failover; one renewal failure survived; a two-way race with one winner per shard"
