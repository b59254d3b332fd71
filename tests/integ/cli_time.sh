#!/usr/bin/env bash
# Time semantics through the CLI, embedded and against stratad: ttl is freshness at each
# read's own time (a past as-of read and a join over last month see values a latest read
# calls stale), retention refuses reads before its horizon with a message naming it, join
# --before-horizon skip|error and --with-status, get --json --with-status; a failed write
# turns the server read-only (/health 503, /status says why) and, with --sync always, every
# acknowledged write survives kill -9; a failed storage read is an error over the wire.
# Rerun by hand: BIN=bin bash tests/integ/cli_time.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-clitime.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/cli_time.sh"; exit 1; }
expect() { [ "$2" == "$3" ] || fail "$1: expected [$2], got [$3]"; }
ago() { date -u -d "@$(( $(date +%s) - $1 * 86400 ))" +%Y-%m-%dT%H:%M:%SZ; }

D40=$(ago 40); D39=$(ago 39); D20=$(ago 20); D10=$(ago 10); D50=$(ago 50)
printf 'user_id,ts,label\nu1,%s,1\nu1,%s,0\nu2,%s,1\nu1,%s,0\n' "$D39" "$D20" "$D10" "$D10" \
  > "$T/samples.csv"
printf 'user_id,ts,label\nu1,%s,1\nu1,%s,0\n' "$D10" "$D50" > "$T/old.csv"

start_server() {
  rm -f "$T/ready"
  STRATA_FAULTS="${FAULTS:-}" "$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 \
    --admin 127.0.0.1:0 --sync always --ready-file "$T/ready" "$@" 2>"$T/srv.log" &
  PID=$!
  for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || fail "stratad did not start: $(cat "$T/srv.log")"
  ADDR=$(awk '{print $1}' "$T/ready")
  ADMIN=127.0.0.1:$(awk '{print $2}' "$T/ready")
}

check_mode() {
  local mode=$1; shift
  local C=("$S" "$@")
  "${C[@]}" table create clicks --feature n:i64 --feature slow:i64:ttl=0 --ttl 5d \
    --retention 45d --entity-column user_id >/dev/null || fail "$mode: create"
  "${C[@]}" table show clicks | grep -q "retention: 45d" || fail "$mode: show retention"
  "${C[@]}" put clicks u1 n=1 slow=1 --ts "$D40" >/dev/null || fail "$mode: put"
  "${C[@]}" put clicks u1 n=2 slow=2 --ts "$D20" >/dev/null || fail "$mode: put"
  # latest: 20 days old > ttl 5d: stale (with its time), but slow has no ttl
  expect "$mode latest" '{"n":null,"slow":2}' "$("${C[@]}" get clicks u1 --json)"
  expect "$mode status" "{\"n\":{\"status\":\"stale\",\"ts\":\"$D20\"}}" \
    "$("${C[@]}" get clicks u1 n --json --with-status)"
  # an as-of read a day after the event sees it: freshness is measured from the read's time
  expect "$mode as-of" '{"n":2}' "$("${C[@]}" get clicks u1 n --as-of "$(ago 19)" --json)"
  expect "$mode absent" '{"n":{"status":"absent"}}' \
    "$("${C[@]}" get clicks nobody n --json --with-status)"
  expect "$mode present" "{\"slow\":{\"status\":\"present\",\"value\":2,\"ts\":\"$D20\"}}" \
    "$("${C[@]}" get clicks u1 slow --json --with-status)"
  # before the retention horizon: refused, naming it
  if "${C[@]}" get clicks u1 n --as-of "$D50" > /dev/null 2> "$T/err"; then
    fail "$mode: read before the horizon answered"
  fi
  grep -q "before table 'clicks' retention horizon" "$T/err" || fail "$mode: $(cat "$T/err")"
  # a history reaching below the horizon would miss what compaction removed: refused too
  if "${C[@]}" history clicks u1 n --from "$D50" > /dev/null 2> "$T/err"; then
    fail "$mode: history from before the horizon answered"
  fi
  grep -q "history from .* before table 'clicks' retention horizon" "$T/err" ||
    fail "$mode history: $(cat "$T/err")"
  expect "$mode history" "$D20	2
$D40	1" "$("${C[@]}" history clicks u1 n)"
  # join over history: the sample's own time decides freshness
  "${C[@]}" join clicks --samples "$T/samples.csv" --features n,slow --with-status \
    > "$T/join.csv" 2>"$T/join.err" || fail "$mode join: $(cat "$T/join.err")"
  expect "$mode join" "user_id,ts,label,n,n_status,slow,slow_status
u1,$D39,1,1,present,1,present
u1,$D20,0,2,present,2,present
u2,$D10,1,,absent,,absent
u1,$D10,0,,stale,2,present" "$(cat "$T/join.csv")"
  if "${C[@]}" join clicks --samples "$T/old.csv" --features n > /dev/null 2> "$T/err"; then
    fail "$mode: join row before the horizon answered"
  fi
  grep -q "retention horizon" "$T/err" || fail "$mode join error: $(cat "$T/err")"
  "${C[@]}" join clicks --samples "$T/old.csv" --features n --before-horizon skip \
    --with-status > "$T/join2.csv" 2> "$T/join2.err" || fail "$mode: skip"
  expect "$mode skip" "user_id,ts,label,n,n_status
u1,$D10,1,,stale
u1,$D50,0,,before_horizon" "$(cat "$T/join2.csv")"
  grep -q "1 row before the retention horizon left empty" "$T/join2.err" \
    || fail "$mode skip summary: $(cat "$T/join2.err")"
  # retention can be changed; 0 = keep forever (what may be removed stays refused)
  "${C[@]}" table alter clicks --retention 0 >/dev/null || fail "$mode: alter"
  "${C[@]}" table show clicks --json | grep -q '"retention_s": 0' || fail "$mode: alter shown"
}

