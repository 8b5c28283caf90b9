// SPDX-License-Identifier: BSL-1.0
// The one shape of qorb's error categories (qorb, qorb.http, qorb.tls,
// qorb.postgres): a name, a message per value of an error enum, and a
// message for a value the enum does not have. Each category is a
// function-local instance of `error_category<Errc>` behind its accessor.
#pragma once

#include <string>
#include <system_error>

namespace qorb::detail {

/// Whether the message for an unknown value ends with the value.
enum class unknown_value { omitted, appended };

template <class Errc>
class error_category final : public std::error_category {
 public:
  /// The message of a value of `Errc`; null for one the enum does not name.
  /// Written as a switch over the enum, so a value added to it without a
  /// message is a warning.
  using describe_fn = const char* (*)(Errc) noexcept;

  /// `unknown` is the message of a value `describe` gives none for,
  /// followed by " <value>" when `value` is `appended`.
  constexpr error_category(const char* name, describe_fn describe, const char* unknown,
                           unknown_value value) noexcept
      : name_(name), describe_(describe), unknown_(unknown), value_(value) {}

  const char* name() const noexcept override { return name_; }

  std::string message(int code) const override {
    if (const char* text = describe_(static_cast<Errc>(code))) return text;
    std::string text = unknown_;
    if (value_ == unknown_value::appended) {
      text += ' ';
      text += std::to_string(code);
    }
    return text;
  }

 private:
  const char* name_;
  describe_fn describe_;
  const char* unknown_;
  unknown_value value_;
};

}  // namespace qorb::detail
