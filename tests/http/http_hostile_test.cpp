// SPDX-License-Identifier: BSL-1.0
// The HTTP connector against hostile servers on loopback: a trailer field of
// 64 KiB (Beast 1.81 throws on it: the process aborted), a 300 MB chunk
// extension (accepted, 962 MB of memory), interim 1xx responses (returned as
// the final one), more of them than the bound, and 101. Each request ends
// with an error naming the limit, or with the final response, within a
// bounded time, and a failed connection is closed, never reused.
#include "support/nginx_server.hpp"

#include <qorb/connectors/http.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "connectors/http_response.hpp"
#include "http_limits.hpp"

namespace {

namespace asio = boost::asio;
namespace http = qorb::connectors::http;
namespace limits = qorb::detail::http_limits;
using namespace std::chrono_literals;
using qorb::test::backend_of;
using qorb::test::io_threads;
using qorb::test::run;
using qorb::test::wait_until;

// A server on 127.0.0.1 that serves one connection at a time with
// `script(fd)`: whatever bytes the test wants, counted in `written`. Every
// socket call is bounded (5 s send/receive timeouts); the destructor shuts
// the sockets down, which ends a blocked call at once, and joins.
class hostile_server {
 public:
  using script = std::function<void(hostile_server&, int fd)>;

  explicit hostile_server(script s) : script_(std::move(s)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("hostile_server: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~hostile_server() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);  // ends a blocked accept
    {
      std::lock_guard lock(mu_);
      if (client_ >= 0) ::shutdown(client_, SHUT_RDWR);
    }
    thread_.join();
    ::close(listener_);
  }
  hostile_server(const hostile_server&) = delete;
  hostile_server& operator=(const hostile_server&) = delete;

  qorb::backend backend() const { return backend_of({asio::ip::make_address("127.0.0.1"), port_}); }

  // Reads one request's head (to the blank line); false when the client
  // closed or was silent for 5 s.
  static bool read_request(int fd) {
    std::string head;
    char c = 0;
    while (head.size() < 65536 && head.find("\r\n\r\n") == std::string::npos) {
      if (::recv(fd, &c, 1, 0) != 1) return false;
      head += c;
    }
    return head.find("\r\n\r\n") != std::string::npos;
  }

  // Writes all of `data`, counting it; false once the client has gone.
  bool send(int fd, std::string_view data) {
    while (!data.empty()) {
      const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        client_gone = true;
        return false;
      }
      written += static_cast<std::uint64_t>(n);
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  std::atomic<std::uint64_t> written{0};
  std::atomic<bool> client_gone{false};
  std::atomic<int> scripts_done{0};

 private:
  void serve() {
    while (!stopping_) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      {
        std::lock_guard lock(mu_);
        client_ = fd;
      }
      if (!stopping_) script_(*this, fd);
      {
        std::lock_guard lock(mu_);
        client_ = -1;
      }
      ::close(fd);
      ++scripts_done;
    }
  }

  script script_;
  int listener_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  int client_ = -1;
  std::thread thread_;
};

// A script that answers each request on the connection with `reply`.
hostile_server::script replying(std::string reply) {
  return [reply = std::move(reply)](hostile_server& s, int fd) {
    while (hostile_server::read_request(fd) && s.send(fd, reply)) {
    }
  };
}

http::request get(const std::string& target) { return {http::verb::get, target, 11}; }

http::config quick_config() {
  http::config c;
  c.request_timeout = 10s;
  return c;
}

std::string chunked_head() { return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"; }

struct request_failure {
  std::error_code code;
  std::string what;
};

// Connects to `server` and makes one request, which must fail: its error.
request_failure failed_request(io_threads& io, hostile_server& server,
                               http::config c = quick_config()) {
  http::connector connector(std::move(c));
  auto conn = run(io, connector.connect(server.backend()));
  try {
    auto res = run(io, conn.request(get("/")));
    ADD_FAILURE() << "the request got status " << res.result_int() << " and " << res.body().size()
                  << " bytes of body";
  } catch (const std::system_error& e) {
    EXPECT_FALSE(conn.reusable()) << "a connection that failed a request is never reused";
    return {e.code(), e.what()};
  }
  return {};
}

std::uint64_t sysctl_max(const char* path) {
  // "min default max"
  std::ifstream in(path);
  std::uint64_t min = 0, def = 0, max = 0;
  in >> min >> def >> max;
  return max;
}

// --- trailer and chunk extensions --------------------------------------------

TEST(HttpHostile, TrailerFieldOf64KibFailsTheRequestNamingTheLimit) {
  io_threads io{1};
  hostile_server server(
      replying(chunked_head() + "2\r\nok\r\n0\r\nX-T: " + std::string(65536, 'a') + "\r\n\r\n"));
  const auto failure = failed_request(io, server);
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("the trailer is over " + std::to_string(limits::max_read_buffer) +
                              " bytes"),
            std::string::npos)
      << failure.what;
}

TEST(HttpHostile, TrailerBeyondTheReadBufferIsRefusedOneWithinItAccepted) {
  io_threads io{1};
  {
    // 63 KiB: accepted before, although far over the header limit.
    hostile_server server(replying(
        chunked_head() + "2\r\nok\r\n0\r\nX-T: " + std::string(63 * 1024, 'a') + "\r\n\r\n"));
    EXPECT_EQ(failed_request(io, server).code, http::errc::bad_response);
  }
  hostile_server server(
      replying(chunked_head() + "2\r\nok\r\n0\r\nX-T: " + std::string(1000, 'a') + "\r\n\r\n"));
  http::connector connector(quick_config());
  auto conn = run(io, connector.connect(server.backend()));
  for (int i = 0; i < 2; ++i) {
    const auto res = run(io, conn.request(get("/")));
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "ok");
    EXPECT_TRUE(conn.reusable());
  }
}

TEST(HttpHostile, ChunkExtensionOverItsLimitFailsTheRequest) {
  io_threads io{1};
  hostile_server server(replying(chunked_head() +
                                 "2;x=" + std::string(limits::max_chunk_extensions, 'a') +
                                 "\r\nok\r\n0\r\n\r\n"));
  const auto failure = failed_request(io, server);
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("extensions are malformed or over " +
                              std::to_string(limits::max_chunk_extensions) + " bytes"),
            std::string::npos)
      << failure.what;
}

