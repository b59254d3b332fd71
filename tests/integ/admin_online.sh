#!/usr/bin/env bash
# strata-admin backup|stats|verify --addr (issue 15): the running stratad does the work on
# the store it has open (the offline forms refuse while it runs); the backup it writes opens
# as a store holding every acknowledged write; reports match the offline ones.
# Rerun by hand: BIN=bin bash tests/integ/admin_online.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
A="$PWD/$BIN/strata-admin"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-adminon.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/admin_online.sh"; exit 1; }
has() { grep -qF -- "$2" <<<"$3" || fail "$1: [$3] lacks [$2]"; }

"$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 --admin off --ready-file "$T/ready" 2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || fail "stratad did not start: $(cat "$T/srv.log")"
ADDR=$(awk '{print $1}' "$T/ready")
$S --addr "$ADDR" table create users --feature age:i64 --feature name:str >/dev/null || fail "create"
for i in $(seq 1 50); do echo "put users u$i age=$i name=n$i --ts 2026-01-0$((i % 9 + 1))T00:00:00Z"; done |
  while read -r line; do $S --addr "$ADDR" $line >/dev/null || exit 1; done || fail "puts"
$S --addr "$ADDR" delete users u1 age --ts 2026-02-01T00:00:00Z >/dev/null || fail "delete"

# the offline forms refuse while the server holds the store; the online forms work
"$A" stats --data-dir "$T/srv" > off.txt 2>&1 && fail "offline stats on a live store succeeded"
out=$("$A" stats --addr "$ADDR") || fail "stats --addr"
has "stats server" "server:     $ADDR" "$out"
has "stats tables" "tables:     1" "$out"
"$A" stats --addr "$ADDR" --json > st.json || fail "stats --json"
/usr/bin/python3 -c 'import json; s=json.load(open("st.json")); assert s["tables"]==["users"] and s["shards"]>=1 and "sst_bytes" in s and "latest_sequences" in s, s' \
  || fail "stats --json fields: $(cat st.json)"
out=$("$A" verify --addr "$ADDR" 2>&1) || fail "verify --addr: $out"
has "verify table" "table users                          50 entities        101 versions        1 tombstones  ok" "$out"
"$A" verify --addr "$ADDR" --json > v.json 2>/dev/null || fail "verify --json"
grep -q '"ok": true' v.json || fail "verify --json: $(cat v.json)"

# backup: written by the server, to an absolute path on its machine
"$A" backup --addr "$ADDR" relative/dir > b.txt 2>&1 && fail "relative backup path accepted"
has "relative refused" "absolute path" "$(cat b.txt)"
out=$("$A" backup --addr "$ADDR" "$T/bk") || fail "backup --addr: $out"
has "backup says" "written by the server to $T/bk" "$out"
"$A" backup --addr "$ADDR" "$T/bk" > b2.txt 2>&1 && fail "backup over an existing one succeeded"
grep -q "backup written to $T/bk" "$T/srv.log" || fail "the server did not log the backup"
# writes after the backup are not in it
$S --addr "$ADDR" put users late age=1 >/dev/null || fail "late put"
"$A" stats --addr "$ADDR" --token-file /nonexistent > tk.txt 2>&1 && fail "missing token file accepted"
"$A" stats --addr 127.0.0.1:1 > dead.txt 2>&1 && fail "stats against nothing succeeded"
has "dead server" "stats --addr 127.0.0.1:1" "$(cat dead.txt)"
kill -TERM $PID; wait $PID; PID=

# the backup is a store: every acknowledged write before it, nothing after
"$A" restore --data-dir "$T/restored" "$T/bk" >/dev/null 2>&1 || fail "restore of the online backup"
[ "$($S --data-dir "$T/restored" get users u50 age name --json)" = '{"age":50,"name":"n50"}' ] \
  || fail "restored value"
[ "$($S --data-dir "$T/restored" get users u1 age --json)" = '{"age":null}' ] || fail "restored tombstone"
[ "$($S --data-dir "$T/restored" get users late age --json)" = '{"age":null}' ] || fail "late write in the backup"
# offline and online reports agree
off=$("$A" verify --data-dir "$T/restored" 2>/dev/null) || fail "offline verify of the restore"
has "offline verify" "table users                          50 entities        101 versions        1 tombstones  ok" "$off"
echo "PASS: admin_online"
