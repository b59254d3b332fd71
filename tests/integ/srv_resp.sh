#!/usr/bin/env bash
# The RESP port with the stock Redis tools, on both io backends: every command through
# redis-cli (RESP2, and RESP3 with -3), a 20000-command pipeline through `redis-cli --pipe`,
# redis-cli's own error display for bad commands, and the redis-py block of docs/resp.md run
# as written (against the real port), so the documented snippet cannot rot.
# Rerun by hand: BIN=bin bash tests/integ/srv_resp.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-srvresp.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/srv_resp.sh"; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli not installed (redis-tools)"; exit 77; }

# eq EXPECTED ARGS...: redis-cli's output (raw mode) must equal EXPECTED.
eq() {
  local want=$1; shift
  local got
  got=$(timeout 20 redis-cli -p "$RP" "$@" 2>&1)
  [ "$got" = "$want" ] || fail "redis-cli $*: expected [$want], got [$got]"
}

for io in uring epoll; do
  rm -rf "$T/d" "$T/ready"
  "$SD" --data-dir "$T/d" --listen 127.0.0.1:0 --admin off --resp 127.0.0.1:0 --resp-writes 1 \
    --io "$io" --ready-file "$T/ready" 2>"$T/log" &
  PID=$!
  for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || fail "stratad did not start: $(cat "$T/log")"
  A=$(awk '{print $1}' "$T/ready")
  RP=$(awk '{print $5}' "$T/ready")
  [ -n "$RP" ] || fail "no RESP port in the ready file: $(cat "$T/ready")"
  "$S" --addr "$A" table create user_profile --feature age:i64 --feature ctr:f64 \
    --feature name:str --feature emb:'f32[3]' --feature tags:'i64[]' >/dev/null || fail create

  eq PONG ping
  eq 5 hset user_profile:u42 age 31 ctr 0.25 name bob emb '[1,2.5,3]' tags '[4,5]'
  eq "$(printf '31\n0.25\nbob\n1\n2.5\n3\n4\n5')" hmget user_profile:u42 age ctr name emb tags
  eq "$(printf '\n')" hmget user_profile:nobody age
  eq "$(printf 'age\n31\nctr\n0.25\nname\nbob\nemb\n1\n2.5\n3\ntags\n4\n5')" hgetall user_profile:u42
  eq "$(printf '31\nbob')" strata.get user_profile u42 FEATURES age name
  eq "" strata.get user_profile u42 ASOF 2020-01-01 FEATURES age
  eq "$(printf '\n\n31\n0.25')" strata.mget user_profile FEATURES age ctr ENTITIES u7 u42
  # what redis-cli wrote is what the Strata CLI reads
  "$S" --addr "$A" get user_profile u42 age ctr | grep -q "0.25" || fail "strata get after HSET"
  # RESP3: doubles and maps as redis-cli -3 shows them
  got=$(timeout 20 redis-cli -3 --no-raw -p "$RP" hgetall user_profile:u42)
  echo "$got" | grep -q '^2# "ctr" => (double) 0.25$' || fail "RESP3 hgetall: $got"
  echo "$got" | grep -q '^1# "age" => (integer) 31$' || fail "RESP3 hgetall: $got"
  got=$(timeout 20 redis-cli -3 --no-raw -p "$RP" hello 3)
  echo "$got" | grep -q '^3# "proto" => (integer) 3$' || fail "HELLO 3: $got"
  got=$(timeout 20 redis-cli -3 --no-raw -p "$RP" hmget user_profile:u42 ctr nosuch 2>&1)
  echo "$got" | grep -q "NOTFOUND" || fail "RESP3 unknown feature: $got"
  timeout 20 redis-cli -p "$RP" info | grep -q "^io:$io" || fail "INFO has no io:$io"
  eq OK client setname feeder
  eq "ERR unknown command 'flushall'" flushall
  eq "ERR wrong number of arguments for 'HGETALL' command" HGETALL
  eq "ERR key 'x' is not TABLE:ENTITY" hmget x age

  # 20000 pipelined commands in one stream: every reply back, no errors
  for i in $(seq 1 10000); do
    printf 'HMGET user_profile:u42 age\r\nHMGET user_profile:p%d age ctr\r\n' "$i"
  done > "$T/pipe"
  out=$(timeout 60 redis-cli -p "$RP" --pipe < "$T/pipe" 2>&1)
  echo "$out" | grep -q "errors: 0, replies: 20000" || fail "--pipe: $out"

  # the redis-py snippet of docs/resp.md, verbatim but for the port
  if /usr/bin/python3 -c 'import redis' 2>/dev/null; then
    "$S" --addr "$A" table drop user_profile >/dev/null || fail "table drop"
    "$S" --addr "$A" table create user_profile --feature age:i64 --feature ctr:f64 >/dev/null ||
      fail "table create for the snippet"
    awk '/^```python$/{p=1; next} /^```$/{p=0} p' docs/resp.md | sed "s/port=7072/port=$RP/" \
      > "$T/snippet.py"
    [ -s "$T/snippet.py" ] || fail "no python block in docs/resp.md"
    /usr/bin/python3 "$T/snippet.py" || fail "docs/resp.md redis-py snippet ($io)"
  else
    echo "python3-redis missing: snippet not run"
  fi

  kill "$PID"; wait "$PID"; rc=$?; PID=
  [ $rc -eq 0 ] || fail "stratad exit $rc after SIGTERM ($io)"
  echo "ok $io"
done
echo PASS
