#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The shell tests' form of tests/support/require_tool.hpp: runs a test command
# whose exit status 77 means "a tool that scripts/install-deps.sh test
# installs is missing" (ctest counts it as a skip, SKIP_RETURN_CODE 77). With
# QORB_REQUIRE_TOOLS=1 (scripts/test.sh, so CI) that 77 becomes a failure;
# the command's own output names the tool.
#   require_tools.sh COMMAND [ARG...]
set -uo pipefail
[ $# -gt 0 ] || { echo "require_tools.sh: no command given" >&2; exit 2; }
"$@"
status=$?
if [ "$status" -eq 77 ] && [ "${QORB_REQUIRE_TOOLS:-}" = 1 ]; then
  echo "require_tools.sh: a required tool is missing (see above), and QORB_REQUIRE_TOOLS=1 makes that a failure" >&2
  exit 1
fi
exit "$status"