// The extension is streamed for as long as the client reads it: the
// client must give up within its read buffer, so what the server manages
// to write is that plus what the kernel's socket buffers hold (both ends'
// maxima, tcp_rmem and tcp_wmem), far from 300 MB.
TEST(HttpHostile, ChunkExtensionOf300MbFailsQuicklyWithinTheReadBuffer) {
  io_threads io{1};
  constexpr std::uint64_t extension = 300ull << 20;
  hostile_server server([](hostile_server& s, int fd) {
    if (!hostile_server::read_request(fd)) return;
    if (!s.send(fd, chunked_head() + "2;x=")) return;
    const std::string piece(64 * 1024, 'a');
    for (std::uint64_t sent = 0; sent < extension; sent += piece.size()) {
      if (!s.send(fd, piece)) return;
    }
    s.send(fd, "\r\nok\r\n0\r\n\r\n");
  });
  const auto start = std::chrono::steady_clock::now();
  const auto failure = failed_request(io, server);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("a chunk header or the trailer is over " +
                              std::to_string(limits::max_read_buffer) + " bytes"),
            std::string::npos)
      << failure.what;
  EXPECT_LT(took, 5s);
  // The client closed: the server's next write fails.
  ASSERT_TRUE(wait_until([&] { return server.scripts_done.load() == 1; }, 10s));
  EXPECT_TRUE(server.client_gone);
  RecordProperty("server_wrote_bytes", std::to_string(server.written.load()));
  RecordProperty(
      "took_us",
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  const auto kernel =
      sysctl_max("/proc/sys/net/ipv4/tcp_rmem") + sysctl_max("/proc/sys/net/ipv4/tcp_wmem");
  EXPECT_LT(server.written.load(), kernel + limits::max_read_buffer + 2 * 64 * 1024)
      << "the client read on past its read buffer (kernel buffers: " << kernel << " bytes)";
  EXPECT_LT(server.written.load(), extension / 8);
}

TEST(HttpHostile, BodyOverTheConfiguredLimitNamesTheLimit) {
  io_threads io{1};
  hostile_server server(
      replying("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'b')));
  auto c = quick_config();
  c.body_limit = 1000;
  const auto failure = failed_request(io, server, c);
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("over 1000 bytes (config::body_limit)"), std::string::npos)
      << failure.what;
}

// --- interim (1xx) responses -------------------------------------------------

std::string interim(unsigned status, const char* reason, int times = 1) {
  std::string out;
  for (int i = 0; i < times; ++i) {
    out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason);
    out.append(status == 103 ? "\r\nLink: </style.css>; rel=preload\r\n\r\n" : "\r\n\r\n");
  }
  return out;
}

const std::string final_200 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

TEST(HttpHostile, InterimResponsesAreSkippedUntilTheFinalOne) {
  io_threads io{1};
  for (const auto& before : {interim(100, "Continue"), interim(103, "Early Hints"),
                             interim(100, "Continue") + interim(103, "Early Hints", 2),
                             interim(100, "Continue", limits::max_interim_responses)}) {
    hostile_server server(replying(before + final_200));
    http::connector connector(quick_config());
    auto conn = run(io, connector.connect(server.backend()));
    // Twice on one connection: nothing of the interim responses is left
    // over to be taken for the next response.
    for (int i = 0; i < 2; ++i) {
      const auto res = run(io, conn.request(get("/")));
      EXPECT_EQ(res.result_int(), 200u) << before;
      EXPECT_EQ(res.body(), "hello");
      EXPECT_EQ(conn.last_status(), 200u);
      EXPECT_TRUE(conn.reusable());
    }
  }
}

