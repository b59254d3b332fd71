#!/usr/bin/env bash
# `strata apply` / `strata export` (issue 15): the plan (create, add feature, change
# ttl/retention/max_versions, per-feature ttl, entity column), --dry-run changes nothing,
# data-losing changes refused without --force, drops only with --prune, YAML and JSON, and
# export -> apply is a no-op. Run embedded and against stratad; the outputs must be equal.
# Rerun by hand: BIN=bin bash tests/integ/cli_apply.sh
set -uo pipefail
BIN=${BIN:-bin}
S="$PWD/$BIN/strata"
SD="$PWD/$BIN/stratad"
T=$(mktemp -d /tmp/strata-apply.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
cd "$T"
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/cli_apply.sh"; exit 1; }
has() { grep -qF -- "$2" <<<"$3" || fail "$1: [$3] lacks [$2]"; }

cat > v1.yaml <<'EOF'
# the tables of a feature repo
tables:
  - name: user_profile
    entity_column: user_id
    ttl: 365d
    retention: 730d
    max_versions: 100
    features:
      - {name: age, type: i64}
      - {name: ctr, type: f64, ttl: 7d}
  - name: items
    features:
      - name: price
        type: f64
EOF
cat > v2.json <<'EOF'
{"tables": [
  {"name": "user_profile", "entity_column": "user_id", "ttl": "30d", "retention": "730d",
   "max_versions": 10,
   "features": [{"name": "age", "type": "i64"}, {"name": "ctr", "type": "f64", "ttl": "7d"},
                {"name": "emb", "type": "f32[3]"}]},
  {"name": "items", "features": [{"name": "price", "type": "f64"}]}
]}
EOF
sed 's/type: i64}/type: str}/' v1.yaml > typechange.yaml
sed 's/ttl: 7d}/ttl: 1d}/' v1.yaml > fttl.yaml
printf 'tables:\n  - name: z\n    colour: red\n    features: [{name: a, type: i64}]\n' > badkey.yaml
printf 'tables:\n  - name: z\n    features: [{name: a, type: int}]\n' > badtype.yaml
printf 'tables: [\n' > syntax.yaml
printf 'tables:\n  - name: items\n    features: [{name: price, type: f64}]\n' > only_items.yaml

# One scenario; every command's stdout+stderr and exit code go to the transcript.
scenario() { # scenario OUT CONNECTION-FLAGS...
  local out=$1; shift
  run() { echo "\$ strata ${*:3}"; $S "$@" 2>&1; echo "exit $?"; }
  {
    run "$@" apply v1.yaml --dry-run
    run "$@" table list
    run "$@" apply v1.yaml
    run "$@" put user_profile u1 age=31 --ts 2026-11-01T00:00:00Z
    run "$@" apply v1.yaml
    run "$@" apply v2.json
    run "$@" table show user_profile --json
    run "$@" apply typechange.yaml
    run "$@" apply fttl.yaml
    run "$@" apply v1.yaml
    run "$@" get user_profile u1 age --json
    run "$@" apply badkey.yaml
    run "$@" apply badtype.yaml
    run "$@" apply syntax.yaml
    run "$@" apply missing.yaml
    run "$@" apply only_items.yaml
    run "$@" apply only_items.yaml --prune --dry-run
    run "$@" export
    run "$@" export --format json
    run "$@" export items
    run "$@" export nosuch
  } > "$out"
  $S "$@" export --out exp.yaml >/dev/null || fail "export --out"
  $S "$@" apply exp.yaml | grep "nothing to change" >/dev/null || fail "export -> apply is not a no-op"
  $S "$@" export --out exp.json >/dev/null || fail "export --out .json"
  $S "$@" apply exp.json | grep "nothing to change" >/dev/null || fail "export json -> apply"
  $S "$@" apply typechange.yaml --force >/dev/null || fail "--force"
  $S "$@" table show user_profile --json | grep '"type": "str"' >/dev/null || fail "forced type change"
  $S "$@" apply only_items.yaml --prune >/dev/null || fail "--prune"
  [ "$($S "$@" table list | awk '{print $1}')" = items ] || fail "--prune left tables"
}

scenario emb.out --data-dir "$T/d"
"$SD" --data-dir "$T/srv" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --ready-file "$T/ready" \
  2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || fail "stratad did not start: $(cat "$T/srv.log")"
scenario srv.out --addr "$(awk '{print $1}' "$T/ready")"
kill -TERM $PID; wait $PID; PID=
diff -u emb.out srv.out || fail "remote apply output differs from embedded"

O=$(cat emb.out)
has "dry run plan" "+ create table user_profile (2 features: age:i64 ctr:f64)" "$O"
has "dry run count" "2 changes planned (--dry-run: nothing was changed)" "$O"
has "dry run changed nothing" "$(printf '$ strata table list\nno tables')" "$O"
has "applied" "applied 2 changes" "$O"
has "idempotent" "nothing to change" "$O"
has "alter plan" "~ alter table user_profile: ttl 365d -> 30d, max_versions 100 -> 10, add feature emb:f32[3]" "$O"
has "alter applied" '"ttl_s": 2592000' "$O"
has "type change refused" "! recreate table user_profile: feature age type i64 -> str; this drops every value in it (refused without --force)" "$O"
has "refusal" "1 change would lose data; nothing was changed" "$O"
has "feature ttl" "feature ctr ttl 7d -> 1d" "$O"
has "value kept" '{"age":31}' "$O"
has "dropping a feature" "feature emb dropped" "$O"
has "bad key" "table z: unknown key 'colour'" "$O"
has "bad type" "unknown type 'int'" "$O"
has "syntax" "syntax.yaml:2:" "$O"
has "missing file" "missing.yaml" "$O"
has "not pruned" "? table user_profile is not in the file: left alone (--prune drops it)" "$O"
has "prune plan" "- drop table user_profile and every value in it" "$O"
has "export yaml" '      - {name: "ctr", type: "f64", ttl: 7d}' "$O"
has "export json" '"entity_column": "user_id"' "$O"
has "export one" "no table 'nosuch'" "$O"
echo "PASS: cli_apply"
