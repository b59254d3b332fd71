#!/usr/bin/env bash
# Installs the Debian packages Strata builds, tests and benchmarks with. Idempotent.
# --check: exit 0 if everything is present, 1 otherwise (installs nothing).
set -euo pipefail
PKGS=(build-essential pkg-config librocksdb-dev libfuse3-dev fuse3 liburing-dev libprotobuf-c-dev
      protobuf-c-compiler libevent-dev libxxhash-dev libcmocka-dev libzstd-dev zlib1g-dev
      libjansson-dev libcsv-dev libinih-dev libyaml-dev libhiredis-dev redis-server zstd gzip
      git rsync tar gnuplot-nox procps util-linux attr python3 clang libclang-rt-14-dev curl
      python3-dev python3-setuptools python3-pip python3-pytest python3-pandas python3-numpy
      python3-tqdm python3-redis python3-torch scdoc zsh man-db python3-yaml
      autoconf automake perl)
PKGS+=(redis-tools) # redis-cli: tests/integ/srv_resp.sh
PKGS+=(strace) # tests/integ/fs_journal.sh: the journal's fsync before its checkpoint
PKGS+=(etcd-server etcd-client) # failover coordination (issue 11): tests start their own etcd
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${1:-}" = "--check" ]; then
  [ ${#missing[@]} -eq 0 ]; exit $?
fi
[ ${#missing[@]} -eq 0 ] && { echo "install-deps: all ${#PKGS[@]} packages present"; exit 0; }
echo "install-deps: installing ${missing[*]}"
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y \
  --no-install-recommends "${missing[@]}"
