#include "resolvers/dns_lookup.hpp"

#include <algorithm>
#include <limits>
#include <set>

namespace qorb::detail::dns {

namespace {

// The names that lead to `name` through the CNAME records of `records`.
std::set<std::string> aliases_of(const std::string& name, const std::vector<record>& records) {
  std::set<std::string> names{name};
  // Each pass adds at least one name or stops, so this ends after at most
  // records.size() passes.
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& r : records) {
      if (r.type != static_cast<std::uint16_t>(rr_type::cname)) continue;
      const auto* target = std::get_if<std::string>(&r.data);
      if (target && names.contains(r.name) && names.insert(*target).second) grew = true;
    }
  }
  return names;
}

const char* rcode_name(std::uint8_t code) {
  switch (static_cast<rcode>(code)) {
    case rcode::noerror:
      return "NOERROR";
    case rcode::formerr:
      return "FORMERR";
    case rcode::servfail:
      return "SERVFAIL";
    case rcode::nxdomain:
      return "NXDOMAIN";
    case rcode::notimp:
      return "NOTIMP";
    case rcode::refused:
      return "REFUSED";
  }
  return "an unknown rcode";
}

}  // namespace

std::string backend_name(const std::string& target, const asio::ip::address& address,
                         std::uint16_t port) {
  return target + "@" + qorb::to_string(asio::ip::tcp::endpoint(address, port));
}

const char* to_string(rr_type type) {
  switch (type) {
    case rr_type::a:
      return "A";
    case rr_type::aaaa:
      return "AAAA";
    case rr_type::srv:
      return "SRV";
    case rr_type::cname:
      return "CNAME";
  }
  return "?";
}

const char* to_string(lookup_status status) {
  switch (status) {
    case lookup_status::records:
      return "records";
    case lookup_status::no_records:
      return "no records";
    case lookup_status::timeout:
      return "timeout";
    case lookup_status::error:
      return "error";
  }
  return "?";
}

server_lookup::server_lookup(std::string name, address_family family,
                             std::optional<std::uint16_t> fallback_port)
    : name_(canonical_name(name)), family_(family), fallback_port_(fallback_port) {}

question server_lookup::first_question() const { return {name_, rr_type::srv}; }

std::vector<rr_type> server_lookup::wanted_types() const {
  switch (family_) {
    case address_family::v4:
      return {rr_type::a};
    case address_family::v6:
      return {rr_type::aaaa};
    case address_family::both:
      break;
  }
  return {rr_type::aaaa, rr_type::a};
}

void server_lookup::fail(lookup_status status, std::string reason) {
  done_ = true;
  result_.status = status;
  result_.backends.clear();
  result_.reason = std::move(reason);
}

void server_lookup::finish_if_idle() {
  if (done_ || outstanding_ > 0) return;
  done_ = true;
  result_.status = result_.backends.empty() ? lookup_status::no_records : lookup_status::records;
}

void server_lookup::on_failure(const question& q, const query_failure& failure) {
  if (done_) return;
  fail(failure.timeout ? lookup_status::timeout : lookup_status::error,
       std::string(to_string(q.type)) + " " + q.name + ": " + failure.reason);
}

std::vector<question> server_lookup::on_answer(const question& q,
                                               std::span<const std::uint8_t> bytes) {
  if (done_) return {};
  --outstanding_;
  std::string error;
  const auto m = parse_response(bytes, error);
  const std::string what = std::string(to_string(q.type)) + " " + q.name + ": ";
  if (!m) {
    fail(lookup_status::error, what + "malformed answer: " + error);
    return {};
  }
  if (m->truncated) {
    fail(lookup_status::error, what + "truncated answer");
    return {};
  }
  // cueball: REFUSED and NOTIMP mean this server does not serve the name,
  // which is "no records here", not a broken server.
  const auto code = static_cast<rcode>(m->rcode);
  const bool no_such_name =
      code == rcode::nxdomain || code == rcode::refused || code == rcode::notimp;
  if (!no_such_name && code != rcode::noerror) {
    fail(lookup_status::error, what + "server answered " + rcode_name(m->rcode));
    return {};
  }
  std::vector<question> next;
  if (q.type == rr_type::srv) {
    if (no_such_name) {
      message empty;
      next = on_srv_answer(empty);
    } else {
      next = on_srv_answer(*m);
    }
  } else if (!no_such_name) {
    on_address_answer(q, *m);
  }
  if (!done_) {
    outstanding_ += next.size();
    finish_if_idle();
  }
  return done_ ? std::vector<question>{} : next;
}

std::vector<question> server_lookup::on_srv_answer(const message& m) {
  const auto names = aliases_of(name_, m.answers);
  for (const auto& r : m.answers) {
    const auto* srv = std::get_if<srv_data>(&r.data);
    if (!srv || r.type != static_cast<std::uint16_t>(rr_type::srv) || !names.contains(r.name)) {
      continue;
    }
    // RFC 2782: a target of "." means the service is decidedly not here.
    if (srv->target.empty()) continue;
    srvs_.push_back({srv->target, srv->port, r.ttl});
  }
  if (srvs_.empty()) {
    if (!fallback_port_) return {};
    // No SRV records: the name itself is a host serving on the fallback port.
    srvs_.push_back({name_, *fallback_port_, std::numeric_limits<std::uint32_t>::max()});
  }
  std::vector<std::string> targets;
  for (const auto& s : srvs_) {
    if (std::find(targets.begin(), targets.end(), s.target) == targets.end()) {
      targets.push_back(s.target);
    }
  }
  if (targets.size() > max_srv_targets) {
    fail(lookup_status::error,
         "SRV " + name_ + ": answer too large (" + std::to_string(targets.size()) + " targets)");
    return {};
  }
  std::vector<question> next;
  for (const auto& target : targets) {
    const auto target_names = aliases_of(target, m.additional);
    for (const auto type : wanted_types()) {
      const bool in_additional =
          std::any_of(m.additional.begin(), m.additional.end(), [&](const record& r) {
            return r.type == static_cast<std::uint16_t>(type) && target_names.contains(r.name);
          });
      if (in_additional) {
        add_addresses(target, m.additional, type);
      } else {
        next.push_back({target, type});
      }
    }
  }
  return next;
}

void server_lookup::on_address_answer(const question& q, const message& m) {
  add_addresses(q.name, m.answers, q.type);
}

void server_lookup::add_addresses(const std::string& target, const std::vector<record>& records,
                                  rr_type type) {
  const auto names = aliases_of(target, records);
  for (const auto& r : records) {
    const auto* address = std::get_if<asio::ip::address>(&r.data);
    if (!address || r.type != static_cast<std::uint16_t>(type) || !names.contains(r.name)) {
      continue;
    }
    for (const auto& s : srvs_) {
      if (s.target != target) continue;
      const std::uint32_t ttl = std::min(s.ttl, r.ttl);
      auto same = std::find_if(
          result_.backends.begin(), result_.backends.end(), [&](const found_backend& b) {
            return b.target == target && b.address == *address && b.port == s.port;
          });
      if (same == result_.backends.end()) {
        result_.backends.push_back({target, *address, s.port, ttl});
      } else {
        same->ttl = std::min(same->ttl, ttl);
      }
    }
  }
}

}  // namespace qorb::detail::dns
