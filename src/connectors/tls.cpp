// SPDX-License-Identifier: BSL-1.0
#include <qorb/connectors/tls.hpp>
#include <qorb/error.hpp>

#include "connectors/idle_watch.hpp"
#include "detail/error_category.hpp"

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace qorb {

namespace {

const char* message_of(tls_errc code) noexcept {
  switch (code) {
    case tls_errc::certificate_untrusted:
      return "the server's certificate is not trusted";
    case tls_errc::host_name_mismatch:
      return "the server's certificate is for another name";
    case tls_errc::not_tls:
      return "the server does not speak TLS";
    case tls_errc::handshake_closed:
      return "the server closed the connection during the TLS handshake";
    case tls_errc::handshake_failed:
      return "TLS handshake failed";
  }
  return nullptr;
}

// The latest session each (server name, address) gave, offered again on the
// next connection to it. Shared by a connector's copies and kept alive by
// every connection made with it (a TLS 1.3 ticket can arrive long after
// the handshake, with the first read).
struct session_cache {
  std::mutex mu;
  std::map<std::string, SSL_SESSION*, std::less<>> sessions;

  ~session_cache() {
    for (auto& [key, session] : sessions) SSL_SESSION_free(session);
  }
  void put(const std::string& key, SSL_SESSION* session) {
    std::lock_guard lock(mu);
    auto& slot = sessions[key];
    if (slot) SSL_SESSION_free(slot);
    slot = session;
  }
  // A new reference (or null): the caller frees it.
  SSL_SESSION* get(const std::string& key) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(key);
    if (it == sessions.end()) return nullptr;
    SSL_SESSION_up_ref(it->second);
    return it->second;
  }
};

// What an SSL object needs in the new-session callback, owned by the SSL
// object (freed with it through the ex_data free function).
struct session_ref {
  std::shared_ptr<session_cache> cache;
  std::string key;
};

void free_session_ref(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<session_ref*>(ptr);
}

int session_ref_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_session_ref);
  return index;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* ref = static_cast<session_ref*>(SSL_get_ex_data(ssl, session_ref_index()));
  if (!ref) return 0;
  ref->cache->put(ref->key, session);
  return 1;  // the cache owns the reference now
}

// `permanent`: retrying will not help (qorb::permanent_error), as for a
// certificate that is not trusted or not for the name, or a name that
// cannot be checked: that stays so until the server's certificate or this
// connector's configuration changes. A handshake the server closed, or
// answered with something else than TLS, may pass on the next try.
[[noreturn]] void throw_tls(tls_errc code, const backend& b, const std::string& detail,
                            bool permanent) {
  std::string what = "TLS to ";
  what += b.name;
  what += ": ";
  what += detail;
  if (permanent) throw permanent_error(make_error_code(code), what);
  throw std::system_error(make_error_code(code), what);
}

[[noreturn]] void throw_tls(tls_errc code, const backend& b, const std::string& detail) {
  throw_tls(code, b, detail,
            code == tls_errc::certificate_untrusted || code == tls_errc::host_name_mismatch);
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Turns what the handshake failed with into a clear error.
[[noreturn]] void explain_handshake_failure(const boost::system::system_error& e, SSL* ssl,
                                            const backend& b, const std::string& name) {
  const auto ec = e.code();
  const long verify = SSL_get_verify_result(ssl);
  if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    throw_tls(tls_errc::host_name_mismatch, b,
              std::string("the certificate is not for '").append(name).append("'"));
  }
  if (verify != X509_V_OK) {
    throw_tls(tls_errc::certificate_untrusted, b,
              std::string("certificate verification failed: ")
                  .append(X509_verify_cert_error_string(verify)));
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
        reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
        reason == SSL_R_RECORD_LENGTH_MISMATCH) {
      throw_tls(tls_errc::not_tls, b,
                std::string("the server's answer is not TLS (a plain TCP server?): ")
                    .append(ec.message()));
    }
  }
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::connection_reset) {
    throw_tls(tls_errc::handshake_closed, b,
              std::string("the server closed the connection during the handshake (")
                  .append(ec.message())
                  .append(")"));
  }
  throw_tls(tls_errc::handshake_failed, b, ec.message());
}

}  // namespace

