// SPDX-License-Identifier: BSL-1.0
// A real Knot DNS server for tests: its own temp dir, zones and loopback
// port, run as a direct child and stopped by PID.
#pragma once

#include "support/wait.hpp"

#include <boost/asio/ip/udp.hpp>

#include <map>
#include <string>
#include <vector>

namespace qorb::test {

class knot_server {
 public:
  /// Starts knotd serving each zone (domain -> records in zone-file syntax,
  /// after a generated SOA and NS) on 127.0.0.1 and ::1, and waits until it
  /// answers. Throws if it cannot.
  explicit knot_server(std::map<std::string, std::string> zones);
  /// One zone.
  knot_server(const std::string& zone, const std::string& records)
      : knot_server(std::map<std::string, std::string>{{zone, records}}) {}
  knot_server(const knot_server&) = delete;
  knot_server& operator=(const knot_server&) = delete;
  ~knot_server();

  unsigned short port() const { return port_; }
  boost::asio::ip::udp::endpoint endpoint(bool v6 = false) const;
  /// "127.0.0.1:PORT"
  std::string address() const;

  /// One atomic live edit of `zone` with knotc: each `set` is
  /// "owner ttl type rdata", each `unset` "owner [type [rdata]]" (owners
  /// fully qualified). Throws on failure.
  void edit(const std::string& zone, const std::vector<std::string>& set,
            const std::vector<std::string>& unset = {});

  /// Stops the server (also done by the destructor).
  void stop();

 private:
  void knotc(std::vector<std::string> args);

  temp_dir dir_{"qorb-knot"};
  unsigned short port_ = 0;
  child_process process_;
};

/// Whether a DNS server on 127.0.0.1:`port` answers a SOA query for `zone`
/// with NOERROR within `timeout`.
bool dns_answers(unsigned short port, const std::string& zone, std::chrono::milliseconds timeout);

}  // namespace qorb::test
