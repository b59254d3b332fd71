#!/usr/bin/env bash
# Runs every unit test program ($BIN/tests/test_*) and integration script (tests/integ/*.sh),
# each with a timeout, and ends with one line: "N passed, N failed, N skipped".
# Exit code 77 from a test means skipped. Arguments, if any, filter tests by substring.
set -u
BIN=${BIN:-bin}
TIMEOUT=${TEST_TIMEOUT:-600}
export BIN
pass=0; fail=0; skip=0; failed=()
tests=( "$BIN"/tests/test_* tests/integ/*.sh )
for t in "${tests[@]}"; do
  [ -e "$t" ] || continue
  if [ $# -gt 0 ]; then
    m=0; for f in "$@"; do [[ "$t" == *"$f"* ]] && m=1; done; [ $m = 1 ] || continue
  fi
  name=$(basename "$t")
  log=$(mktemp /tmp/strata-test.XXXXXX)
  start=$(date +%s%N)
  if [[ "$t" == *.sh ]]; then timeout -k 10 "$TIMEOUT" bash "$t" >"$log" 2>&1; rc=$?
  else timeout -k 10 "$TIMEOUT" "$t" >"$log" 2>&1; rc=$?; fi
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms/1000)).$(( (ms%1000)/100 ))"
  case $rc in
    0)  pass=$((pass+1)); echo "PASS  $name (${secs}s)";;
    77) skip=$((skip+1)); echo "SKIP  $name: $(tail -n 1 "$log")";;
    *)  fail=$((fail+1)); failed+=("$t"); echo "FAIL  $name (exit $rc, ${secs}s); rerun: $t"
        tail -n 40 "$log" | sed 's/^/    | /';;
  esac
  rm -f "$log"
done
echo
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