const std::error_category& tls_category() noexcept {
  static const detail::error_category<tls_errc> category(
      "qorb.tls", message_of, "unknown TLS error", detail::unknown_value::omitted);
  return category;
}

// --- tls_stream ---------------------------------------------------------------

tls_stream& tls_stream::operator=(tls_stream&& other) noexcept {
  if (this != &other) {
    close_notify();
    base::operator=(std::move(other));
  }
  return *this;
}

tls_stream::~tls_stream() { close_notify(); }

void tls_stream::close_notify() noexcept {
  SSL* ssl = native_handle();
  if (!ssl || !next_layer().is_open() || !SSL_is_init_finished(ssl)) return;
  if ((SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0) return;
  // Non-blocking: the close_notify record is written if the socket takes it
  // at once; the wait for the peer's answer ends with would_block.
  boost::system::error_code ec;
  next_layer().non_blocking(true, ec);
  if (ec) return;
  shutdown(ec);
}

bool tls_stream::session_reused() const noexcept {
  auto* self = const_cast<tls_stream*>(this);
  SSL* ssl = self->native_handle();
  return ssl && SSL_session_reused(ssl) == 1;
}

std::string tls_stream::protocol() const {
  auto* self = const_cast<tls_stream*>(this);
  SSL* ssl = self->native_handle();
  if (!ssl || !SSL_is_init_finished(ssl)) return "";
  return SSL_get_version(ssl);
}

// --- tls_connector ------------------------------------------------------------

struct tls_connector::state {
  tls_connector_config config;
  asio::ssl::context context{asio::ssl::context::tls_client};
  std::shared_ptr<session_cache> sessions = std::make_shared<session_cache>();
  tcp_connector tcp;

  explicit state(tls_connector_config c) : config(std::move(c)), tcp(plain_tcp(config.tcp)) {
    if (config.certificate_file.empty() != config.private_key_file.empty()) {
      throw std::invalid_argument(
          "tls_connector_config: certificate_file and private_key_file go together (one is "
          "set, the other is empty)");
    }
    context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (config.verify) {
      if (config.ca_file.empty()) {
        context.set_default_verify_paths(ec);
        if (ec) fail("loading the system's CA store", ec);
      } else {
        context.load_verify_file(config.ca_file, ec);
        if (ec) fail(std::string("loading CA file ").append(config.ca_file), ec);
      }
      context.set_verify_mode(asio::ssl::verify_peer);
    } else {
      context.set_verify_mode(asio::ssl::verify_none);
    }
    if (!config.certificate_file.empty()) {
      context.use_certificate_chain_file(config.certificate_file, ec);
      if (ec) fail(std::string("loading client certificate ").append(config.certificate_file), ec);
      context.use_private_key_file(config.private_key_file, asio::ssl::context::pem, ec);
      if (ec) fail(std::string("loading private key ").append(config.private_key_file), ec);
    }
    SSL_CTX* ctx = context.native_handle();
    if (config.session_resumption) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
  }

  static tcp_connector_config plain_tcp(tcp_connector_config c) {
    c.health_check = nullptr;
    return c;
  }

  [[noreturn]] static void fail(const std::string& what, const boost::system::error_code& ec) {
    // system_error's what() appends ": " and the code's message.
    throw std::system_error(std::error_code(ec), std::string("tls_connector: ").append(what));
  }
};

tls_connector::tls_connector(tls_connector_config config)
    : state_(std::make_shared<state>(std::move(config))) {}

const tls_connector_config& tls_connector::config() const noexcept { return state_->config; }

asio::awaitable<tls_stream> tls_connector::connect(const backend& b) {
  return connect(b, std::string());
}

asio::awaitable<tls_stream> tls_connector::connect(backend target, std::string server_name) {
  // Everything the coroutine uses is its own (taken by value): an awaitable
  // starts after the call has returned, when the caller's temporaries are
  // gone.
  auto s = state_;
  const backend& b = target;
  std::string name = !server_name.empty()             ? server_name
                     : !s->config.server_name.empty() ? s->config.server_name
                                                      : backend_host(b);
  auto socket = co_await s->tcp.connect(target);
  tls_stream stream(std::move(socket), s->context);
  SSL* ssl = stream.native_handle();
  const bool ip = is_ip_address(name);
  if (!ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      const_cast<char*>(name.c_str())) != 1) {
    throw_tls(tls_errc::handshake_failed, target,
              std::string("bad server name '").append(name) + "'", true);
  }
  if (s->config.verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) {
      throw_tls(tls_errc::handshake_failed, target,
                std::string("cannot verify against the name '").append(name) + "'", true);
    }
  }
  if (s->config.session_resumption) {
    std::string key = name;
    key += '@';
    key += to_string(target.address);
    if (SSL_SESSION* cached = s->sessions->get(key)) {
      SSL_set_session(ssl, cached);
      SSL_SESSION_free(cached);
    }
    auto ref = std::make_unique<session_ref>(session_ref{s->sessions, std::move(key)});
    if (SSL_set_ex_data(ssl, session_ref_index(), ref.get()) == 1) ref.release();
  }
  try {
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) throw;
    explain_handshake_failure(e, ssl, target, name);
  }
  co_return stream;
}

