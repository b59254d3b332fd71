#!/usr/bin/env bash
# strata-admin store commands: backup -> restore round trip, verify, dump -> preload round
# trip, compact, stats, the refusals, and a damaged SST file (errors, never empty answers).
# Rerun by hand: BIN=bin bash tests/integ/admin_store.sh
set -euo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"; A="$PWD/$BIN/strata-admin"
T=$(mktemp -d /tmp/strata-admin-store.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/admin_store.sh"; exit 1; }
expect() { [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"; }

$S --data-dir d table create t --feature age:i64 --feature name:str --feature emb:f32[2] \
  --entity-column user_id >/dev/null
$S --data-dir d put t u1 age=1 'name=a,b' 'emb=[0.5,1]' --ts 2026-01-01T00:00:00Z >/dev/null
$S --data-dir d put t u1 age=2 --ts 2026-01-02T00:00:00Z >/dev/null
$S --data-dir d put t u2 age=5 name='say "hi"' --ts 2026-01-01T00:00:00Z >/dev/null

$A verify --data-dir d >v.txt 2>&1 || fail "verify: $(cat v.txt)"
grep -q "2 entities .* 6 versions" v.txt || fail "verify counts: $(cat v.txt)"

$A backup --data-dir d bk 2>/dev/null
$S --data-dir d put t u1 age=99 --ts 2026-02-01T00:00:00Z >/dev/null   # after the backup
if $A restore --data-dir d bk 2>err.txt; then fail "restore over existing data succeeded"; fi
grep -q -- "--force" err.txt || fail "restore refusal: $(cat err.txt)"
$A restore --data-dir d --force bk 2>/dev/null
expect "restored" '{"age":2,"name":"a,b"}' "$($S --data-dir d get t u1 age name --json)"
ls -d d.before-restore.* >/dev/null || fail "previous data was not kept aside"

# dump (all versions) loads back into a fresh table with the same reads
$A dump --data-dir d --all-versions --out dump.csv t 2>/dev/null
expect "dump rows" 3 "$(($(wc -l < dump.csv) - 1))"
$S --data-dir d2 table create t --feature age:i64 --feature name:str --feature emb:f32[2] \
  --entity-column user_id >/dev/null
$S --data-dir d2 preload t dump.csv >/dev/null 2>&1 || fail "preload of the dump failed"
for q in "u1 --as-of 2026-01-01T12:00:00Z" "u1" "u2"; do
  expect "round trip $q" "$($S --data-dir d get t $q --json)" "$($S --data-dir d2 get t $q --json)"
done

$A compact --data-dir d >/dev/null
$A stats --data-dir d --json > st.json
/usr/bin/python3 -c 'import json,sys; s=json.load(open("st.json")); assert s["shards"]==4 and s["tables"]==["t"], s'
if $A stats --data-dir nowhere 2>/dev/null; then fail "stats on a missing dir succeeded"; fi
if $A dump --data-dir d nosuch 2>err.txt; then fail "dump of a missing table succeeded"; fi
grep -q "no such table" err.txt || fail "dump error: $(cat err.txt)"
# a damaged SST file (its data block overwritten): verify, dump and get fail naming the shard
# and RocksDB's reason, never as an empty table or a missing value
cp -a d dmg
n=0
for f in dmg/shard-*/*.sst; do
  printf 'ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ' | dd of="$f" bs=1 seek=32 conv=notrunc 2>/dev/null
  n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "expected SST files after compact, found $n"
if $A verify --data-dir dmg >v.txt 2>&1; then fail "verify of a damaged store passed: $(cat v.txt)"; fi
grep -q "BAD" v.txt && grep -q "Corruption" v.txt || fail "verify report: $(cat v.txt)"
if $A dump --data-dir dmg --out dmg.csv t 2>err.txt; then fail "dump of a damaged store succeeded"; fi
grep -q "storage read failed in shard .*Corruption" err.txt || fail "dump error: $(cat err.txt)"
if $S --data-dir dmg get t u1 --json >out.txt 2>err.txt; then
  fail "get from a damaged store answered: $(cat out.txt)"
fi
grep -q "storage read failed in shard .*Corruption" err.txt || fail "get error: $(cat err.txt)"
echo "admin_store: all checks passed"
