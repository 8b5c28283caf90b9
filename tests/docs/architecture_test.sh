#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# docs/architecture.md stays true to the tree. Fails when:
#   - a path in backquotes that starts with src/, include/, tests/, tools/,
#     examples/ or docs/ does not exist (file or folder; fenced blocks are
#     diagrams and are not read);
#   - an invariant the simulator checks (a name passed to fail, fatal or
#     fail_claim in tests/sim/*.cpp) is missing from the doc's list of
#     invariants (between the <!-- sim-invariants: begin ... --> and
#     <!-- sim-invariants: end --> markers, one "- `name`: promise" a line),
#     or the list names one the simulator does not check.
#
#   architecture_test.sh ROOT          # check ROOT/docs/architecture.md
#   architecture_test.sh --self-test   # prove each check can fail
set -euo pipefail

# check ROOT DOC SIM_DIR
check() {
  local root=$1 doc=$2 sim=$3 failed=0
  fail() { echo "architecture_test: $*" >&2; failed=1; }
  [ -f "$doc" ] || { echo "architecture_test: $doc is missing" >&2; return 1; }

  # Paths: inline code spans outside fenced blocks.
  local spans path n=0
  spans=$(awk '/^[[:space:]]*```/ { fenced = !fenced; next } !fenced' "$doc" |
          grep -oE '`[^`]+`' | tr -d '`' |
          grep -E '^(src|include|tests|tools|examples|docs)/[A-Za-z0-9_./-]*$' | sort -u || true)
  for path in $spans; do
    n=$((n + 1))
    [ -e "$root/$path" ] || fail "docs/architecture.md names $path, which does not exist"
  done
  [ "$n" -gt 0 ] || fail "no path found in docs/architecture.md (the check reads nothing)"

  # Invariants: the simulator's names against the doc's list, both ways.
  local code listed name
  code=$(cat "$sim"/*.cpp |
         perl -0777 -ne 'print "$1\n" while /\b(?:fail|fatal|fail_claim)\(\s*(?:v,\s*)?"([a-z_]+)"/g' |
         sort -u)
  listed=$(sed -n '/<!-- sim-invariants: begin/,/<!-- sim-invariants: end -->/p' "$doc" |
           sed -nE 's/^[[:space:]]*- `([a-z_]+)`:.*/\1/p' | sort -u)
  [ -n "$code" ] || fail "no invariant found in $sim/*.cpp (the check reads nothing)"
  [ -n "$listed" ] ||
    fail "docs/architecture.md has no list of invariants between the sim-invariants markers"
  for name in $code; do
    grep -qx "$name" <<<"$listed" ||
      fail "the simulator checks invariant $name; docs/architecture.md does not list it"
  done
  for name in $listed; do
    grep -qx "$name" <<<"$code" ||
      fail "docs/architecture.md lists invariant $name; tests/sim does not check it"
  done
  return $failed
}

here=$(cd "$(dirname "$0")/../.." && pwd)

if [ "${1:-}" = --self-test ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  copy() {
    rm -rf "$scratch/sim" "$scratch/architecture.md"
    mkdir -p "$scratch/sim"
    cp "$here/docs/architecture.md" "$scratch/architecture.md"
    cp "$here"/tests/sim/*.cpp "$here"/tests/sim/*.hpp "$scratch/sim/"
  }
  run() { check "$here" "$scratch/architecture.md" "$scratch/sim"; }
  expect_failure() {
    local what=$1
    if run 2>/dev/null; then
      echo "architecture_test --self-test: not caught: $what" >&2
      exit 1
    fi
  }
  copy; run || { echo "architecture_test --self-test: the tree itself fails" >&2; exit 1; }
  copy; echo 'See `src/core/no_such_unit.cpp`.' >>"$scratch/architecture.md"
  expect_failure "a path that does not exist"
  copy; sed -i 's#`src/pool/`#`src/no_such_folder/`#' "$scratch/architecture.md"
  expect_failure "a folder that does not exist"
  copy; sed -i '/^  - `fifo`:/d' "$scratch/architecture.md"
  expect_failure "an invariant left out of the doc"
  copy; sed -i 's/^  - `budget`:/  - `budget`: x\n  - `no_such_invariant`:/' "$scratch/architecture.md"
  expect_failure "the doc listing an invariant the simulator does not check"
  copy; printf '%s\n' 'void more(const view& v) { v.report.fail(' '    "brand_new_invariant", "x"); }' \
    >>"$scratch/sim/invariants.cpp"
  expect_failure "a new invariant in the simulator, not in the doc"
  copy; sed -i '/<!-- sim-invariants: begin/d' "$scratch/architecture.md"
  expect_failure "the doc's list of invariants without its marker"
  echo "architecture_test --self-test: every check can fail"
  exit 0
fi

root=${1:?usage: architecture_test.sh ROOT | --self-test}
check "$root" "$root/docs/architecture.md" "$root/tests/sim"
echo "architecture_test: docs/architecture.md's paths exist and its invariants are the simulator's"
