// SPDX-License-Identifier: BSL-1.0
#include <qorb/log.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace qorb {

logger_ptr default_logger() {
  static const logger_ptr logger = [] {
    auto l = std::make_shared<spdlog::logger>(
        "qorb", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    const char* level = std::getenv("QORB_LOG");
    l->set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
    return l;
  }();
  return logger;
}

}  // namespace qorb
