// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below.
// expect: c\.connect\(b\).*(return-type-requirement|is invalid)
#define PROBE_HOOKS \
  connection_type connect(const qorb::backend& b);  // must be a coroutine
#include "connector.hpp"

int main() { build_pool(); }
