// SPDX-License-Identifier: BSL-1.0
// qorb internals: the PostgreSQL connector's decisions, as pure functions
// (no libpq, no sockets) so that they are tested on their own.
#pragma once

#include <qorb/connectors/postgres.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qorb::connectors::postgres::detail {

/// libpq keyword/value pairs for a session with backend `b`: the config's
/// fields, then its extra parameters, then the backend's address and port
/// (which always win).
std::vector<std::pair<std::string, std::string>> connection_parameters(const config& cfg,
                                                                       const backend& b);

/// "postgres://user@127.0.0.1:5432/database": how errors and logs name a
/// session. Never contains the password.
std::string describe(const config& cfg, const backend& b);

/// `message` with every occurrence of `password` replaced by "********"
/// (when the password is not empty), and trailing newlines removed: every
/// message from libpq passes through here before reaching an error or a log.
std::string sanitize_message(std::string message, std::string_view password);

/// "ERROR 42P01: relation \"t\" does not exist (DETAIL: ...) (HINT: ...)".
std::string format_server_error(const error::server_fields& fields);

/// libpq's PQcmdTuples text ("" or a decimal count) as a number.
std::uint64_t parse_affected_rows(std::string_view text) noexcept;

/// The transaction state of a session (libpq's PGTransactionStatusType).
enum class transaction_state { idle, active, in_transaction, in_error, unknown };

/// What is known about a session being recycled, and what was already
/// tried on it during this recycle.
struct session_facts {
  bool connection_ok = true;  ///< open, not marked broken, libpq says OK
  bool pipeline_mode = false;
  transaction_state transaction = transaction_state::idle;
  bool drained = false;      ///< pending results were already drained
  bool rolled_back = false;  ///< ROLLBACK already ran
  bool discarded = false;    ///< DISCARD ALL already ran
};

/// The next thing `on_recycle` does to return a session to a clean, idle
/// state, so the next claimer never inherits a transaction, pending results
/// or (with `discard_all`) session state.
enum class recycle_step {
  done,           ///< clean: the session can be claimed again
  close,          ///< cannot be cleaned: the pool must drop it
  drain_results,  ///< a command is still in progress: read its results
  rollback,       ///< inside a transaction (open or failed): ROLLBACK
  discard_all,    ///< DISCARD ALL
};

recycle_step next_recycle_step(const session_facts& facts, bool discard_all) noexcept;

}  // namespace qorb::connectors::postgres::detail
