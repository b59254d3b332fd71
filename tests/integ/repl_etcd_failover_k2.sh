#!/usr/bin/env bash
# repl_etcd_failover.sh with semi-sync K=2 (--min-sync-replicas 2) over four nodes, where each
# round kills (kill -9) the primary and a random replica in the same instant: every write
# acknowledged under K=2 was on two of the three replicas, so on one of the two left, and the
# most caught-up of them is elected: no acknowledged write is lost (2 rounds; the killed
# replica is restarted at once so that K=2 writes can be acknowledged again).
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_failover_k2.sh
K=2 NODES="a b c d" ROUNDS=2 KILL_REPLICA=1 exec bash "$(dirname "$0")/repl_etcd_failover.sh"
