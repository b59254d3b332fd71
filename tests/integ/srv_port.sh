#!/usr/bin/env bash
# One port, one server: a second stratad on an address a running one holds (protocol, admin
# and RESP ports, both io backends, several network threads) must fail at start with "address
# already in use" and a non-zero exit, and the first keeps answering from its own store.
# Rerun by hand: BIN=bin bash tests/integ/srv_port.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-srvport.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/srv_port.sh"; exit 1; }

# resp_flag: whether this stratad has --resp (the RESP port is tested when it has).
RESP_FLAG=()
if "$SD" --help 2>&1 | grep -q -- '--resp'; then RESP_FLAG=(--resp 127.0.0.1:0); fi

for io in uring epoll; do
  rm -rf "$T/a" "$T/b" "$T/ready"
  "$SD" --data-dir "$T/a" --listen 127.0.0.1:0 --admin 127.0.0.1:0 "${RESP_FLAG[@]}" \
    --io "$io" --threads 2 --ready-file "$T/ready" 2>"$T/a.log" &
  PIDS+=($!)
  A_PID=$!
  for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
  [ -s "$T/ready" ] || fail "first stratad ($io) did not start: $(cat "$T/a.log")"
  ADDR=$(awk '{print $1}' "$T/ready")
  ADMIN_PORT=$(awk '{print $2}' "$T/ready")
  RESP_PORT=$(awk '{print $5}' "$T/ready")  # a 5th field once --resp exists
  $S --addr "$ADDR" table create only_in_a --feature x:i64 >/dev/null || fail "create ($io)"

  # The same address (protocol port), with 1 and 4 network threads: refused at start.
  for threads in 1 4; do
    rm -rf "$T/b"
    timeout 20 "$SD" --data-dir "$T/b" --listen "$ADDR" --admin off --io "$io" \
      --threads "$threads" 2>"$T/b.log"
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "second stratad on $ADDR ($io, $threads threads) exit $rc"
    grep -qi "address already in use" "$T/b.log" || fail "no 'address already in use' ($io): $(cat "$T/b.log")"
    [ -e "$T/b" ] && fail "second stratad ($io) touched its data dir before binding"
  done
  # The admin port.
  timeout 20 "$SD" --data-dir "$T/b" --listen 127.0.0.1:0 --admin "127.0.0.1:$ADMIN_PORT" \
    --io "$io" 2>"$T/b.log"
  rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "second stratad on admin port ($io) exit $rc"
  grep -qi "address already in use" "$T/b.log" || fail "admin: $(cat "$T/b.log")"
  # The RESP port.
  if [ ${#RESP_FLAG[@]} -gt 0 ]; then
    [ -n "$RESP_PORT" ] && [ "$RESP_PORT" != 0 ] || fail "ready file has no RESP port: $(cat "$T/ready")"
    rm -rf "$T/b"
    timeout 20 "$SD" --data-dir "$T/b" --listen 127.0.0.1:0 --admin off \
      --resp "127.0.0.1:$RESP_PORT" --io "$io" 2>"$T/b.log"
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "second stratad on RESP port ($io) exit $rc"
    grep -qi "address already in use" "$T/b.log" || fail "resp: $(cat "$T/b.log")"
  fi

  # Every connection still reaches the first server's store.
  for i in $(seq 20); do
    $S --addr "$ADDR" table list | grep -q only_in_a || fail "table list $i ($io) missed the first store"
  done
  kill -TERM "$A_PID"; wait "$A_PID" || fail "first stratad ($io) did not exit cleanly"
done
echo "ok"
