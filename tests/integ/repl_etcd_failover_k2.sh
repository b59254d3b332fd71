#!/usr/bin/env bash
# repl_etcd_failover.sh with semi-sync K=2 (--min-sync-replicas 2) over four nodes: each kill
# -9 of the primary leaves two replicas, so writes go on under K=2 on the elected one; every
# write acknowledged under K=2 is on the new primary after every failover (3 rounds).
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_failover_k2.sh
K=2 NODES="a b c d" ROUNDS=3 exec bash "$(dirname "$0")/repl_etcd_failover.sh"
