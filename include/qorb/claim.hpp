// qorb: handle<Conn>, the RAII claim on one pooled connection.
#pragma once

#include <qorb/detail/pool_core.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>

namespace qorb {

/// A claimed connection. Move-only; destroying it (or `reset()`) returns
/// the connection to the pool, which recycles it (`on_recycle`) before it
/// can be claimed again. `discard()` says the connection is broken: the pool
/// closes it and reconnects instead.
///
/// Thread safety: a handle is one object, not to be used from two threads at
/// once, but it may be moved to and destroyed on any thread, also after the
/// pool is gone (the connection is then closed).
///
/// Accessing the connection of an empty handle (default-constructed, moved
/// from, reset or discarded) throws `std::logic_error`.
template <class Conn>
class handle {
 public:
  handle() noexcept = default;

  handle(handle&& other) noexcept
      : core_(std::move(other.core_)),
        slot_(std::exchange(other.slot_, nullptr)),
        conn_(std::exchange(other.conn_, nullptr)) {}

  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::move(other.core_);
      slot_ = std::exchange(other.slot_, nullptr);
      conn_ = std::exchange(other.conn_, nullptr);
    }
    return *this;
  }

  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;

  ~handle() { reset(); }

  /// The connection.
  Conn& get() const {
    if (!conn_)
      throw std::logic_error("qorb::handle: no connection (empty, moved-from or returned)");
    return *conn_;
  }
  Conn& operator*() const { return get(); }
  Conn* operator->() const { return &get(); }

  /// Whether this handle holds a connection.
  explicit operator bool() const noexcept { return conn_ != nullptr; }

  /// Returns the connection to the pool now (for recycling).
  void reset() noexcept { give_back(false); }

  /// Returns the connection as broken: it is closed, counted as a failure
  /// of its backend, and the slot reconnects.
  void discard() noexcept { give_back(true); }

  /// The backend this connection goes to. Precondition: `*this` is true.
  const qorb::backend& backend() const {
    get();
    return detail::pool_core::backend_of(slot_);
  }

  /// The slot's id (upper 16 bits: backend set, lower 48: slot number), as
  /// in probes and logs. Precondition: `*this` is true.
  std::uint64_t slot_id() const {
    get();
    return detail::pool_core::id_of(slot_);
  }

  /// For the pool only.
  handle(std::shared_ptr<detail::pool_core> owner, core::slot* s, Conn* conn) noexcept
      : core_(std::move(owner)), slot_(s), conn_(conn) {}

 private:
  void give_back(bool discard) noexcept {
    if (!slot_) return;
    conn_ = nullptr;
    core_->release(std::exchange(slot_, nullptr), discard);
    core_.reset();
  }

  std::shared_ptr<detail::pool_core> core_;
  core::slot* slot_ = nullptr;
  Conn* conn_ = nullptr;
};

}  // namespace qorb
