// SPDX-License-Identifier: BSL-1.0
// qorb: logging. qorb logs through spdlog; every component takes a logger
// and a null logger means silence.
#pragma once

#include <memory>

namespace spdlog {
class logger;
}

namespace qorb {

/// A spdlog logger, as the pool and resolvers take it; null means silence.
using logger_ptr = std::shared_ptr<spdlog::logger>;

/// The logger qorb uses when you pass none: named "qorb", to stderr, level
/// from the environment variable QORB_LOG (trace, debug, info, warn, error,
/// off; default warn). Created once, shared.
logger_ptr default_logger();

}  // namespace qorb
