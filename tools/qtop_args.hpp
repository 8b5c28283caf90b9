// SPDX-License-Identifier: BSL-1.0
// qtop's command line: its usage text, and the options it asks for.
#pragma once

#include <chrono>
#include <string>
#include <variant>

namespace qtop {

extern const char* const usage;

struct endpoint_url {
  std::string shown;  // the WebSocket URL, as qtop connects to it
  std::string host;
  std::string port;
  std::string target;  // path and query
};

struct options {
  endpoint_url url;
  std::chrono::milliseconds interval{1000};
  std::string interval_text = "1";
  bool once = false;
  bool json = false;
};

// ws://HOST[:PORT][/PATH][?QUERY] or http://...; an empty path means
// /qtop/stats, and update_secs=`interval` is added unless the query has it.
// The URL, or why it is not one.
std::variant<endpoint_url, std::string> parse_url(const std::string& text,
                                                  const std::string& interval);

// The options, or what is wrong with the arguments.
std::variant<options, std::string> parse(int argc, char** argv);

}  // namespace qtop
