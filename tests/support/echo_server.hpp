// SPDX-License-Identifier: BSL-1.0
// Tests use the examples' echo server (a real TCP server on loopback).
#pragma once

#include "common/echo_server.hpp"

namespace qorb::test {
using examples::echo_server;
}
