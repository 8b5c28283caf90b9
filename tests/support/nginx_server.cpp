// SPDX-License-Identifier: BSL-1.0
#include "support/nginx_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qorb::test {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool accepts(unsigned short port) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

}  // namespace

bool have_nginx() { return run_command({"nginx", "-v"}) == 0; }

nginx_options tls_options(const test_pki& pki, int keepalive_timeout_s,
                          std::string client_ca_file) {
  nginx_options o;
  o.cert_file = pki.server_cert();
  o.key_file = pki.server_key();
  o.client_ca_file = std::move(client_ca_file);
  o.keepalive_timeout_s = keepalive_timeout_s;
  return o;
}

nginx_server::nginx_server(nginx_options options) : options_(std::move(options)) {
  set_healthy(true);
  // A free port can be taken by someone else before nginx binds it: retry.
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      if (attempt >= 4) throw;
    }
  }
}

nginx_server::~nginx_server() { process_.stop(SIGTERM, 10s); }

boost::asio::ip::tcp::endpoint nginx_server::endpoint() const {
  return {boost::asio::ip::make_address("127.0.0.1"), port_};
}

void nginx_server::write_config() const {
  const std::string& d = dir();
  std::string c;
  if (::geteuid() == 0) c += "user root;\n";  // workers must read the test's private files
  c += "worker_processes 1;\n";
  c += "error_log " + d + "/error.log info;\n";
  c += "pid " + d + "/nginx.pid;\n";
  c += "events { worker_connections 512; }\n";
  c += "http {\n";
  c += "  access_log off;\n";
  c += "  client_body_temp_path " + d + "/client_body;\n";
  c += "  proxy_temp_path " + d + "/proxy;\n";
  c += "  fastcgi_temp_path " + d + "/fastcgi;\n";
  c += "  uwsgi_temp_path " + d + "/uwsgi;\n";
  c += "  scgi_temp_path " + d + "/scgi;\n";
  c += "  log_format qorb '$connection $connection_requests $status $request_uri $http_host ";
  c += tls() ? "$ssl_server_name $ssl_session_reused $ssl_client_verify" : "- - -";
  c += "';\n";
  c += "  keepalive_timeout " + std::to_string(options_.keepalive_timeout_s) + "s;\n";
  c += "  keepalive_requests " + std::to_string(options_.keepalive_requests) + ";\n";
  c += "  server {\n";
  c += "    listen 127.0.0.1:" + std::to_string(port_) + (tls() ? " ssl" : "") + ";\n";
  c += "    access_log " + d + "/access.log qorb;\n";
  if (tls()) {
    c += "    ssl_certificate " + options_.cert_file + ";\n";
    c += "    ssl_certificate_key " + options_.key_file + ";\n";
    c += "    ssl_protocols TLSv1.2 TLSv1.3;\n";
    c += "    ssl_session_tickets on;\n";
    if (!options_.client_ca_file.empty()) {
      c += "    ssl_client_certificate " + options_.client_ca_file + ";\n";
      c += "    ssl_verify_client on;\n";
    }
  }
  c += "    default_type text/plain;\n";
  c += "    location / { return 200 \"hello\\n\"; }\n";
  c += "    location = /health {\n";
  c += "      if (-f " + d + "/unhealthy) { return 500 \"unhealthy\\n\"; }\n";
  c += "      return 200 \"ok\\n\";\n";
  c += "    }\n";
  c += "    location = /close { keepalive_timeout 0; return 200 \"bye\\n\"; }\n";
  c += "    location = /status/500 { return 500 \"error\\n\"; }\n";
  c += "    location = /status/503 { return 503 \"unavailable\\n\"; }\n";
  c += "  }\n";
  c += "}\n";
  std::ofstream out(d + "/nginx.conf");
  out << c;
  if (!out) throw std::runtime_error("cannot write " + d + "/nginx.conf");
}

void nginx_server::start() {
  write_config();
  const std::string& d = dir();
  process_ = child_process({"nginx", "-p", d, "-c", d + "/nginx.conf", "-g", "daemon off;"});
  const bool up = wait_until(
      [&] {
        if (!process_.running()) return true;
        return accepts(port_);
      },
      20s);
  if (!up || !process_.running()) {
    process_.stop(SIGKILL, 5s);
    throw std::runtime_error("nginx did not start on port " + std::to_string(port_) + ": " +
                             error_log());
  }
}

void nginx_server::stop() { process_.stop(SIGTERM, 10s); }

void nginx_server::reload() {
  if (::kill(process_.pid(), SIGHUP) != 0) throw std::runtime_error("nginx is not running");
}

void nginx_server::set_healthy(bool healthy) {
  const std::string flag = dir() + "/unhealthy";
  if (healthy) {
    std::remove(flag.c_str());
  } else {
    std::ofstream(flag) << "1\n";
  }
}

std::vector<nginx_log_entry> nginx_server::log() const {
  std::vector<nginx_log_entry> entries;
  std::istringstream lines(read_file(dir() + "/access.log"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    nginx_log_entry e;
    if (fields >> e.connection >> e.connection_requests >> e.status >> e.uri >> e.host >>
        e.server_name >> e.reused >> e.client_verify) {
      entries.push_back(std::move(e));
    }
  }
  return entries;
}

std::string nginx_server::error_log() const { return read_file(dir() + "/error.log"); }

}  // namespace qorb::test
