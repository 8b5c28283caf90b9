// SPDX-License-Identifier: BSL-1.0
// Command lines of the examples: "--name value" and "--name=value", values
// checked, and for anything wrong a message and the usage on stderr, exit 2.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace qorb::examples {

class command_line {
 public:
  command_line(int argc, char** argv, std::string program, std::string usage)
      : argc_(argc), argv_(argv), program_(std::move(program)), usage_(std::move(usage)) {}

  /// Moves to the next option; false at the end. Prints the usage and exits
  /// 0 on --help and -h.
  bool next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    inline_value_.reset();
    if (const auto eq = name_.find('='); name_.starts_with("--") && eq != std::string_view::npos) {
      inline_value_ = name_.substr(eq + 1);
      name_ = name_.substr(0, eq);
    }
    if (name_ == "--help" || name_ == "-h") {
      std::fputs(usage_.c_str(), stdout);
      std::exit(0);
    }
    return true;
  }

  /// The option's name, e.g. "--hold".
  std::string_view name() const { return name_; }

  /// The option's value: after '=', or the next argument.
  std::string_view value() {
    if (inline_value_) return *inline_value_;
    if (i_ + 1 >= argc_) fail("missing value for " + std::string(name_));
    return argv_[++i_];
  }

  /// The value as a number from `min` to `max` (finite).
  template <class T>
  T number(T min, T max) {
    const auto text = value();
    T result{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), result);
    const bool whole = end == text.data() + text.size();
    // Too large (or small) to parse is out of the range, not "not a number".
    if ((ec != std::errc{} && ec != std::errc::result_out_of_range) || !whole ||
        !std::isfinite(double(result))) {
      fail("bad " + std::string(name_) + ": '" + std::string(text) + "' is not a number");
    }
    if (ec == std::errc::result_out_of_range || result < min || result > max) {
      std::ostringstream range;
      range << name_ << " must be from " << min << " to " << max;
      fail(range.str());
    }
    return result;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    std::fprintf(stderr, "%s: %s\n\n%s", program_.c_str(), problem.c_str(), usage_.c_str());
    std::exit(2);
  }

  [[noreturn]] void unknown() const { fail("unknown argument '" + std::string(argv_[i_]) + "'"); }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string program_;
  std::string usage_;
  std::string_view name_;
  std::optional<std::string_view> inline_value_;
};

}  // namespace qorb::examples