check_mode embedded --data-dir "$T/emb"
start_server
check_mode server --addr "$ADDR"
kill -TERM $PID; wait $PID; PID=

# A failed write turns the server read-only: later writes fail with the reason, reads work,
# /health says 503 and /status why; with --sync always nothing acknowledged is lost.
rm -rf "$T/srv"
FAULTS="write.batch@8" start_server
"$S" --addr "$ADDR" table create w --feature x:i64 >/dev/null || fail "create w"
acked=0
for i in $(seq 1 12); do
  if "$S" --addr "$ADDR" put w "e$i" x=$i --ts 2026-01-01T00:00:00Z >/dev/null 2>"$T/err"; then
    acked=$i
  else
    grep -q "write.batch" "$T/err" || fail "write error unclear: $(cat "$T/err")"
  fi
done
[ "$acked" -ge 1 ] && [ "$acked" -lt 12 ] || fail "expected the fault to stop writes (acked $acked)"
expect "read after failure" '{"x":1}' "$("$S" --addr "$ADDR" get w e1 --json)"
code=$(curl -s -o "$T/health" -w '%{http_code}' "http://$ADMIN/health")
expect "health code" 503 "$code"
grep -q "storage failed" "$T/health" || fail "health body: $(cat "$T/health")"
# (captured first: with pipefail, grep -q leaving early would fail curl with SIGPIPE)
curl -s "http://$ADMIN/status" > "$T/status" && grep -q '"storage": *"failed"' "$T/status" || fail "status"
curl -s "http://$ADMIN/metrics" > "$T/metrics" && grep -q '^strata_storage_failed 1' "$T/metrics" ||
  fail "metric: $(grep storage "$T/metrics")"
kill -9 $PID; wait $PID 2>/dev/null; PID=
FAULTS= start_server
for i in $(seq 1 "$acked"); do
  expect "acked e$i after kill -9" "{\"x\":$i}" "$("$S" --addr "$ADDR" get w "e$i" --json)"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/health")
expect "healthy after restart" 200 "$code"
"$S" --addr "$ADDR" put w again x=1 >/dev/null || fail "write after restart"
kill -TERM $PID; wait $PID; PID=

# A storage error under a read reaches the client as an error naming the shard, never as
# null (iter.error: the scanner's read fails once).
FAULTS="iter.error@1" start_server
if "$S" --addr "$ADDR" get w e1 --json > "$T/out" 2> "$T/err"; then
  fail "a failed storage read answered: $(cat "$T/out")"
fi
grep -q "storage read failed in shard" "$T/err" || fail "read error unclear: $(cat "$T/err")"
expect "read after the fault" '{"x":1}' "$("$S" --addr "$ADDR" get w e1 --json)"
kill -TERM $PID; wait $PID; PID=
echo "ok: ttl, retention, statuses and the sticky storage error, embedded and over the network"
