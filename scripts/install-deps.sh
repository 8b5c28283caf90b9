#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Installs the Debian packages one use of this repository needs, and only
# those:
#
#   scripts/install-deps.sh build   # the library, its tools and a default configure
#   scripts/install-deps.sh demo    # build + the demo's servers (Knot DNS, etcd) and gnuplot
#   scripts/install-deps.sh test    # demo + every real server and tool the suite runs
#   scripts/install-deps.sh         # the same as test
#   scripts/install-deps.sh --list MODE   # print the packages, install nothing
#
# Idempotent and non-interactive: packages already present are skipped, so a
# second run costs one dpkg query. Needs root (or sudo) only when something
# is missing.
set -euo pipefail

# The library with every default component (QORB_COMPONENTS): Boost (Asio,
# Beast, JSON), spdlog, c-ares (dns), libpq (postgres), prometheus-cpp and
# ncurses (observability, qtop), OpenSSL (tls, http), USDT probe headers.
# A default configure also builds the tests and benchmarks (GoogleTest,
# Google Benchmark; the install block in the README turns them off).
build=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libspdlog-dev libfmt-dev
  libc-ares-dev libpq-dev libssl-dev
  prometheus-cpp-dev libncurses-dev
  systemtap-sdt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# The demo: Knot DNS (or etcd with --discovery etcd) on loopback, and
# gnuplot for its picture.
demo=(knot knot-dnsutils etcd-server etcd-client gnuplot-nox)
# The suite: real PostgreSQL, nginx and OpenSSL's tool for certificates,
# bpftrace for the probes, tmux for the terminal tools, doxygen for the
# reference, clang and its fuzzer runtime for the fuzzers, python3 for the
# hostile peers, curl for the lines the demo prints, ccache so that the
# suite's builds reuse what they compiled alike, iproute2's tc to drop
# loopback traffic in a test's network namespace.
test=(postgresql nginx-light openssl bpftrace binutils tmux doxygen clang libclang-rt-14-dev python3 curl
      ccache iproute2)

list=false
if [ "${1:-}" = --list ]; then
  list=true
  shift
fi
mode=${1:-test}
case $mode in
  build) packages=("${build[@]}") ;;
  demo) packages=("${build[@]}" "${demo[@]}") ;;
  test) packages=("${build[@]}" "${demo[@]}" "${test[@]}") ;;
  *) echo "install-deps: unknown mode '$mode' (build, demo or test)" >&2; exit 2 ;;
esac
if $list; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

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