// The reader the connector's read loop drives, fed one byte at a time:
// every status line, header and body split at every place.
TEST(HttpHostile, ReaderSkipsInterimResponsesFedByteByByte) {
  namespace reader_ns = qorb::detail::http_response;
  const std::string wire = interim(100, "Continue") + interim(103, "Early Hints", 2) + final_200;
  reader_ns::reader reader(1 << 20);
  auto buffer = limits::bounded_buffer();
  std::size_t fed = 0;
  while (reader.parse(buffer) == reader_ns::reader::state::need_more && fed < wire.size()) {
    auto room = reader.room(buffer);
    ASSERT_TRUE(room.has_value());
    static_cast<char*>(room->data())[0] = wire[fed++];
    buffer.commit(1);
  }
  ASSERT_EQ(reader.current(), reader_ns::reader::state::done) << reader.why();
  EXPECT_EQ(reader.interim(), 3);
  EXPECT_FALSE(reader.needs_eof());
  const auto res = reader.release();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "hello");
  EXPECT_EQ(fed, wire.size());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(reader_ns::close_reason(true, true, false, 1),
            "the server sent more than the response");
  EXPECT_EQ(reader_ns::close_reason(true, true, false, 0), "");
}

// The header limit is on the whole header, however the bytes arrive: Beast
// 1.81 counts from where each read's parse started, so a header over the
// limit passed when its fields came in reads of less than the limit each.
TEST(HttpHostile, HeaderLimitHoldsWhateverTheSplit) {
  namespace reader_ns = qorb::detail::http_response;
  // A response whose header (through the empty line) is `size` bytes.
  const auto response = [](std::size_t size) {
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n";
    const std::string end = "\r\n";
    while (wire.size() + end.size() < size) {
      const std::size_t left = size - wire.size() - end.size();
      std::string field = "X-F: ";
      // Fields of about 500 bytes, each line ending in CRLF.
      const std::size_t line = std::min<std::size_t>(left, 500);
      if (line < field.size() + 3) {
        wire.insert(wire.find("OK") + 2, std::string(left, 'k'));  // a longer reason
        break;
      }
      field.append(line - field.size() - 2, 'v');
      wire += field + "\r\n";
    }
    wire += end;
    EXPECT_EQ(wire.size(), size);
    return wire + "hi";
  };
  // Feeds `wire` in reads of `piece` bytes, then the close.
  const auto read = [](const std::string& wire, std::size_t piece) {
    reader_ns::reader reader(1 << 20);
    auto buffer = limits::bounded_buffer();
    std::size_t fed = 0;
    while (reader.parse(buffer) == reader_ns::reader::state::need_more) {
      if (fed == wire.size()) {
        reader.end_of_stream();
        break;
      }
      auto room = reader.room(buffer);
      if (!room) break;
      const std::size_t n = std::min({room->size(), piece, wire.size() - fed});
      std::memcpy(room->data(), wire.data() + fed, n);
      buffer.commit(n);
      fed += n;
    }
    return std::pair(reader.current(), reader.why());
  };
  for (const std::size_t piece : {std::size_t(1), std::size_t(7), std::size_t(500),
                                  std::size_t(4096), limits::max_read_buffer}) {
    SCOPED_TRACE("reads of " + std::to_string(piece) + " bytes");
    const auto at_limit = read(response(limits::max_header), piece);
    EXPECT_EQ(at_limit.first, reader_ns::reader::state::done) << at_limit.second;
    const auto over = read(response(limits::max_header + 1), piece);
    EXPECT_EQ(over.first, reader_ns::reader::state::failed);
    EXPECT_EQ(over.second, "the header is over 8192 bytes");
  }
}

TEST(HttpHostile, MoreInterimResponsesThanTheBoundFailTheRequest) {
  io_threads io{1};
  hostile_server server(
      replying(interim(100, "Continue", limits::max_interim_responses + 1) + final_200));
  const auto failure = failed_request(io, server);
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("more than " + std::to_string(limits::max_interim_responses) +
                              " interim (1xx) responses"),
            std::string::npos)
      << failure.what;
}

TEST(HttpHostile, SwitchingProtocolsIsABadResponse) {
  io_threads io{1};
  hostile_server server(
      replying("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
               "Upgrade\r\n\r\n" +
               final_200));
  const auto failure = failed_request(io, server);
  EXPECT_EQ(failure.code, http::errc::bad_response) << failure.what;
  EXPECT_NE(failure.what.find("101"), std::string::npos) << failure.what;
}

// --- what ends the connection ------------------------------------------------

TEST(HttpHostile, ResponseEndingWithTheConnectionIsNotReused) {
  io_threads io{1};
  hostile_server server([](hostile_server& s, int fd) {
    if (hostile_server::read_request(fd)) s.send(fd, "HTTP/1.1 200 OK\r\n\r\nuntil close");
  });
  http::connector connector(quick_config());
  auto conn = run(io, connector.connect(server.backend()));
  const auto res = run(io, conn.request(get("/")));
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "until close");
  EXPECT_FALSE(conn.reusable());
}

TEST(HttpHostile, ServerClosingMidResponseIsConnectionClosed) {
  io_threads io{1};
  hostile_server server([](hostile_server& s, int fd) {
    if (hostile_server::read_request(fd))
      s.send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  });
  const auto failure = failed_request(io, server);
  EXPECT_EQ(failure.code, http::errc::connection_closed) << failure.what;
}

}  // namespace
