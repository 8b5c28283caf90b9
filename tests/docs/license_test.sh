#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Every source file of the project (C++, CMake, shell, Python, the CI
# script) says its license in its first lines (SPDX-License-Identifier:
# BSL-1.0), and the LICENSE file is the Boost Software License 1.0.
#
#   license_test.sh ROOT           # check the files git tracks under ROOT
#   license_test.sh --self-test    # prove the check can fail
set -euo pipefail

check() {
  local root=$1 failed=0 f
  grep -q "^Boost Software License - Version 1.0" "$root/LICENSE" ||
    { echo "license_test: LICENSE is not the Boost Software License 1.0" >&2; failed=1; }
  while IFS= read -r f; do
    case $f in
      tests/fuzz/corpus/*) continue ;;
      *.cpp | *.hpp | *.h | *.cmake | *.sh | *.py | */CMakeLists.txt | CMakeLists.txt | .ci/run) ;;
      *) continue ;;
    esac
    [ -f "$root/$f" ] || continue
    if ! head -n 3 "$root/$f" | grep -q "SPDX-License-Identifier: BSL-1.0"; then
      echo "license_test: $f has no SPDX-License-Identifier: BSL-1.0 in its first lines" >&2
      failed=1
    fi
  done < <(cd "$root" && { git ls-files 2>/dev/null || find . -type f | sed 's|^\./||'; })
  return $failed
}

if [ "${1:-}" = --self-test ]; then
  here=$(cd "$(dirname "$0")/../.." && pwd)
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$scratch/src"
  cp "$here/LICENSE" "$scratch/"
  printf '// SPDX-License-Identifier: BSL-1.0\nint a;\n' > "$scratch/src/good.cpp"
  check "$scratch" || { echo "license_test --self-test: a good tree fails" >&2; exit 1; }
  printf 'int b;\n' > "$scratch/src/bad.cpp"
  if check "$scratch" 2>/dev/null; then
    echo "license_test --self-test: a file without the line passed" >&2
    exit 1
  fi
  echo "license_test --self-test: the check can fail"
  exit 0
fi

check "${1:?usage: license_test.sh ROOT | --self-test}"
echo "license_test: every source file names its license (BSL-1.0)"
