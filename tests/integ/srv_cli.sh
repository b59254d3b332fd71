#!/usr/bin/env bash
# `strata --addr` gives the same output as embedded mode: one command script runs against an
# embedded data dir and against stratad (io_uring and epoll), and the outputs must be equal.
# Rerun by hand: BIN=bin bash tests/integ/srv_cli.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-srvcli.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/srv_cli.sh"; exit 1; }

cat > "$T/samples.csv" <<'CSV'
entity,ts
u1,2026-01-10T00:00:00Z
u2,2026-02-10T00:00:00Z
u1,2026-03-10T00:00:00Z
nobody,2026-03-10T00:00:00Z
CSV
{ echo "entity,ts,age,name"; for i in $(seq 1 500); do echo "p$i,2026-01-01T00:00:00Z,$i,n$i"; done; } > "$T/pre.csv"

# The script: one command per line; each runs with the mode's connection flags.
cat > "$T/script" <<EOF2
table create users --feature age:i64 --feature score:f64 --feature name:str --feature emb:f32[3] --feature tags:i64[] --max-versions 10
table create other --feature x:i64 --ttl 30d
table list
table show users
table show users --json
put users u1 age=30 score=1.5 name=bob emb=[1,2,3] tags=[4,5] --ts 2026-01-01T00:00:00Z
put users u1 age=31 --ts 2026-02-01T00:00:00Z
put users u2 age=40 name=eve --ts 2026-01-05T00:00:00Z
get users u1
get users u1 --json
get users u1 age name --as-of 2026-01-15T00:00:00Z
get users u1 age --as-of 2025-01-01T00:00:00Z --json
get users nobody --json
history users u1 age
history users u1 age --json --limit 1
delete users u1 age --ts 2026-03-01T00:00:00Z
history users u1 age
get users u1 age
join users --samples $T/samples.csv --features age,name
join users --samples $T/samples.csv --features age,emb,tags --known-at 2099-01-01T00:00:00Z
preload users $T/pre.csv --wait
get users p321 --json
table alter other --feature y:str --ttl 7d
table show other
table drop other
table list
get nosuch u1
get users u1 nosuchfeature
put users u1 age=abc
put users u1 name=x --ts notatime
table show other
history users u1 zzz
delete users u1 --ts 2026-04-01T00:00:00Z
get users u1 --json
EOF2

# Runs the script with the given connection flags; output: per command stdout, the
# "strata:" lines of stderr (messages, not timings) and the exit code.
run_script() {
  local out=$1; shift
  : > "$out"
  while IFS= read -r line; do
    echo "### $line" >> "$out"
    # shellcheck disable=SC2086
    $S "$@" $line >> "$out" 2> "$T/err"
    echo "exit $?" >> "$out"
    grep '^strata:' "$T/err" >> "$out"
  done < "$T/script"
  # ingest times differ between two runs by nature
  sed -i -E 's/"ingested":"[^"]*"/"ingested":"X"/g' "$out"
}

run_script "$T/embedded.out" --data-dir "$T/emb"

for io in uring epoll; do
  rm -rf "$T/srv" "$T/ready"
  "$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --io $io \
    --ready-file "$T/ready" 2>"$T/srv.log" &
  PID=$!
  for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || fail "stratad ($io) did not start: $(cat "$T/srv.log")"
  ADDR=$(awk '{print $1}' "$T/ready")
  run_script "$T/remote-$io.out" --addr "$ADDR"
  if ! diff -u "$T/embedded.out" "$T/remote-$io.out" > "$T/diff"; then
    cat "$T/diff"
    fail "--addr output ($io) differs from embedded output"
  fi
  # the error and success lines that must be there (so equal outputs are not both empty)
  grep -q "^age	31	2026-02-01T00:00:00Z" "$T/remote-$io.out" || fail "get output missing"
  grep -q "no such table" "$T/remote-$io.out" || fail "error message missing"
  grep -q '"age":321' "$T/remote-$io.out" || fail "preload result missing"
  kill -TERM $PID; wait $PID; rc=$?
  PID=
  [ $rc -eq 0 ] || fail "stratad ($io) exited $rc on SIGTERM"
done
# --token-file: the CLI authenticates; without it (or with a wrong one) it is refused.
echo "cli-s3cret" > "$T/token"
echo "nope" > "$T/wrong"
rm -rf "$T/srv" "$T/ready"
"$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 --admin off --auth-token-file "$T/token" \
  --ready-file "$T/ready" 2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
ADDR=$(awk '{print $1}' "$T/ready")
$S --addr "$ADDR" --token-file "$T/token" table create t --feature x:i64 >/dev/null \
  || fail "right token refused"
$S --addr "$ADDR" --token-file "$T/token" table list | grep -q '^t ' || fail "table list with token"
if $S --addr "$ADDR" table list >/dev/null 2>"$T/err"; then fail "no token accepted"; fi
grep -q "authentication" "$T/err" || fail "no-token error unclear: $(cat "$T/err")"
if $S --addr "$ADDR" --token-file "$T/wrong" table list >/dev/null 2>"$T/err"; then
  fail "wrong token accepted"
fi
grep -q "authentication" "$T/err" || fail "wrong-token error unclear: $(cat "$T/err")"
kill -TERM $PID; wait $PID; rc=$?; PID=
[ $rc -eq 0 ] || fail "stratad (auth) exited $rc on SIGTERM"

echo "ok: strata --addr output equals embedded output on io_uring and epoll ($(wc -l < "$T/script") commands)"
