#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# run.sh BUILD_DIR CONSUMER_SOURCE_DIR
#
# Installs qorb into a scratch prefix and builds small programs against it
# as a user would: through find_package(qorb CONFIG) and through
# pkg-config. A TCP-only program (qorb::qorb, `pkg-config qorb`) must link
# none of the optional components' libraries (libpq, OpenSSL,
# prometheus-cpp, c-ares); a program of the DNS component (qorb::dns,
# `pkg-config qorb-dns`) links c-ares; a component that was not built is a
# clear find_package error.
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/qorb-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null

# The shared libraries a program needs, one per line.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
component_libs='libpq|libssl|libcrypto|libprometheus|libcares|libboost_json'
tcp_only() {
  local found
  found=$(needed "$1" | grep -E "^($component_libs)" || true)
  if [ -n "$found" ]; then
    echo "a TCP-only program ($1) links component libraries:" $found >&2
    exit 1
  fi
  echo "  $(basename "$1") needs: $(needed "$1" | tr '\n' ' ')"
}

echo "--- find_package(qorb CONFIG COMPONENTS dns)"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
tcp_only "$work/build/consumer"
"$work/build/dns_consumer"
needed "$work/build/dns_consumer" | grep -q '^libcares' ||
  { echo "dns_consumer does not link c-ares" >&2; exit 1; }

echo "--- pkg-config"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
pkg-config --exists qorb
# shellcheck disable=SC2046
c++ $(pkg-config --cflags qorb) "$src/main.cpp" -o "$work/consumer_pc" $(pkg-config --libs qorb)
"$work/consumer_pc"
tcp_only "$work/consumer_pc"
libs=$(pkg-config --libs qorb)
if grep -qE -- '-l(pq|ssl|crypto|prometheus|cares|boost_json)' <<<"$libs"; then
  echo "pkg-config --libs qorb names component libraries: $libs" >&2
  exit 1
fi
# shellcheck disable=SC2046
c++ $(pkg-config --cflags qorb-dns) "$src/dns_main.cpp" -o "$work/dns_consumer_pc" \
  $(pkg-config --libs qorb-dns)
"$work/dns_consumer_pc"

echo "--- a component that was not built"
mkdir -p "$work/missing"
cat > "$work/missing/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(missing LANGUAGES CXX)
find_package(qorb CONFIG REQUIRED COMPONENTS no_such_component)
CMAKE
if cmake -S "$work/missing" -B "$work/missing/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
    >"$work/missing.log" 2>&1; then
  echo "find_package(qorb COMPONENTS no_such_component) succeeded" >&2
  exit 1
fi
grep -q "without the 'no_such_component' component" "$work/missing.log" ||
  { cat "$work/missing.log" >&2; echo "no clear error for a missing component" >&2; exit 1; }
echo "consumer_check: passed"
