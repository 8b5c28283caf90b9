#!/usr/bin/env bash
# Installs every Debian package the build, tests, demo and tools need.
# Idempotent and non-interactive: packages already present are skipped, so a
# second run costs one dpkg query. Needs root (or sudo) only when something
# is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev
  doxygen gnuplot-nox
  libc-ares-dev knot knot-dnsutils
  libpq-dev postgresql
  systemtap-sdt-dev bpftrace binutils
  prometheus-cpp-dev libncurses-dev tmux
  etcd-server etcd-client
  libssl-dev openssl nginx-light
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
