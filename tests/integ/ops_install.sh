#!/usr/bin/env bash
# Packaging (issue 15): `make install DESTDIR=...` installs only the public parts (four
# programs, libstrata.so with SONAME libstrata.so.0 exporting only strata_*, the header, the
# pkg-config file, man pages, completions); examples/strata_hello.c builds against the
# installed library with pkg-config and runs against a real stratad; `make run` builds only
# the server and honours PORT= and DATA=.
# Rerun by hand: BIN=bin bash tests/integ/ops_install.sh
set -uo pipefail
BIN=${BIN:-bin}
ROOT=$PWD
case "$BIN" in # the build flavour's directories, as `make asan` sets them
  bin-asan) FLAVOUR=(B=build-asan BIN=bin-asan LIB=lib-asan OPT="-O1 -g -fno-omit-frame-pointer"
                     SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined")
            XCFLAGS="-fsanitize=address,undefined" ;;
  *) FLAVOUR=(B=build BIN=bin LIB=lib); XCFLAGS="" ;;
esac
T=$(mktemp -d /tmp/strata-install.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "rerun: BIN=$BIN bash tests/integ/ops_install.sh"; exit 1; }

make -s -C "$ROOT" "${FLAVOUR[@]}" install DESTDIR="$T/root" PREFIX=/usr > "$T/install.log" 2>&1 \
  || fail "make install: $(tail -20 "$T/install.log")"
R=$T/root/usr
# only public things
expect_ls() { [ "$(cd "$1" && ls | tr '\n' ' ')" = "$2" ] || fail "$1 holds [$(cd "$1" && ls | tr '\n' ' ')], want [$2]"; }
expect_ls "$R/bin" "strata strata-admin stratad stratafs "
V=$(sed -n 's/^#define ST_VERSION "\(.*\)"/\1/p' "$ROOT/common/st_version.h")
expect_ls "$R/lib" "libstrata.so libstrata.so.0 libstrata.so.$V pkgconfig "
expect_ls "$R/include" "strata.h "
expect_ls "$R/share/man/man1" "strata.1 stratafs.1 "
expect_ls "$R/share/man/man8" "strata-admin.8 stratad.8 "
expect_ls "$R/share/bash-completion/completions" "strata strata-admin stratad stratafs "
[ -f "$R/share/zsh/site-functions/_strata" ] || fail "zsh completion not installed"
grep -q ldconfig "$T/install.log" && fail "ldconfig ran for a DESTDIR install"

# the library: SONAME and exports
SO=$R/lib/libstrata.so.$V
readelf -d "$SO" | grep 'SONAME.*\[libstrata.so.0\]' >/dev/null || fail "SONAME: $(readelf -d "$SO" | grep SONAME)"
[ "$(readlink "$R/lib/libstrata.so.0")" = "libstrata.so.$V" ] || fail "libstrata.so.0 link"
nm -D --defined-only "$SO" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u > "$T/syms"
bad=$(grep -v '^strata_' "$T/syms" | grep -v '^LIBSTRATA_0$' | head -5)
[ -z "$bad" ] || fail "libstrata.so exports non-public symbols: $bad"
n=$(wc -l < "$T/syms")
[ "$n" -ge 30 ] || fail "only $n exported symbols"
# every function the header declares is exported
grep -oE '\bstrata_[a-z_0-9]+\(' "$R/include/strata.h" | tr -d '(' | sort -u > "$T/decl"
missing=$(comm -23 "$T/decl" "$T/syms" | head -5)
[ -z "$missing" ] || fail "declared but not exported: $missing"
echo "libstrata.so.0: $n exported symbols, all strata_*"

# pkg-config and the example, outside the tree, against the installed copy
export PKG_CONFIG_PATH="$R/lib/pkgconfig"
flags=$(pkg-config --define-variable=prefix="$R" --cflags --libs strata) || fail "pkg-config strata"
[ "$(pkg-config --modversion strata)" = "$V" ] || fail "pkg-config version"
cp "$ROOT/examples/strata_hello.c" "$T/"
(cd "$T" && cc -std=c11 -Wall -Wextra -Werror $XCFLAGS strata_hello.c $flags -o hello) \
  || fail "the example does not build against the installed library"
deps=$(LD_LIBRARY_PATH="$R/lib" ldd "$T/hello") # (not piped into grep -q: pipefail and SIGPIPE)
grep -qF "libstrata.so.0 => $R/lib/libstrata.so.0" <<<"$deps" \
  || fail "the example does not load the installed libstrata.so.0: $deps"
"$R/bin/stratad" --data-dir "$T/data" --listen 127.0.0.1:0 --admin off --ready-file "$T/ready" \
  2>"$T/srv.log" &
PID=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || fail "installed stratad did not start: $(cat "$T/srv.log")"
out=$(LD_LIBRARY_PATH="$R/lib" ASAN_OPTIONS=detect_leaks=0 "$T/hello" "$(awk '{print $1}' "$T/ready")") \
  || fail "the example failed: $out"
grep -q "^u42 age = 31 (found 1)$" <<<"$out" || fail "example output: $out"
grep -q "^refused: integer timestamp 1762000000 in ms" <<<"$out" || fail "example ts guard: $out"
"$R/bin/strata" --addr "$(awk '{print $1}' "$T/ready")" table list | grep hello_users >/dev/null \
  || fail "installed strata CLI"
kill -TERM $PID; wait $PID; PID=

# `make run` builds the server only, with PORT and DATA
n=$(make -n -C "$ROOT" run B="$T/b" BIN="$T/bin" LIB="$T/lib" PORT=7999 DATA="$T/rundata" 2>/dev/null)
grep -q -- "--data-dir $T/rundata --listen 127.0.0.1:7999 --admin 127.0.0.1:8000" <<<"$n" \
  || fail "make run ignores PORT/DATA: $(tail -3 <<<"$n")"
grep -qE 'tests/|bench/|fuse/|tools/|client/' <<<"$n" && \
  fail "make run builds more than stratad: $(grep -E 'tests/|bench/|fuse/|tools/|client/' <<<"$n" | head -3)"
echo "PASS: ops_install"
