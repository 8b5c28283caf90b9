// Backend names and addresses: what to_string prints and parse_endpoint reads.
#include <qorb/backend.hpp>

#include <gtest/gtest.h>

namespace qorb {
namespace {

TEST(backend_names, are_ip_port_with_brackets_for_v6) {
  using asio::ip::make_address;
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("127.0.0.1"), 80)), "127.0.0.1:80");
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("::1"), 8080)), "[::1]:8080");
}

TEST(backend_names, parse_endpoint_reads_what_to_string_prints) {
  using asio::ip::make_address;
  using asio::ip::tcp;
  for (const auto& e :
       {tcp::endpoint(make_address("127.0.0.1"), 80), tcp::endpoint(make_address("::1"), 8080),
        tcp::endpoint(make_address("10.1.2.3"), 0),
        tcp::endpoint(make_address("fe80::1"), 65535)}) {
    EXPECT_EQ(parse_endpoint(to_string(e)), e) << to_string(e);
  }
  EXPECT_EQ(parse_endpoint("127.0.0.1", 53), tcp::endpoint(make_address("127.0.0.1"), 53));
  EXPECT_EQ(parse_endpoint("[::1]", 53), tcp::endpoint(make_address("::1"), 53));
  EXPECT_EQ(parse_endpoint("::1", 53), tcp::endpoint(make_address("::1"), 53));
  for (const char* bad : {"", "127.0.0.1", "::1", "[::1]", "127.0.0.1:", "[::1]:", "[::1",
                          "::1]:80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8x",
                          "localhost:80", "[127.0.0.1:80", "1.2.3:80", "[::1]80"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

}  // namespace
}  // namespace qorb
