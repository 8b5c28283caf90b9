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
  [postgres_protocol]="src/connectors/postgres_protocol.cpp src/tcp_config.cpp src/backend.cpp src/log.cpp"
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
# Two phases, each $jobs at a time (the targets are independent): build
# every target, then run each for $seconds. Every target still gets its
# whole time; the suite waits half as long on two cores.
jobs=${QORB_FUZZ_JOBS:-$(nproc)}
build_one() {
  local target=$1 binary="$out/${1}_fuzz"
  local src=("$root/tests/fuzz/${target}_fuzz.cpp")
  for s in ${sources[$target]}; do src+=("$root/$s"); done
  # shellcheck disable=SC2206  # the extra flags are words
  local more=(${extra[$target]:-})
  "$cxx" "${flags[@]}" "${src[@]}" "${more[@]}" -o "$binary" 2>"$out/$target.build.log"
}
run_one() {
  local target=$1 work="$out/$1.corpus"
  mkdir -p "$work"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$out/${target}_fuzz" -max_total_time="$seconds" -max_len=65535 -timeout=10 \
      "$work" "$root/tests/fuzz/corpus/$target") >"$out/$target.run.log" 2>&1
}
# Runs "$1 target" for every target, $jobs at a time; the failed targets in $failed.
each_target() {
  local step=$1 target
  for target in "${!sources[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    rm -f "$out/$target.$step.rc"
    ( set +e; "$step" "$target"; echo $? >"$out/$target.$step.rc" ) &
  done
  wait
  failed=()
  for target in "${!sources[@]}"; do
    [ "$(cat "$out/$target.$step.rc" 2>/dev/null)" = 0 ] || failed+=("$target")
  done
}
echo "=== fuzz: building ${#sources[@]} targets, $jobs at a time"
each_target build_one
for target in "${failed[@]}"; do
  if grep -q "libclang_rt.fuzzer\|fsanitize=fuzzer" "$out/$target.build.log"; then
    echo "=== fuzz: skipped: no libFuzzer runtime (install libclang-rt-14-dev)"
    exit 0
  fi
  cat "$out/$target.build.log" >&2
done
[ "${#failed[@]}" -eq 0 ] || exit 1
echo "=== fuzz: running each target for $seconds s, $jobs at a time: ${!sources[*]}"
each_target run_one
for target in "${!sources[@]}"; do
  echo "=== fuzz: $target: $(grep -E '^Done|^#[0-9]+ *DONE' "$out/$target.run.log" | tail -1)"
done
for target in "${failed[@]}"; do
  echo "=== fuzz: $target FAILED; its output:" >&2
  cat "$out/$target.run.log" >&2
done
[ "${#failed[@]}" -eq 0 ] || exit 1
echo "=== fuzz: passed"
