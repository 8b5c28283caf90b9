// SPDX-License-Identifier: BSL-1.0
// qorb: error codes.
#pragma once

#include <boost/system/error_code.hpp>

#include <string>
#include <system_error>

namespace qorb {

/// The error code type of qorb's completion handlers: Boost.Asio's, so that
/// `use_awaitable` and `use_future` throw on error and return the handle.
/// It holds `qorb::errc` values (a `std::error_code` category) and
/// compares equal to them: `ec == qorb::errc::all_claims_used`.
using error_code = boost::system::error_code;

/// Why a claim (or another pool operation) failed. Used as
/// `std::error_code` values of `qorb::category()`.
enum class errc {
  /// The claim timed out and the resolver knows no backends at all.
  no_backends = 1,
  /// The claim timed out; backends are known but none is connected.
  no_backends_online,
  /// The claim timed out while some backend was online: every connection
  /// was claimed (or the pool may not open more).
  all_claims_used,
  /// The pool was terminated (claims made after, or still waiting at,
  /// termination; a second terminate).
  terminated,
  /// A blocking call was made on a thread running the pool's executor,
  /// where waiting would stop the pool itself.
  would_deadlock,
  /// The claim timed out after the connector's `on_acquire` failed on the
  /// last connection offered to it (the backend's `last_error` in
  /// `pool::stats()` and the pool's log say why it failed).
  acquire_failed,
  /// Not a failure: thrown by a connector hook (`is_valid`, `on_acquire`,
  /// `on_recycle`) as `std::system_error(make_error_code(
  /// qorb::errc::connection_ended), "why")` to say the server ended the
  /// connection normally (closed an idle keep-alive connection, or asked
  /// to close it after a whole response). See `qorb::connector`.
  connection_ended,
  /// The pool is `failed` (no backend online for `policy::failed_after`, or
  /// every known backend's last connect failed permanently): claims fail at
  /// once instead of waiting (unless `policy::wait_when_failed`).
  pool_failed,
  /// Not a failure of the connection: thrown by `on_recycle` (or
  /// `is_valid`, `on_acquire`) as `std::system_error(make_error_code(
  /// qorb::errc::request_failed), "why")` to say the backend failed a
  /// request on a connection that is fine (an HTTP 5xx): counted as
  /// `handle::report_failure(why)` is, and the connection is kept.
  request_failed,
};

/// The category of `qorb::errc` values (name "qorb"; `message()` says what
/// each means).
const std::error_category& category() noexcept;

/// Makes `e` an error code of `category()`: what lets `ec == errc::...`
/// compile.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// Thrown by a connector's `connect` to say retrying will not help:
/// authentication refused, a certificate that cannot be trusted, an
/// unknown database. The backend backs off at `max_connection_backoff` at
/// once; when every known backend's last connect failed permanently the
/// pool becomes `failed` and claims fail with `errc::pool_failed`.
/// `code()` is the underlying error (e.g. a TLS verification error).
class permanent_error : public std::system_error {
 public:
  /// `ec`, and what went wrong (the connector's text for the failure).
  permanent_error(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
  /// `ec`, and what went wrong.
  permanent_error(std::error_code ec, const char* what) : std::system_error(ec, what) {}
  /// `ec` alone (`what()` is its message).
  explicit permanent_error(std::error_code ec) : std::system_error(ec) {}
};

}  // namespace qorb

template <>
struct std::is_error_code_enum<qorb::errc> : std::true_type {};
