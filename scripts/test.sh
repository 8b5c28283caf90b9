#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Runs the whole test suite: installs what is missing, then builds and runs
# every test three times: an optimised build with warnings as errors, an
# ASan+UBSan build and a TSan build.
#
#   scripts/test.sh                 # all three
#   scripts/test.sh release|asan|tsan [ctest args...]   # one of them
#   scripts/test.sh fuzz            # only the fuzzers (tests/fuzz/run.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/install-deps.sh" test

jobs=${QORB_JOBS:-$(nproc)}

run_flavour() {
  local flavour=$1
  shift
  local dir="$root/build/$flavour"
  local args=(-G Ninja -DQORB_WERROR=ON)
  # ccache (install-deps installs it) keeps what a flavour compiled, so the
  # component-combination builds of the release flavour, and a second run,
  # compile only what changed. The paths stay absolute (no CCACHE_BASEDIR):
  # the combination builds sit at other depths, where relative paths differ.
  if command -v ccache >/dev/null; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  case $flavour in
    # Release (-O3), as users build it: GCC warns about things at -O3 that
    # it does not see at RelWithDebInfo's -O2 (-Wrestrict, for one).
    release) args+=(-DCMAKE_BUILD_TYPE=Release) ;;
    # Sanitizer builds skip the benchmark (it tests nothing) but keep the
    # examples: the demo and the example servers are tested as processes.
    # Line tables only (-g1): a sanitizer's report still names every frame's
    # file and line, and the builds take a quarter to a third less time than
    # with full debug info (-O1 for TSan: its manual's advice, and a third
    # less than -O2). Together they keep the suite well inside CI's time.
    asan) args+=(-DCMAKE_BUILD_TYPE=Debug -DQORB_SANITIZE=address,undefined
                 -DQORB_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS_DEBUG=-g1") ;;
    tsan) args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DQORB_SANITIZE=thread
                 -DQORB_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG") ;;
    *) echo "test.sh: unknown flavour '$flavour' (release, asan, tsan)" >&2; exit 2 ;;
  esac
  echo "=== $flavour: build ($dir)"
  cmake -S "$root" -B "$dir" "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== $flavour: test"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export QORB_REQUIRE_TOOLS=1  # a test skipped for a missing tool fails (tests/README.md)
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 300 "$@")
}

if [ "${1:-}" = fuzz ]; then
  exec "$root/tests/fuzz/run.sh"
elif [ $# -ge 1 ]; then
  flavour=$1
  shift
  run_flavour "$flavour" "$@"
else
  start=$SECONDS
  for flavour in release asan tsan; do
    run_flavour "$flavour"
  done
  # libFuzzer targets (clang), each for a bounded time; see tests/fuzz/README.md.
  "$root/tests/fuzz/run.sh"
  echo "=== all flavours passed in $((SECONDS - start)) s"
fi
