// SPDX-License-Identifier: BSL-1.0
// stats_limits: the stats server's bounds on clients and descriptors, and
// the validation of its configuration.
#pragma once

#include <qorb/stats_server.hpp>

#include <cstddef>

namespace qorb::detail::stats_limits {

/// Whether descriptor `fd` leaves the last `reserved` below the
/// RLIMIT_NOFILE soft limit to the rest of the process. Descriptors are
/// allocated lowest first, so holding descriptor n means n are in use.
bool within_fd_budget(int fd, std::size_t reserved);

/// Refuses a client without reading from it: one non-blocking write of a
/// 503 (what fits in the socket's empty send buffer, always all of it),
/// then close.
void refuse(int fd);

/// Throws `std::invalid_argument` naming the field of `c` out of its bounds.
void check_config(const stats_server_config& c);

}  // namespace qorb::detail::stats_limits
