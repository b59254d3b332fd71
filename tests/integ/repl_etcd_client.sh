#!/usr/bin/env bash
# libstrata through two automatic failovers (etcd, semi-sync K=1): one handle with a 1.5 s io
# timeout keeps putting new entities and reading acknowledged ones while the primary is
# killed (kill -9), a replica elected, the old primary restarted, and the new primary killed
# in turn. No call takes longer than its timeout (+1 s for a connect begun before the
# deadline); a write that fails fails with STRATA_EUNAVAILABLE (the documented answer: there
# are no idempotency keys, so a write whose outcome is unknown is not retried); a read never
# returns anything but the acknowledged value; every acknowledged write is on the last
# primary.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_client.sh
set -uo pipefail
source tests/integ/repl_etcd_common.bash

SYNC=(--min-sync-replicas 1 --sync-timeout 5s)
three_nodes rt "${SYNC[@]}"
drv --failover "${ADDR[a]},${ADDR[b]},${ADDR[c]}" 1500 90 "$T/acked" "$T/stop" \
  > "$T/client.out" 2>&1 &
CP=$!
for round in 1 2; do
  sleep "$(rnd 0.5 2)"
  p=$(leader 0)
  kill9 "$p"
  np=$(wait_leader 0 "$p" 100)
  echo "round $round: $p killed, $np elected"
  sleep "$(rnd 1 3)"
  start "$p" "${SYNC[@]}"
  wait_caught_up "$p" 600
done
sleep 1
touch "$T/stop"
wait "$CP" || fail "the client: $(cat "$T/client.out")"
cat "$T/client.out"
[ -s "$T/acked" ] || fail "no write acknowledged"
CHECK_TABLE=rt check_acked "$(leader 0)" "$T/acked"
echo "ok: no client call outlived its timeout across two failovers; failed writes were EUNAVAILABLE"
