// SPDX-License-Identifier: BSL-1.0
// pool_state's frame around every public event (for the files that define
// events): the slot port points at the event's effects, the event's own
// steps run, then end_event's named steps.
#pragma once

#include "core/pool_state.hpp"

#include <type_traits>

namespace qorb::core {

// Every public event runs through here: its own steps (`body`, a lambda
// always inlined, as this is: a claim and a return pay no call for the
// structure), then the steps of the end of an event, called explicitly (no
// destructor plans).
template <class Body>
[[gnu::always_inline]] inline auto pool_state::in_event(effects& fx, Body&& body) {
  fx_ = &fx;
  if constexpr (std::is_void_v<std::invoke_result_t<Body&>>) {
    body();
    end_event();
  } else {
    auto result = body();
    end_event();
    return result;
  }
}

}  // namespace qorb::core
