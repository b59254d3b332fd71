#!/usr/bin/env bash
# The Python package (client/python): its pytest suite against the embedded store and a real
# stratad, and `pip install --no-build-isolation` of the package. Built by `make` (python
# target). Under `make asan` the extension is built with the sanitizers and python runs with
# the ASan runtime preloaded (leak checks off: the interpreter itself keeps memory at exit).
# Rerun by hand: BIN=bin bash tests/integ/py_api.sh [pytest args]
set -euo pipefail
BIN=${BIN:-bin}
B=${B:-build}
PY=/usr/bin/python3
$PY -c 'import pytest, pandas, numpy' 2>/dev/null || { echo "python3-pytest/pandas/numpy missing"; exit 77; }
if [ "$B" = build ]; then PKG=client/python; else PKG=$B/python; fi
ls "$PKG"/strata/_core*.so >/dev/null 2>&1 || { echo "FAIL: $PKG/strata/_core*.so not built (make python)"; exit 1; }
T=$(mktemp -d /tmp/strata-py.XXXXXX)
trap 'rm -rf "$T"' EXIT
export STRATA_BIN=$BIN PYTHONPATH=$PWD/$PKG PYTHONDONTWRITEBYTECODE=1
if [ "$B" != build ]; then
  export LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0
fi
$PY -m pytest -q -p no:cacheprovider --basetemp="$T/pytest" client/python/tests "$@"

# pip installs the package from the source tree without network or build isolation
if [ "$B" = build ] && [ $# -eq 0 ]; then
  unset PYTHONPATH
  $PY -m pip install -q --no-build-isolation --no-deps --no-index --target "$T/site" \
    ./client/python 2>&1 | grep -v "Running pip as the 'root' user" || true
  (cd "$T" && PYTHONPATH=$T/site $PY -c '
import strata, tempfile
with strata.open(tempfile.mkdtemp(dir=".")) as c:
    c.create_table("t", {"v": "i64"})
    c.put("t", "e", {"v": 5}, ts="2026-01-01T00:00:00Z")
    assert c.get("t", "e", ["v"]).to_dict() == {"v": [5]}
assert strata.__file__.startswith("'"$T"'/site"), strata.__file__
') || { echo "FAIL: the pip-installed package does not work"; exit 1; }
fi
echo "py_api: ok"
