#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds the libFuzzer targets with clang (ASan+UBSan) into build/fuzz and
# runs each for a bounded time from its seed corpus (tests/fuzz/corpus/<target>/).
#
#   tests/fuzz/run.sh            # each target for QORB_FUZZ_SECONDS (default 15)
#   QORB_FUZZ_SECONDS=600 tests/fuzz/run.sh   # a longer run by hand
#
# Skips (exit 0, with a message) when clang or its fuzzer runtime is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/fuzz"
seconds=${QORB_FUZZ_SECONDS:-15}
cxx=${QORB_FUZZ_CXX:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "=== fuzz: skipped: $cxx not found (scripts/install-deps.sh installs clang)"
  exit 0
fi
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" -I"$root/include")
# target: its sources (besides the fuzzer's own file)
declare -A sources=(
  [dns_message]="src/resolvers/dns_message.cpp src/resolvers/dns_lookup.cpp src/backend.cpp"
  [postgres_protocol]="src/connectors/postgres_protocol.cpp src/backend.cpp src/log.cpp"
  [stats_request]="src/observability/stats_request.cpp"
  [stats_render]="src/observability/stats_json.cpp src/observability/stats_prometheus.cpp src/backend.cpp src/stats.cpp"
  [http_response]=""
  [etcd_reply]="src/resolvers/etcd_codec.cpp src/backend.cpp"
)
# target: extra compile and link flags
declare -A extra=(
  [etcd_reply]="-lboost_json"
  [stats_render]="-lboost_json -lprometheus-cpp-core"
  [postgres_protocol]="$(pkg-config --cflags --libs spdlog 2>/dev/null || echo -lspdlog -lfmt)"
)
for target in "${!sources[@]}"; do
  binary="$out/${target}_fuzz"
  src=("$root/tests/fuzz/${target}_fuzz.cpp")
  for s in ${sources[$target]}; do src+=("$root/$s"); done
  # shellcheck disable=SC2206  # the extra flags are words
  more=(${extra[$target]:-})
  if ! "$cxx" "${flags[@]}" "${src[@]}" "${more[@]}" -o "$binary" 2>"$out/$target.build.log"; then
    if grep -q "libclang_rt.fuzzer\|fsanitize=fuzzer" "$out/$target.build.log"; then
      echo "=== fuzz: skipped: no libFuzzer runtime (install libclang-rt-14-dev)"
      exit 0
    fi
    cat "$out/$target.build.log" >&2
    exit 1
  fi
  work="$out/$target.corpus"
  mkdir -p "$work"
  echo "=== fuzz: $target for $seconds s"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$out" && "$binary" -max_total_time="$seconds" -max_len=65535 -timeout=10 \
      "$work" "$root/tests/fuzz/corpus/$target")
done
echo "=== fuzz: passed"
