#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Fails when a file of the pool's core (src/core) does I/O or reads a clock
# or owns a random engine, or has grown past 400 lines: the core must stay a
# pure machine that tests and the simulator drive on a manual clock.
#
#   core_is_sans_io.sh DIR      check DIR
#   core_is_sans_io.sh --self-test   prove the check catches each fault
set -euo pipefail

check() {
  local dir=$1 bad=0
  local forbidden='#include *<boost/asio|#include *<(sys/socket|unistd|fcntl|thread|random|fstream|iostream)>|steady_clock|system_clock|high_resolution_clock|random_device|mt19937|std::rand\b|\bsleep_for\b'
  local f
  for f in "$dir"/*.hpp "$dir"/*.cpp; do
    [ -e "$f" ] || continue
    if grep -nE "$forbidden" "$f"; then
      echo "core_is_sans_io: $f: I/O, a clock or a random engine (see the lines above)" >&2
      bad=1
    fi
    local n
    n=$(wc -l <"$f")
    if [ "$n" -gt 400 ]; then
      echo "core_is_sans_io: $f: $n lines (at most 400: split the concept)" >&2
      bad=1
    fi
  done
  return $bad
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo 'int ok() { return 1; }' >"$tmp/good.cpp"
  check "$tmp" >/dev/null 2>&1 || { echo "self-test: a clean file was refused" >&2; exit 1; }
  for fault in '#include <boost/asio/post.hpp>' 'auto t = std::chrono::steady_clock::now();' \
               'std::random_device rd;' '#include <thread>'; do
    printf '%s\n' "$fault" >"$tmp/bad.cpp"
    if check "$tmp" >/dev/null 2>&1; then echo "self-test: missed: $fault" >&2; exit 1; fi
  done
  seq 401 | sed 's/^/int x/' >"$tmp/bad.cpp"
  if check "$tmp" >/dev/null 2>&1; then echo "self-test: missed a 401-line file" >&2; exit 1; fi
  echo "self-test: every fault caught"
  exit 0
fi

check "${1:?usage: core_is_sans_io.sh DIR | --self-test}"
echo "core_is_sans_io: $(ls "$1" | wc -l) files, no I/O, clock or random engine, none over 400 lines"
