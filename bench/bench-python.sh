#!/usr/bin/env bash
# The Python package (client/python) against pandas and redis-py: see bench/bench-python.py.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
ls client/python/strata/_core*.so >/dev/null 2>&1 || { echo "bench-python: run make first"; exit 1; }
/usr/bin/python3 -c 'import pandas, numpy' 2>/dev/null || { echo "bench-python: python3-pandas missing"; exit 1; }
exec /usr/bin/python3 bench/bench-python.py "$BIN"
