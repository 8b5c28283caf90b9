#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Every combination of components must configure and build, with the other
# options at their defaults (tests, examples, benchmarks and tools on): a
# target that needs a component it was not built with is a link error that
# only such a build shows.
#
#   build_combinations.sh SOURCE_DIR BUILD_DIR [COMBINATION ...]
#
# COMBINATION is a QORB_COMPONENTS value, with ',' or ';' between components
# ("" for the core alone, "tls,http").
# Each builds in BUILD_DIR/<combination>. The compiler launcher of the
# calling build (ccache in the suite) is reused, so that sources compiled
# the same way in the suite's release build are not compiled again.
set -euo pipefail
src=$1
out=$2
shift 2
launcher=${QORB_COMBINATION_LAUNCHER:-}
args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DQORB_WERROR=ON)
[ -n "$launcher" ] && args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher")
mkdir -p "$out"
failed=0
for combination in "$@"; do
  combination=${combination//,/;}
  dir="$out/components-$(printf '%s' "${combination:-none}" | tr ';' '-')"
  start=$SECONDS
  if ! cmake -S "$src" -B "$dir" "${args[@]}" "-DQORB_COMPONENTS=$combination" \
      >"$dir.log" 2>&1; then
    echo "QORB_COMPONENTS='$combination': configure failed:" >&2
    tail -20 "$dir.log" >&2
    failed=1
    continue
  fi
  if ! cmake --build "$dir" -j "${QORB_JOBS:-2}" >>"$dir.log" 2>&1; then
    echo "QORB_COMPONENTS='$combination': build failed:" >&2
    grep -E "error|undefined reference|FAILED" "$dir.log" | head -20 >&2
    failed=1
    continue
  fi
  echo "QORB_COMPONENTS='$combination': built in $((SECONDS - start)) s"
done
exit $failed
