# SPDX-License-Identifier: BSL-1.0
# Writes the first ```cpp block under a README heading to a file, so the
# README's example is compiled (and run) exactly as shown:
#   cmake -DREADME=README.md -DHEADING="## Use it" -DOUT=use_it.cpp -P extract_snippet.cmake
file(READ "${README}" text)
string(FIND "${text}" "\n${HEADING}\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${README}: no heading '${HEADING}'")
endif()
string(SUBSTRING "${text}" ${at} -1 text)
string(FIND "${text}" "\n```cpp\n" open)
if(open EQUAL -1)
  message(FATAL_ERROR "${README}: no ```cpp block under '${HEADING}'")
endif()
math(EXPR open "${open} + 8")
string(SUBSTRING "${text}" ${open} -1 text)
string(FIND "${text}" "\n```\n" close)
if(close EQUAL -1)
  message(FATAL_ERROR "${README}: the ```cpp block under '${HEADING}' does not end")
endif()
math(EXPR close "${close} + 1")
string(SUBSTRING "${text}" 0 ${close} snippet)
file(WRITE "${OUT}" "// Generated from ${README} ('${HEADING}'); edit it there.\n${snippet}")
