#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The demo: installs what is missing, builds, and runs a pool over TCP echo
# servers found in Knot DNS on loopback, killing one and adding one as it
# goes. Arguments go to the demo (e.g. --duration 60 --claimers 16).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" demo
build="$root/build/release"
# The suite's release flavour (scripts/test.sh) builds here with the same
# options, so running one after the other rebuilds nothing.
args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DQORB_WERROR=ON)
# As test.sh: through ccache when it is there (the suite's install-deps
# installs it), so the two share one build.
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build" "${args[@]}" >/dev/null
cmake --build "$build" --target qorb_demo -j "$(nproc)"
exec "$build/examples/demo/qorb_demo" "$@"
