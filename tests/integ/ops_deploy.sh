#!/usr/bin/env bash
# Deployment files (issue 15): the systemd units verify (systemd-analyze), the Prometheus
# rules check (promtool, when Debian's prometheus is installed) and, like the Grafana
# dashboard, only use metrics a live stratad exports (or the replication/stratafs metrics
# listed below); the example configs are accepted by stratad, strata and strata apply;
# /status and strata_build_info carry the version and commit of --version; the man pages
# render with man -l; the bash completion loads and completes, the zsh one parses.
# Rerun by hand: BIN=bin bash tests/integ/ops_deploy.sh
set -uo pipefail
BIN=${BIN:-bin}
ROOT=$PWD
case "$BIN" in bin-asan) B=build-asan ;; *) B=build ;; esac
S="$ROOT/$BIN/strata"
T=$(mktemp -d /tmp/strata-deploy.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/ops_deploy.sh"; exit 1; }
has() { grep -qF -- "$2" <<<"$3" || fail "$1: lacks [$2]"; }

# ---- stratad with the example config; /status, /metrics, the build info ----
sed -e 's/^listen = .*/listen = 127.0.0.1:0/' -e 's/^admin = .*/admin = 127.0.0.1:0/' \
  "$ROOT/ops/examples/stratad.conf" > "$T/stratad.conf"
"$ROOT/$BIN/stratad" --config "$T/stratad.conf" --data-dir "$T/data" --ready-file "$T/ready" \
  2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || fail "stratad with ops/examples/stratad.conf did not start: $(cat "$T/srv.log")"
ADDR=$(awk '{print $1}' "$T/ready"); ADMIN=127.0.0.1:$(awk '{print $2}' "$T/ready")
read -r _ VERSION _ COMMIT <<<"$("$ROOT/$BIN/stratad" --version | tr -d '()')"
curl -sf "http://$ADMIN/metrics" > "$T/metrics" || fail "no /metrics at $ADMIN"
has "build info" "strata_build_info{version=\"$VERSION\",commit=\"$COMMIT\"} 1" "$(cat "$T/metrics")"
status=$(curl -sf "http://$ADMIN/status") || fail "no /status"
/usr/bin/python3 - "$VERSION" "$COMMIT" "$status" <<'PY' || fail "/status version: $status"
import json, sys
s = json.loads(sys.argv[3])
assert s["version"] == sys.argv[1] and s["commit"] == sys.argv[2] and s["protocol"] == "1", s
PY
# the CLI's example config, pointed at this server; the example tables file plans cleanly
sed "s/^addr = .*/addr = $ADDR/" "$ROOT/ops/examples/strata.conf" > "$T/strata.conf"
out=$(STRATA_CONFIG=$T/strata.conf HOME=$T "$S" apply "$ROOT/ops/examples/tables.yaml" --dry-run) \
  || fail "apply --dry-run ops/examples/tables.yaml: $out"
has "example tables" "+ create table user_profile (3 features" "$out"
grep -q '^BACKING=.*' "$ROOT/ops/examples/stratafs.env" || fail "stratafs.env has no BACKING"

# ---- every metric the rules and the dashboard use exists ----
# Metrics of other components (a replica's lag, checked in repl_catchup.sh; stratafs
# --metrics; node_exporter), not served by a single stratad: they must at least be listed
# here, so a typo still fails.
OTHER="up strata_replication_lag_seconds stratafs_trash_bytes stratafs_journal_bytes
stratafs_journal_capacity_bytes node_filesystem_avail_bytes node_filesystem_size_bytes"
/usr/bin/python3 - "$ROOT/ops/prometheus/strata-alerts.yml" "$ROOT/ops/grafana/strata-dashboard.json" \
  "$T/metrics" "$OTHER" <<'PY' || fail "rules/dashboard metric check"
import json, re, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
dash = json.load(open(sys.argv[2]))
served = set()
for l in open(sys.argv[3]):
    if l.startswith("# TYPE "):
        _, _, name, kind = l.split()
        served.add(name)
        if kind == "histogram":
            served |= {name + "_bucket", name + "_sum", name + "_count"}
    elif l.strip() and l[0] != "#":
        served.add(l.split("{")[0].split(" ")[0])
known = served | set(sys.argv[4].split())
exprs = []
for g in rules["groups"]:
    assert g["rules"], g["name"]
    for r in g["rules"]:
        assert r["alert"] and r["expr"] and r["annotations"]["summary"], r
        exprs.append((r["alert"], r["expr"]))
names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
for want in ("StratadDown", "StratadStorageFailed", "StrataReplicationLag", "StrataPreloadFailed",
             "StratafsTrashNearlyFull", "StratafsJournalNearlyFull"):
    assert want in names, want
assert dash["panels"], "no panels"
for p in dash["panels"]:
    assert p["targets"], p["title"]
    exprs += [(p["title"], t["expr"]) for t in p["targets"]]
funcs = {"rate", "sum", "by", "max", "avg", "min", "histogram_quantile", "delta", "increase",
         "on", "group_left", "and", "or", "le", "instance", "mountpoint", "job", "state", "op"}
for where, e in exprs:
    e = re.sub(r'\{[^}]*\}', "", e)           # label matchers
    e = re.sub(r'\[[^\]]*\]', "", e)          # ranges
    for w in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", e):
        if w in funcs:
            continue
        if w.startswith(("strata", "node_", "up")) and w not in known:
            sys.exit(f"{where}: unknown metric {w}")
print(f"{len(exprs)} expressions, metrics known")
PY
kill -TERM $PID; wait $PID; PID=

if command -v promtool >/dev/null; then
  promtool check rules "$ROOT/ops/prometheus/strata-alerts.yml" > "$T/promtool.txt" 2>&1 \
    || fail "promtool: $(cat "$T/promtool.txt")"
else
  echo "promtool not installed (Debian package prometheus): rules checked by the parser only"
fi

# ---- systemd units ----
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$T/etc"
  cp "$ROOT/ops/examples/stratafs.env" "$T/etc/stratafs.env"
  for u in stratad stratafs; do
    sed -e "s|/usr/local/bin/|$ROOT/$BIN/|g" -e "s|/etc/strata/stratafs.env|$T/etc/stratafs.env|" \
      "$ROOT/ops/systemd/$u.service" > "$T/$u.service"
    (cd "$T" && systemd-analyze verify --man=no "$T/$u.service") > "$T/verify.txt" 2>&1 \
      || fail "systemd-analyze verify $u.service: $(cat "$T/verify.txt")"
    grep -qiE "unknown|invalid|ignoring" "$T/verify.txt" && fail "$u.service: $(cat "$T/verify.txt")"
    grep -q '^LimitNOFILE=' "$T/$u.service" || fail "$u.service has no LimitNOFILE"
  done
  for k in NoNewPrivileges ProtectSystem PrivateDevices RestrictAddressFamilies ExecStartPost; do
    grep -q "^$k=" "$ROOT/ops/systemd/stratad.service" || fail "stratad.service lacks $k"
  done
  grep -q -- '--ready-file /run/strata/stratad.ready' "$ROOT/ops/systemd/stratad.service" || \
    fail "stratad.service does not wait for the ready file"
else
  echo "systemd-analyze not installed: units not verified"
fi

# ---- man pages render ----
for m in "$ROOT/$B"/man/*.[18]; do
  out=$(MANWIDTH=80 man -l "$m" 2>"$T/man.err") || fail "man -l $m"
  [ -s "$T/man.err" ] && fail "man -l $m warns: $(cat "$T/man.err")"
  has "$m NAME" "NAME" "$out"
  has "$m SYNOPSIS" "SYNOPSIS" "$out"
done
[ "$(ls "$ROOT/$B"/man/*.[18] | wc -l)" = 4 ] || fail "expected 4 man pages in $B/man"
has "strata.1 apply" "apply FILE.yaml" "$(MANWIDTH=120 man -l "$ROOT/$B/man/strata.1")"

# ---- completions ----
comp() { # comp 'words...' -> the completions of the last word
  bash --norc -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
    f=$(complete -p "$1" | awk "{print \$3}"); $f; echo "${COMPREPLY[*]}"' _ \
    "$ROOT/ops/completions/strata.bash" "$@"
}
expect_comp() { local want=$1; shift; [ "$(comp "$@")" = "$want" ] || fail "completion of [$*]: [$(comp "$@")], want [$want]"; }
expect_comp "table" strata ta
expect_comp "create" strata table cr
expect_comp "s ms us" strata --ts-unit ""
expect_comp "--dry-run" strata apply --dr
expect_comp "--entity-column" strata join --ent
expect_comp "--yes" strata table drop --y
expect_comp "backup" strata-admin ba
expect_comp "--ready-file" stratad --ready
expect_comp "--no-passthrough" stratafs --no
if command -v zsh >/dev/null; then
  zsh -n "$ROOT/ops/completions/_strata" || fail "zsh completion does not parse"
  zsh -fc "fpath=($ROOT/ops/completions \$fpath); autoload -Uz compinit; compinit -u -d $T/zcd; \
    [[ \${_comps[strata]} == _strata ]]" || fail "zsh compinit does not register _strata"
else
  echo "zsh not installed: zsh completion not checked"
fi
echo "PASS: ops_deploy"