void tls_connector::check_open(tls_stream& stream) {
  auto& socket = stream.next_layer();
  if (!socket.is_open()) throw std::system_error(std::make_error_code(std::errc::not_connected));
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  // A close by the peer (with or without close_notify) is the normal end of
  // the connection (qorb::errc::connection_ended): a server's idle timeout.
  if (n == 0) {
    throw std::system_error(make_error_code(errc::connection_ended), "peer closed the connection");
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    throw std::system_error(errno, std::system_category(), "connection broken");
  }
  // Records are waiting: session tickets (harmless), or the peer's
  // close_notify. Read them without blocking; application data on an idle
  // connection is a protocol error too.
  boost::system::error_code ec;
  const bool was_non_blocking = socket.non_blocking();
  socket.non_blocking(true, ec);
  if (ec) throw std::system_error(std::error_code(ec), "connection broken");
  char data[1];
  const auto got = stream.read_some(asio::buffer(data), ec);
  boost::system::error_code ignored;
  socket.non_blocking(was_non_blocking, ignored);
  if (ec == asio::error::would_block) return;
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    throw std::system_error(make_error_code(errc::connection_ended),
                            std::string("peer closed the connection (").append(ec.message()) + ")");
  }
  if (ec) {
    throw std::system_error(std::make_error_code(std::errc::connection_reset),
                            std::string("connection broken (").append(ec.message()) + ")");
  }
  if (got > 0) {
    throw std::system_error(std::make_error_code(std::errc::protocol_error),
                            "unexpected data on an idle connection");
  }
}

asio::awaitable<void> tls_connector::is_valid(tls_stream& stream) {
  if (state_->config.health_check) {
    co_await state_->config.health_check(stream);
    co_return;
  }
  check_open(stream);
  co_return;
}

asio::awaitable<void> tls_connector::on_recycle(tls_stream& stream) {
  if (state_->config.health_check) {
    co_await state_->config.health_check(stream);
    co_return;
  }
  try {
    check_open(stream);
  } catch (const std::system_error& e) {
    // Closed right after its use: as for plain TCP, nothing says that was
    // meant, and a server that drops each connection after a request is
    // failing.
    if (e.code() == errc::connection_ended) {
      throw std::system_error(std::make_error_code(std::errc::connection_reset),
                              "peer closed the connection after its use");
    }
    throw;
  }
  co_return;
}

asio::awaitable<void> tls_connector::watch(tls_stream& stream) {
  namespace w = detail::idle_watch;
  auto& socket = stream.next_layer();
  auto s = co_await w::next(socket);
  if (s.what == w::news::data && !w::gone(socket, s)) {
    // Records wait unread: session tickets (harmless), a close_notify or
    // data. Only the claimer's TLS state may read them; the FIN (servers
    // close after their close_notify) or an error is seen behind them.
    co_await w::hangup(socket);
    if (!w::gone(socket, s)) s = {w::news::closed, {}};
  }
  throw w::lost(s);
}

std::string backend_host(const backend& b) {
  if (const auto at = b.name.find('@'); at != std::string::npos && at > 0) {
    std::string host = b.name.substr(0, at);
    if (host.size() > 1 && host.back() == '.') host.pop_back();
    return host;
  }
  return b.address.address().to_string();
}

}  // namespace qorb
