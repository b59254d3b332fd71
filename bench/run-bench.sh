#!/usr/bin/env bash
# `make bench`: runs every bench/bench-*.sh in turn (each prints its own table of ratios
# against a peer measured in the same run). BENCH_QUICK=1 shrinks sizes for a smoke run.
set -u
cd "$(dirname "$0")/.."
rc=0
for b in bench/bench-*.sh; do
  [ -e "$b" ] || continue
  echo "=== $b ==="
  bash "$b" "$@" || { echo "$b failed"; rc=1; }
done
exit $rc
