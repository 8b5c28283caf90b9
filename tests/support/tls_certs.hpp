// SPDX-License-Identifier: BSL-1.0
// Throwaway certificates for TLS tests, made with the `openssl` command: a
// test CA, a server certificate it signed for localhost, 127.0.0.1 and ::1,
// a client certificate it signed, and a second CA that signed nothing the
// servers use (to test a wrong trust store).
#pragma once

#include "support/wait.hpp"

#include <string>

namespace qorb::test {

class test_pki {
 public:
  /// Makes everything in a fresh temporary directory; throws (with
  /// openssl's output) when a command fails.
  test_pki();
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  const std::string& dir() const noexcept { return dir_.path(); }
  std::string ca_file() const { return dir() + "/ca.pem"; }
  std::string server_cert() const { return dir() + "/server.pem"; }
  std::string server_key() const { return dir() + "/server.key"; }
  std::string client_cert() const { return dir() + "/client.pem"; }
  std::string client_key() const { return dir() + "/client.key"; }
  /// A CA that signed none of the above.
  std::string other_ca_file() const { return dir() + "/other-ca.pem"; }

 private:
  temp_dir dir_{"qorb-pki"};
};

}  // namespace qorb::test
