// SPDX-License-Identifier: BSL-1.0
#include "observability/stats_limits.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace qorb::detail::stats_limits {

bool within_fd_budget(int fd, std::size_t reserved) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return true;
  const auto cur = static_cast<std::uint64_t>(limit.rlim_cur);
  return static_cast<std::uint64_t>(fd) + reserved < cur;
}

void refuse(int fd) {
  static constexpr std::string_view busy =
      "HTTP/1.1 503 Service Unavailable\r\n"
      "Server: qorb stats_server\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Length: 34\r\n"
      "Connection: close\r\n"
      "Retry-After: 1\r\n"
      "\r\n"
      "too many clients, try again later\n";
  [[maybe_unused]] const auto sent =
      ::send(fd, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

void check_config(const stats_server_config& c) {
  const auto bad = [](const char* what) {
    throw std::invalid_argument(std::string("qorb: stats_server_config::").append(what));
  };
  constexpr std::size_t max_count = 1'000'000;
  constexpr auto max_interval = std::chrono::hours(1);
  if (c.max_connections < 1 || c.max_connections > max_count) {
    bad("max_connections must be within 1..1000000");
  }
  if (c.reserved_fds > max_count) bad("reserved_fds must be within 0..1000000");
  if (c.snapshot_interval < std::chrono::milliseconds::zero() ||
      c.snapshot_interval > max_interval) {
    bad("snapshot_interval must be within 0 ms..1 h");
  }
  if (c.log_interval < std::chrono::milliseconds::zero() || c.log_interval > max_interval) {
    bad("log_interval must be within 0 ms..1 h");
  }
  if (c.client_timeout <= std::chrono::milliseconds::zero() || c.client_timeout > max_interval) {
    bad("client_timeout must be within 1 ms..1 h");
  }
}

}  // namespace qorb::detail::stats_limits
