#!/usr/bin/env bash
# The `strata` CLI in embedded mode: every command, its output, its errors and exit codes.
# Rerun by hand: BIN=bin bash tests/integ/cli_embedded.sh
set -euo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
T=$(mktemp -d /tmp/strata-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
D="--data-dir $T/data"
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/cli_embedded.sh"; exit 1; }
expect() { # expect "description" "expected" "actual"
  [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
}
expect_fail() { # expect_fail "description" "stderr substring" cmd...
  local what=$1 msg=$2; shift 2
  if "$@" >out.txt 2>err.txt; then fail "$what: succeeded"; fi
  grep -qF -- "$msg" err.txt || fail "$what: stderr lacks [$msg]: $(cat err.txt)"
}

$S $D table create user_profile --feature age:i64 --feature ctr:f64 --feature emb:f32[3] \
  --feature tags:i64[] --feature name:str --ttl 3650d --max-versions 100 --entity-column user_id >/dev/null
expect "table list" "user_profile" "$($S $D table list | awk '{print $1}')"
expect "show json" '"user_id"' "$($S $D table show user_profile --json | grep -o '"user_id"')"
$S $D put user_profile u42 age=31 ctr=0.12 'emb=[0.1,0.2,0.3]' 'tags=[1,2]' name=alice --ts 2026-11-01T10:00:00Z >/dev/null
$S $D put user_profile u42 age=32 --ts 2026-11-10T10:00:00Z >/dev/null
$S --ts-unit s $D put user_profile u7 age=7 --ts 1793527200 >/dev/null
expect "get json" '{"age":32,"ctr":0.12,"emb":[0.1,0.2,0.3],"tags":[1,2],"name":"alice"}' \
  "$($S $D get user_profile u42 --json)"
expect "get as-of" '{"age":31}' "$($S $D get user_profile u42 age --as-of 2026-11-05T00:00:00Z --json)"
expect "get missing" '{"age":null}' "$($S $D get user_profile nobody age --json)"
expect "get plain" "age	32	2026-11-10T10:00:00Z" "$($S $D get user_profile u42 age)"
expect "ts unit" '{"age":7}' "$($S $D get user_profile u7 age --as-of 2026-11-01T10:00:00Z --json)"
# known-at: a read as of an ingest time before the second put sees the first value
sleep 0.01; K=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ); sleep 0.01
$S $D put user_profile u42 age=99 --ts 2026-11-10T10:00:00Z >/dev/null
expect "known-at" '{"age":32}' "$($S $D get user_profile u42 age --known-at "$K" --json)"
expect "overwrite" '{"age":99}' "$($S $D get user_profile u42 age --json)"
$S $D delete user_profile u42 age --ts 2026-11-12T00:00:00Z >/dev/null
expect "deleted" '{"age":null}' "$($S $D get user_profile u42 age --json)"
expect "before delete" '{"age":99}' "$($S $D get user_profile u42 age --as-of 2026-11-11T00:00:00Z --json)"
expect "history" "2026-11-12T00:00:00Z	<deleted>
2026-11-10T10:00:00Z	99
2026-11-01T10:00:00Z	31" "$($S $D history user_profile u42 age)"
expect "history limit" "1" "$($S $D history user_profile u42 age --limit 1 --json | grep -o '"ts"' | wc -l)"
expect "history range" "2026-11-10T10:00:00Z	99" \
  "$($S $D history user_profile u42 age --from 2026-11-02T00:00:00Z --to 2026-11-11T00:00:00Z)"

# join: output keeps input order and columns; empty where no value
cat > samples.csv <<'S'
user_id,ts,label
u42,2026-11-05T00:00:00Z,1
u7,2026-11-05T00:00:00Z,0
u42,2026-10-01T00:00:00Z,"a,b"
nobody,2026-11-05T00:00:00Z,1
u42,2026-11-11T00:00:00Z,0
S
$S $D join user_profile --samples samples.csv --features age,emb --out joined.csv 2>/dev/null
expect "join" 'user_id,ts,label,age,emb
u42,2026-11-05T00:00:00Z,1,31,"[0.1,0.2,0.3]"
u7,2026-11-05T00:00:00Z,0,7,
u42,2026-10-01T00:00:00Z,"a,b",,
nobody,2026-11-05T00:00:00Z,1,,
u42,2026-11-11T00:00:00Z,0,99,"[0.1,0.2,0.3]"' "$(cat joined.csv)"

# preload: CSV with --wait (plain progress without a terminal), then jobs
printf 'user_id,ts,age,ctr\np1,2026-11-01T00:00:00Z,1,0.5\np2,2026-11-01T00:00:00Z,2,\n' > f.csv
zstd -q f.csv -o f.csv.zst
$S $D preload user_profile f.csv.zst --wait >pl.txt 2>&1 || fail "preload: $(cat pl.txt)"
grep -q "done" pl.txt || fail "preload summary: $(cat pl.txt)"
expect "preloaded" '{"age":2,"ctr":null}' "$($S $D get user_profile p2 age ctr --json)"
expect "jobs list" "done" "$($S $D jobs | awk 'NR==2{print $2}')"
expect "jobs json" '"done"' "$($S $D jobs 1 --json | grep -o '"state": "done"' | grep -o '"done"')"
printf 'user_id,ts,age\np3,2026-11-01T00:00:00Z,x\np4,2026-11-01T00:00:00Z,4\n' > bad.csv
expect_fail "bad row" "bad.csv:2: feature 'age' (i64): cannot parse 'x'" $S $D preload user_profile bad.csv --wait
$S $D preload user_profile bad.csv --skip-bad-rows >pl.txt 2>&1 || fail "skip: $(cat pl.txt)"
grep -q "1 bad row$" pl.txt || fail "skip summary: $(cat pl.txt)"
expect "skipped" '{"age":4}' "$($S $D get user_profile p4 age --json)"

# errors: clear message, non-zero exit, nothing changed
expect_fail "unknown table" "no such table 'nope'" $S $D get nope u1
expect_fail "unknown feature" "has no feature 'shoe'" $S $D get user_profile u1 shoe
expect_fail "type mismatch" "cannot parse 'abc'" $S $D put user_profile u1 age=abc
expect_fail "wrong dim" "f32[3], value has 2" $S $D put user_profile u1 'emb=[1,2]'
expect_fail "bad ts" "bad --ts timestamp" $S $D put user_profile u1 age=1 --ts yesterday
expect_fail "bad type" "unknown type" $S $D table create t2 --feature a:int
expect_fail "dup table" "already exists" $S $D table create user_profile --feature a:i64
expect_fail "unknown cmd" "unknown command" $S $D frobnicate
printf 'id,ts\nx,1\n' > nohdr.csv
expect_fail "join header" "nohdr.csv:1: sample header has no 'user_id' column" $S $D join user_profile --samples nohdr.csv --features age
printf 'user_id,ts\nu1,soon\n' > badts.csv
expect_fail "join bad ts" "badts.csv:2: bad timestamp 'soon'" $S $D join user_profile --samples badts.csv --features age
set +e; $S $D get user_profile u1 shoe >/dev/null 2>&1; rc=$?; set -e
expect "exit code" 1 $rc

# alter and drop
$S $D table alter user_profile --feature score:f32 --ttl 30d >/dev/null
expect "alter" "score" "$($S $D table show user_profile | awk '/score/{print $1}')"
$S $D table drop user_profile >/dev/null
expect "dropped" "no tables (create one: strata table create NAME --feature NAME:TYPE)" "$($S $D table list)"
echo "cli_embedded: all checks passed"
