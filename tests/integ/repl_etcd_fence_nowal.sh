#!/usr/bin/env bash
# repl_etcd_fence.sh where the old primary's WAL no longer reaches the fork point (fault
# repl.rewind.nowal): it cannot truncate its divergent tail in place and falls back to a full
# resync, reporting and counting the same discarded range; no acknowledged write lost.
# Rerun by hand: BIN=bin bash tests/integ/repl_etcd_fence_nowal.sh
NOWAL=1 exec bash "$(dirname "$0")/repl_etcd_fence.sh"
