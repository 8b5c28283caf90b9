# SPDX-License-Identifier: BSL-1.0
# Compiles one case (cmake -P run_case.cmake -DCOMPILER=... -DSOURCE=...
# -DINCLUDES=a;b) and checks the outcome its "// expect:" line names:
# "compiles", or a regular expression the compiler's errors must match.
file(STRINGS "${SOURCE}" expect_line REGEX "^// expect: ")
if(NOT expect_line)
  message(FATAL_ERROR "${SOURCE}: no '// expect:' line")
endif()
string(REGEX REPLACE "^// expect: " "" expect "${expect_line}")
set(include_flags "")
foreach(dir IN LISTS INCLUDES)
  list(APPEND include_flags "-I${dir}")
endforeach()
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C
          ${COMPILER} -std=c++20 -fsyntax-only ${include_flags} ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(expect STREQUAL "compiles")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} should compile, but:\n${out}")
  endif()
  message(STATUS "${SOURCE}: compiles, as it should")
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it should fail with: ${expect}")
endif()
# "// errors: N": the compiler reports exactly N errors (the commonest
# mistakes must give one line that says what to write, not a cascade).
file(STRINGS "${SOURCE}" errors_line REGEX "^// errors: ")
if(errors_line)
  string(REGEX REPLACE "^// errors: " "" want_errors "${errors_line}")
  string(REGEX MATCHALL "error: " error_lines "${out}")
  list(LENGTH error_lines got_errors)
  if(NOT got_errors EQUAL want_errors)
    message(FATAL_ERROR "${SOURCE}: ${got_errors} errors, expected ${want_errors}:\n${out}")
  endif()
endif()
string(REPLACE "\n" " " flat "${out}")
if(NOT flat MATCHES "${expect}")
  message(FATAL_ERROR "${SOURCE} failed to compile, but without the expected message\n"
    "  expected: ${expect}\n  got:\n${out}")
endif()
message(STATUS "${SOURCE}: fails with the expected message")
