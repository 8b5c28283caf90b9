// SPDX-License-Identifier: BSL-1.0
#include "resolvers/dns_lookup.hpp"

#include <algorithm>
#include <limits>
#include <map>

namespace qorb::detail::dns {

namespace {

// One section of a message, indexed by name once, so that following a
// target through its CNAMEs and to its addresses costs O(log n) per step
// instead of a scan of the section.
class section_index {
 public:
  explicit section_index(const std::vector<record>& records) {
    for (const auto& r : records) {
      if (const auto* target = std::get_if<std::string>(&r.data);
          target && r.type == static_cast<std::uint16_t>(rr_type::cname)) {
        cnames_[r.name].push_back(target);
      } else if (std::holds_alternative<asio::ip::address>(r.data)) {
        addresses_[r.name].push_back(&r);
      }
    }
  }

  // `name` and the names that lead to it through CNAMEs, at most
  // max_alias_names of them.
  std::vector<std::string> aliases(const std::string& name) const {
    std::vector<std::string> names{name};
    for (std::size_t i = 0; i < names.size() && names.size() < max_alias_names; ++i) {
      const auto it = cnames_.find(names[i]);
      if (it == cnames_.end()) continue;
      for (const auto* target : it->second) {
        if (names.size() >= max_alias_names) break;
        if (std::find(names.begin(), names.end(), *target) == names.end()) {
          names.push_back(*target);
        }
      }
    }
    return names;
  }

  // The address records of type `type` for `names`, in section order per name.
  std::vector<const record*> addresses(const std::vector<std::string>& names, rr_type type) const {
    std::vector<const record*> out;
    for (const auto& n : names) {
      const auto it = addresses_.find(n);
      if (it == addresses_.end()) continue;
      for (const auto* r : it->second) {
        if (r->type == static_cast<std::uint16_t>(type)) out.push_back(r);
      }
    }
    return out;
  }

 private:
  std::map<std::string, std::vector<const std::string*>, std::less<>> cnames_;
  std::map<std::string, std::vector<const record*>, std::less<>> addresses_;
};

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
                             std::optional<std::uint16_t> fallback_port, lookup_limits limits)
    : name_(canonical_name(name)),
      family_(family),
      fallback_port_(fallback_port),
      limits_(limits) {}

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
  const section_index answers(m.answers);
  const auto names = answers.aliases(name_);
  const auto add_srv = [&](const std::string& target, std::uint16_t port, std::uint32_t ttl) {
    auto [it, is_new] = target_ids_.try_emplace(target, targets_.size());
    if (is_new) {
      targets_.push_back(target);
      ports_.emplace_back();
    }
    // The same (target, port) twice is one backend, at the smaller TTL.
    auto [p, added] = ports_[it->second].try_emplace(port, ttl);
    if (!added) p->second = std::min(p->second, ttl);
  };
  for (const auto& r : m.answers) {
    const auto* srv = std::get_if<srv_data>(&r.data);
    if (!srv || r.type != static_cast<std::uint16_t>(rr_type::srv) ||
        std::find(names.begin(), names.end(), r.name) == names.end()) {
      continue;
    }
    // RFC 2782: a target of "." means the service is decidedly not here.
    if (srv->target.empty()) continue;
    // Port 0 is nobody's port: not a backend.
    if (srv->port == 0) {
      ++result_.port_zero;
      continue;
    }
    add_srv(srv->target, srv->port, r.ttl);
    if (targets_.size() > max_srv_targets) {
      fail(lookup_status::error, "SRV " + name_ + ": answer too large (more than " +
                                     std::to_string(max_srv_targets) + " targets)");
      return {};
    }
  }
  if (targets_.empty()) {
    if (!fallback_port_ || result_.port_zero > 0) return {};
    // No SRV records: the name itself is a host serving on the fallback port.
    add_srv(name_, *fallback_port_, std::numeric_limits<std::uint32_t>::max());
  }
  const section_index additional(m.additional);
  std::vector<question> next;
  for (std::size_t t = 0; t < targets_.size(); ++t) {
    const auto target_names = additional.aliases(targets_[t]);
    for (const auto type : wanted_types()) {
      const auto found = additional.addresses(target_names, type);
      if (!found.empty()) {
        add_addresses(t, found);
      } else {
        next.push_back({targets_[t], type});
      }
    }
  }
  return next;
}

void server_lookup::on_address_answer(const question& q, const message& m) {
  const auto t = target_ids_.find(q.name);
  if (t == target_ids_.end()) return;
  const section_index answers(m.answers);
  add_addresses(t->second, answers.addresses(answers.aliases(q.name), q.type));
}

void server_lookup::add_addresses(std::size_t target, const std::vector<const record*>& records) {
  // Distinct addresses first, in answer order (the same one twice: the
  // smaller TTL), so that every (address, port) pair below is new to this
  // call: at most max_backends of them are built before the cap ends it.
  std::vector<std::pair<asio::ip::address, std::uint32_t>> distinct;
  std::map<asio::ip::address, std::size_t> index;
  for (const auto* r : records) {
    const auto& address = std::get<asio::ip::address>(r->data);
    const auto [it, is_new] = index.try_emplace(address, distinct.size());
    if (is_new) {
      distinct.emplace_back(address, r->ttl);
    } else {
      distinct[it->second].second = std::min(distinct[it->second].second, r->ttl);
    }
  }
  for (const auto& [address, ttl] : distinct) {
    for (const auto& [port, srv_ttl] : ports_[target]) {
      if (result_.capped) return;
      add_backend(target, address, port, std::min(srv_ttl, ttl));
    }
  }
}

void server_lookup::add_backend(std::size_t target, const asio::ip::address& address,
                                std::uint16_t port, std::uint32_t ttl) {
  const bool clamped = ttl > limits_.max_ttl;
  if (clamped) ttl = limits_.max_ttl;
  const auto [it, is_new] = built_.try_emplace({target, address, port}, result_.backends.size());
  if (!is_new) {
    found_backend& same = result_.backends[it->second];
    same.ttl = std::min(same.ttl, ttl);
    return;
  }
  if (result_.backends.size() >= limits_.max_backends) {
    // Stop here: the rest of the answer would only multiply out more.
    built_.erase(it);
    result_.capped = true;
    return;
  }
  if (clamped) ++result_.ttls_clamped;
  result_.backends.push_back({targets_[target], address, port, ttl});
}

}  // namespace qorb::detail::dns
