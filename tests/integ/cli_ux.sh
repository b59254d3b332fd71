#!/usr/bin/env bash
# The `strata` CLI's defaults and manners (issue 15): where it talks to by default and the
# error when nothing answers, the config file and STRATA_ADDR, the timestamp plausibility
# guard, global options anywhere, delete at now, --help on every command, --version on every
# binary, empty-list messages, plurals, table drop confirmation on a terminal, stdin inputs,
# join --entity-column, FEATURE=@file, base64 bytes, preload/jobs --json fields, a failed job
# saying nothing was ingested, Ctrl-C during --wait. Embedded and against a real stratad.
# Rerun by hand: BIN=bin bash tests/integ/cli_ux.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
ROOT=$PWD
T=$(mktemp -d /tmp/strata-ux.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/cli_ux.sh"; exit 1; }
expect() { [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"; }
has() { grep -qF -- "$2" <<<"$3" || fail "$1: [$3] lacks [$2]"; }
expect_fail() { # expect_fail "description" "stderr substring" cmd...
  local what=$1 msg=$2; shift 2
  if "$@" >out.txt 2>err.txt; then fail "$what: succeeded: $(cat out.txt)"; fi
  grep -qF -- "$msg" err.txt || fail "$what: stderr lacks [$msg]: $(cat err.txt)"
}
export HOME="$T/home"; mkdir -p "$HOME"
unset STRATA_ADDR STRATA_CONFIG
DEAD=127.0.0.1:$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# ---- the default target: a server, never a silent ./data ----
mkdir cwd && cd cwd
STRATA_ADDR=$DEAD expect_fail "STRATA_ADDR down" "cannot reach stratad at $DEAD" $S table list
has "both ways" "--data-dir DIR" "$(cat err.txt)"
has "names STRATA_ADDR" "from STRATA_ADDR" "$(cat err.txt)"
if ! (exec 3<>/dev/tcp/127.0.0.1/7070) 2>/dev/null; then
  expect_fail "default target" "cannot reach stratad at 127.0.0.1:7070" $S table list
  has "default named" "the default" "$(cat err.txt)"
fi
[ ! -e data ] || fail "strata without --data-dir created ./data"
cd "$T"

# ---- embedded mode ----
D="--data-dir $T/d"
expect "empty table list" "no tables (create one: strata table create NAME --feature NAME:TYPE)" \
  "$($S $D table list)"
expect "empty jobs" "no jobs (start one: strata preload TABLE FILE)" "$($S $D jobs)"
expect "plural 1" "created table one with 1 feature" "$($S $D table create one --feature x:i64)"
has "list plural" "1 feature " "$($S $D table list)"
expect "plural n" "created table u with 3 features" \
  "$($S $D table create u --feature age:i64 --feature blob:bytes --feature note:str --entity-column user_id)"

# timestamps: seconds or microseconds where ms are expected are refused, naming the unit
expect_fail "ts s as ms" "integer timestamp 1762000000 in ms is 1970-01-21T09:26:40Z, outside 1990-2200; as s it is 2025-11-01T12:26:40Z" \
  $S $D put u a age=1 --ts 1762000000
expect_fail "ts us as ms" "as us it is 2025-11-01T12:26:40Z" $S $D put u a age=1 --ts 1762000000000000
expect_fail "as-of guarded" "--as-of: integer timestamp" $S $D get u a --as-of 17
# global options before or after the command
$S put u a age=1 --ts 1762000000 $D --ts-unit s >/dev/null || fail "--ts-unit after the command"
expect "ts-unit s" '{"age":1}' "$($S get u a age --json $D)"
$S $D --allow-any-ts put u old age=5 --ts 17 >/dev/null || fail "--allow-any-ts"
expect "json before" '{"age":1}' "$($S --json $D get u a age)"
expect "ts unit after, as-of" '{"age":1}' "$($S $D get u a age --as-of 1762000001 --ts-unit s --json)"
# delete defaults to now, like put
$S $D put u a note=hello >/dev/null
expect "delete at now" "ok: deleted note of a" "$($S $D delete u a note)"
expect "deleted" '{"note":null}' "$($S $D get u a note --json)"
# values: @file, base64
printf 'line one\nline two\n' > note.txt
printf '\x00\x01\xff' > blob.bin
$S $D put u f note=@note.txt blob=@blob.bin age=@<(echo 42) --ts 2026-01-01T00:00:00Z >/dev/null \
  || fail "FEATURE=@file"
expect "@file text" '{"note":"line one\nline two\n","blob":"0x0001ff","age":42}' \
  "$($S $D get u f note blob age --json)"
$S $D put u g blob=base64:AAH/ --ts 2026-01-01T00:00:00Z >/dev/null || fail "base64 put"
expect "base64" '{"blob":"0x0001ff"}' "$($S $D get u g blob --json)"
expect_fail "bad base64" "cannot parse 'base64:A'" $S $D put u g blob=base64:A
expect_fail "missing @file" "cannot read the file" $S $D put u g note=@nope.txt

# --help on every command (exit 0, stdout), and --version with the commit
for c in table apply export put delete get history join preload jobs; do
  out=$($S $c --help) || fail "$c --help failed"
  has "$c --help" "  $c" "$out"
done
has "table create --help" "--entity-column" "$($S table create --help)"
has "help CMD" "--samples" "$($S help join)"
for b in strata stratad stratafs strata-admin; do
  v=$("$ROOT/$BIN/$b" --version) || fail "$b --version failed"
  [[ "$v" =~ ^$b\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [0-9a-f]{7,}(-dirty)?\)$ ]] || \
    [[ "$v" =~ ^$b\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ unknown\)$ ]] || fail "$b --version: $v"
done
for c in trash rmr fs backup restore verify compact stats dump; do
  has "strata-admin $c --help" "strata-admin $c" "$("$ROOT/$BIN/strata-admin" $c --help)"
done

# table drop: asks on a terminal, not in scripts; --yes skips
$S $D table create tmp --feature x:i64 >/dev/null
printf 'n\n' | script -qec "$S $D table drop tmp" /dev/null > drop.txt 2>&1
has "drop asks" "drop table tmp and every value in it? [y/N]" "$(cat drop.txt)"
has "drop kept" "table tmp kept" "$(cat drop.txt)"
has "still there" "tmp" "$($S $D table list)"
printf 'y\n' | script -qec "$S $D table drop tmp" /dev/null > drop.txt 2>&1
has "drop yes" "dropped table tmp" "$(cat drop.txt)"
$S $D table create tmp --feature x:i64 >/dev/null
expect "drop --yes" "dropped table tmp" "$(script -qec "$S $D table drop tmp --yes" /dev/null </dev/null | tr -d '\r')"
expect "drop in a script" "dropped table one" "$($S $D table drop one </dev/null)"

# join: samples from stdin, --entity-column, plurals on stderr
printf 'uid,ts\na,2026-01-01T00:00:00Z\nf,2026-06-01T00:00:00Z\n' > s.csv
out=$($S $D join u --samples - --features age --entity-column uid < s.csv 2>join.err) || \
  fail "join from stdin: $(cat join.err)"
expect "join stdin" "$(printf 'uid,ts,age\na,2026-01-01T00:00:00Z,1\nf,2026-06-01T00:00:00Z,42')" "$out"
has "join plural" "joined 2 rows x 1 feature in" "$(cat join.err)"
expect_fail "join default entity column" "sample header has no 'user_id' column" \
  $S $D join u --samples s.csv --features age
printf 'user_id,ts\na,1762000000\n' > s2.csv
expect_fail "join ts guard" "s2.csv:2: integer timestamp 1762000000 in ms" \
  $S $D join u --samples s2.csv --features age

# preload: stdin, ts column message, short rows, --json fields, failed job wording
printf 'user_id,ts,age\np1,2026-01-01T00:00:00Z,10\np2,2026-01-01T00:00:00Z,20\n' | \
  $S $D preload u - --wait > pl.txt 2>&1 || fail "preload from stdin: $(cat pl.txt)"
has "preload stdin" "2 rows, 2 cells, 0 bad rows" "$(cat pl.txt)"
expect "preloaded" '{"age":20}' "$($S $D get u p2 age --json)"
[ -z "$(ls /tmp/strata-stdin-* 2>/dev/null | xargs -r grep -l '^p1,' 2>/dev/null)" ] || \
  fail "the stdin copy was left behind"
printf 'user_id,time,age\np3,2026-01-01T00:00:00Z,1\n' > nots.csv
expect_fail "no ts column" "nots.csv:1: no ts column 'ts'; use --ts-column" $S $D preload u nots.csv --wait
has "nothing ingested" "nothing was ingested: the table is unchanged" "$(cat err.txt)"
$S $D preload u nots.csv --ts-column time --wait >/dev/null 2>&1 || fail "--ts-column time"
printf 'user_id,ts,age\np4,2026-01-01T00:00:00Z\np5,2026-01-01T00:00:00Z,5\n' > short.csv
expect_fail "short row" "short.csv:2: 2 fields, the header has 3" $S $D preload u short.csv --wait
printf 'user_id,ts,age\np6,1762000000,6\n' > secs.csv
expect_fail "preload ts guard" "integer timestamp 1762000000 in ms is 1970-01-21" $S $D preload u secs.csv --wait
$S $D preload u secs.csv --wait --ts-unit s >/dev/null 2>&1 || fail "preload --ts-unit s"
$S $D preload u secs.csv --json --wait > pj.txt 2>pj.err && fail "preload --json of a bad file succeeded"
/usr/bin/python3 - pj.txt <<'PY' || fail "preload --json fields: $(cat pj.txt)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last = lines[-1]
assert last["finished"] is True and last["state"] == "failed", last
for k in ("id", "state", "rows", "cells", "bad_rows", "bytes_done", "bytes_total",
          "rows_per_s", "bytes_per_s", "error", "ingested"):
    assert k in last, k
assert last["ingested"] == "none" and "integer timestamp" in last["error"], last
PY
$S $D jobs --json > jj.txt || fail "jobs --json"
/usr/bin/python3 -c 'import json,sys; j=json.load(open("jj.txt")); assert len(j)>=5 and all("bytes_per_s" in x and "ingested" in x for x in j), j' \
  || fail "jobs --json fields"
has "jobs detail sizes" " B of " "$($S $D jobs 1)"

# ---- against stratad: STRATA_ADDR, the config file, preload -, Ctrl-C during --wait ----
"$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --ready-file "$T/ready" \
  2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || fail "stratad did not start: $(cat "$T/srv.log")"
ADDR=$(awk '{print $1}' "$T/ready")
expect "STRATA_ADDR" "no tables (create one: strata table create NAME --feature NAME:TYPE)" \
  "$(STRATA_ADDR=$ADDR $S table list)"
mkdir -p "$HOME/.config/strata"
printf '# strata CLI\naddr = %s\n' "$ADDR" > "$HOME/.config/strata/config"
$S table create r --feature age:i64 >/dev/null || fail "config file addr"
printf '[strata]\naddr = %s\nts_unit = s\n' "$ADDR" > cfg2
STRATA_CONFIG=$T/cfg2 $S put r a age=3 --ts 1762000000 >/dev/null || fail "STRATA_CONFIG ts_unit"
expect "--addr beats config" "1" "$($S --addr "$ADDR" table list | grep -c '^r ')"
printf 'bogus = 1\n' > cfg3
STRATA_CONFIG=$T/cfg3 expect_fail "bad config" "unknown key 'bogus'" $S table list
printf 'entity,ts,age\nq1,2026-01-01T00:00:00Z,7\n' | $S preload r - > rp.txt 2>&1 || \
  fail "remote preload from stdin: $(cat rp.txt)"
expect "remote stdin preload" '{"age":7}' "$($S get r q1 age --json)"
expect "remote preload --json" '"state":"queued"' \
  "$($S preload r "$T/secs.csv" --json --ts-unit s | grep -o '"state":"queued"')"
# Ctrl-C while waiting: a big job first keeps the followed one queued, so it cannot finish
awk 'BEGIN { print "entity,ts,age"; for (i = 0; i < 1500000; i++) printf "e%d,2026-01-01T00:00:00Z,%d\n", i, i }' > big.csv
$S preload r big.csv >/dev/null || fail "big preload"
$S preload r s2.csv --wait > w.out 2> w.err &
W=$!
for _ in $(seq 200); do grep -q submitted w.out 2>/dev/null && break; sleep 0.05; done
kill -INT $W; wait $W; rc=$?
expect "Ctrl-C exit" 130 $rc
has "Ctrl-C says" "keeps running on the server" "$(cat w.err)"
has "Ctrl-C how" "strata jobs" "$(cat w.err)"
JOB=$(grep -o 'job [0-9]*' w.out | awk '{print $2}')
$S jobs "$JOB" --wait > jw.txt 2>&1
has "jobs ID --wait follows" "job $JOB" "$(cat jw.txt)"
kill -TERM $PID; wait $PID; PID=
# stratad logs the end of every job
grep -q "INFO preload job [0-9]* done: table r, 1 row, 1 cell, 0 bad rows in" "$T/srv.log" || \
  fail "no 'done' line in the server log: $(grep preload "$T/srv.log")"
grep -q "WARN preload job $JOB failed after .*: table r, .*s2.csv: .*; nothing was ingested" \
  "$T/srv.log" || fail "no 'failed' line in the server log: $(grep preload "$T/srv.log")"
echo "PASS: cli_ux"
