#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# scripts/docs.sh must fail on what it promises to catch: a copy of the
# public headers with one undocumented function, an asynchronous operation
# lacking its seven sections and a synchronous one lacking its three must
# fail with each named; a synchronous operation with its three sections and
# no boilerplate (no handler, executor, cancellation) must pass.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v doxygen >/dev/null || { echo "doxygen is not installed"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/qorb-docs-self-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$root/include/qorb" "$work/qorb"
cat > "$work/qorb/zz_self_test.hpp" <<'HPP'
#pragma once
namespace qorb {
/// Documented class, with one undocumented member and one operation
/// lacking its sections.
class self_test_probe {
 public:
  void undocumented_member();
  /// Starts something, without saying how it completes.
  void async_start();
  /// Ends something, without saying how it fails.
  void terminate();
  /// Resets something.
  ///
  /// Errors: none. Thread safety: any thread. Exceptions: none.
  void reset();
};
}  // namespace qorb
HPP
set +e
out=$("$root/scripts/docs.sh" --headers "$work/qorb" --out "$work/out" 2>&1)
rc=$?
set -e
fail=0
[ $rc -eq 1 ] || { echo "docs.sh exited $rc, expected 1"; fail=1; }
grep -q 'undocumented_member.*not documented' <<<"$out" ||
  { echo "no warning for the undocumented member"; fail=1; }
grep -q 'self_test_probe::async_start: no section(s): Handler, Errors, Executor, Cancellation, Lifetimes, Thread safety, Exceptions' <<<"$out" ||
  { echo "no missing-sections error for self_test_probe::async_start"; fail=1; }
grep -q 'self_test_probe::terminate: no section(s): Errors, Thread safety, Exceptions' <<<"$out" ||
  { echo "no missing-sections error for self_test_probe::terminate"; fail=1; }
if grep -q 'self_test_probe::reset' <<<"$out"; then
  echo "a synchronous operation with its three sections was refused"; fail=1
fi
if [ $fail -ne 0 ]; then
  echo "--- docs.sh said:"; echo "$out"; exit 1
fi
echo "docs.sh fails on an undocumented member and on missing sections, as it should"
