// SPDX-License-Identifier: BSL-1.0
// qorb internals: why a PostgreSQL connect failed, read from libpq's error
// text, so that the connector can say when retrying will not help
// (qorb::permanent_error). Pure functions (no libpq), tested on their own.
//
// libpq gives no SQLSTATE for a failed connect: the server's ErrorResponse
// is parsed into a result that libpq frees, and only its text is kept in
// PQerrorMessage. The text of the server's message may be localized (the
// server's lc_messages), so matching "password authentication failed" would
// break on a German server. The SQLSTATE is never localized: the connector
// connects with PQERRORS_VERBOSE, which puts it into the text
// ("FATAL:  28P01: password authentication failed for user ..." and a
// "LOCATION:  auth_failed, auth.c:334" line), reads it here, and removes
// what the verbosity added, so that the message is the one libpq's default
// verbosity gives.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qorb::connectors::postgres::detail {

/// A failed connect's error text, read.
struct connect_failure {
  /// The text as libpq's default verbosity gives it (without the SQLSTATEs
  /// and LOCATION lines PQERRORS_VERBOSE added).
  std::string message;
  /// The SQLSTATE of each server error in the text, in order (libpq may
  /// try more than once in one connect, e.g. with and without TLS for
  /// sslmode=prefer); empty when the server sent none (a refused or lost
  /// TCP connection, a client-side error).
  std::vector<std::string> sqlstates;
};

/// True for the SQLSTATEs that say the server refused this user, password
/// or database, which no retry changes: class 28 (28000
/// invalid_authorization_specification: unknown role with `trust`, no
/// pg_hba.conf entry, a role that may not log in; 28P01 invalid_password,
/// also for an unknown role with password authentication) and 3D000
/// invalid_catalog_name (the database does not exist). Everything else is
/// worth retrying: 57P03 (starting up, shutting down), 53300 (too many
/// clients), 57P01 (terminated), ...
inline bool is_permanent_sqlstate(std::string_view sqlstate) noexcept {
  return (sqlstate.size() == 5 && sqlstate.substr(0, 2) == "28") || sqlstate == "3D000";
}

namespace connect_failure_detail {

inline bool is_sqlstate_char(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

// The position of "XXXXX: " right after the first "<severity>:  " of `line`
// (the two spaces are libpq's), or npos.
inline std::size_t sqlstate_at(std::string_view line) noexcept {
  for (std::size_t at = line.find(":  "); at != std::string_view::npos;
       at = line.find(":  ", at + 1)) {
    const std::size_t start = at + 3;
    if (line.size() < start + 7) return std::string_view::npos;
    bool code = true;
    for (std::size_t i = 0; i < 5 && code; ++i) code = is_sqlstate_char(line[start + i]);
    if (code && line[start + 5] == ':' && line[start + 6] == ' ') return start;
  }
  return std::string_view::npos;
}

}  // namespace connect_failure_detail

/// Reads the text of PQerrorMessage after a connect made with
/// PQERRORS_VERBOSE. Limits: the "LOCATION:  " label is libpq's own and is
/// translated when the application has set a message locale (then that
/// line stays in the message; the SQLSTATEs are read all the same); a line
/// whose text itself holds ":  " followed by five capitals or digits and
/// ": " would be read as a SQLSTATE.
inline connect_failure read_connect_failure(std::string_view verbose_text) {
  connect_failure out;
  std::size_t begin = 0;
  while (begin < verbose_text.size()) {
    std::size_t end = verbose_text.find('\n', begin);
    end = end == std::string_view::npos ? verbose_text.size() : end + 1;
    const std::string_view line = verbose_text.substr(begin, end - begin);
    begin = end;
    if (line.substr(0, 11) == "LOCATION:  ") continue;
    const std::size_t at = connect_failure_detail::sqlstate_at(line);
    if (at == std::string_view::npos) {
      out.message.append(line);
      continue;
    }
    out.sqlstates.emplace_back(line.substr(at, 5));
    out.message.append(line.substr(0, at)).append(line.substr(at + 7));
  }
  return out;
}

/// Whether a connect that failed this way will fail again however often it
/// is retried: the server refused it with permanent SQLSTATEs only (see
/// `is_permanent_sqlstate`), or the server asked for a password and none
/// was given (`needs_password`: libpq's PQconnectionNeedsPassword). When
/// libpq tried more than once, every server answer must be permanent; the
/// text does not say which attempt came last, so a permanent refusal
/// followed by an attempt that got no server answer at all (the server
/// went down in between) is read as permanent too: the next connect, after
/// the longest backoff, reads the failure again.
inline bool is_permanent(const connect_failure& failure, bool needs_password) noexcept {
  if (needs_password) return true;
  if (failure.sqlstates.empty()) return false;
  for (const auto& state : failure.sqlstates) {
    if (!is_permanent_sqlstate(state)) return false;
  }
  return true;
}

}  // namespace qorb::connectors::postgres::detail
