#!/usr/bin/env bash
# Store engine numbers (issue 2): batched puts vs preload, latest vs as-of gets, multi-get,
# join. BENCH_QUICK=1 for a small smoke run.
set -euo pipefail
BIN=${BIN:-bin}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  exec "$BIN/strata-kv-bench" --rows 100000 --join-rows 100000 "$@"
fi
exec "$BIN/strata-kv-bench" --rows 1000000 --join-rows 1000000 "$@"
