#include "common/address.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <stdexcept>

namespace parley {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsV4Mapped(const IpBytes& ip) {
  for (int i = 0; i < 10; ++i) {
    if (ip[i] != 0) return false;
  }
  return ip[10] == 0xff && ip[11] == 0xff;
}

}  // namespace

std::optional<IpBytes> ParseIp(std::string_view text) {
  text = Trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  IpBytes out{};
  in_addr v4{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = 0xff;
    out[11] = 0xff;
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v4.s_addr);
    for (int i = 0; i < 4; ++i) out[12 + i] = b[i];
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    for (int i = 0; i < 16; ++i) out[i] = v6.s6_addr[i];
    return out;
  }
  return std::nullopt;
}

std::string AddressKey(std::string_view address) {
  auto ip = ParseIp(address);
  if (!ip) return std::string(address);
  char buf[64];
  if (IsV4Mapped(*ip)) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", (*ip)[12], (*ip)[13], (*ip)[14], (*ip)[15]);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%x:%x:%x:%x::/64", ((*ip)[0] << 8) | (*ip)[1],
                ((*ip)[2] << 8) | (*ip)[3], ((*ip)[4] << 8) | (*ip)[5], ((*ip)[6] << 8) | (*ip)[7]);
  return buf;
}

AddressSet AddressSet::Parse(std::string_view spec) {
  AddressSet set;
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    const std::string_view entry = Trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    if (entry.empty()) continue;
    const auto slash = entry.find('/');
    auto ip = ParseIp(entry.substr(0, slash));
    if (!ip) throw std::invalid_argument("not an IP address or CIDR: " + std::string(entry));
    const bool v4 = IsV4Mapped(*ip);
    unsigned bits = 128;
    if (slash != std::string_view::npos) {
      const std::string_view len = entry.substr(slash + 1);
      unsigned n = 0;
      if (len.empty() || len.size() > 3) {
        throw std::invalid_argument("bad prefix length: " + std::string(entry));
      }
      for (char c : len) {
        if (c < '0' || c > '9')
          throw std::invalid_argument("bad prefix length: " + std::string(entry));
        n = n * 10 + static_cast<unsigned>(c - '0');
      }
      if (n > (v4 ? 32u : 128u)) {
        throw std::invalid_argument("bad prefix length: " + std::string(entry));
      }
      bits = v4 ? 96 + n : n;
    }
    set.nets_.push_back({*ip, bits});
  }
  return set;
}

bool AddressSet::Contains(const IpBytes& ip) const {
  for (const auto& net : nets_) {
    unsigned bits = net.bits;
    bool match = true;
    for (int i = 0; i < 16 && bits > 0 && match; ++i) {
      const unsigned take = bits >= 8 ? 8 : bits;
      const std::uint8_t mask = static_cast<std::uint8_t>(0xff00 >> take);
      match = (ip[i] & mask) == (net.ip[i] & mask);
      bits -= take;
    }
    if (match) return true;
  }
  return false;
}

bool AddressSet::Contains(std::string_view address) const {
  if (nets_.empty()) return false;
  auto ip = ParseIp(address);
  return ip && Contains(*ip);
}

std::string ClientAddress(std::string_view peer, std::string_view forwarded_for,
                          const AddressSet& trusted_proxies) {
  if (forwarded_for.empty() || !trusted_proxies.Contains(peer)) return std::string(peer);
  std::string_view chosen = peer;
  // Right to left: each hop appended the address it saw.
  while (!forwarded_for.empty()) {
    const auto comma = forwarded_for.rfind(',');
    const std::string_view entry =
        Trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for =
        comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
    auto ip = ParseIp(entry);
    if (!ip) break;  // garbage: believe nothing further left
    chosen = entry;
    if (!trusted_proxies.Contains(*ip)) break;
  }
  auto ip = ParseIp(chosen);
  if (!ip) return std::string(chosen);
  // Normalized text, so that one client has one key however it is written.
  char buf[INET6_ADDRSTRLEN];
  if (IsV4Mapped(*ip)) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", (*ip)[12], (*ip)[13], (*ip)[14], (*ip)[15]);
    return buf;
  }
  in6_addr v6{};
  for (int i = 0; i < 16; ++i) v6.s6_addr[i] = (*ip)[i];
  if (::inet_ntop(AF_INET6, &v6, buf, sizeof buf) == nullptr) return std::string(chosen);
  return buf;
}

}  // namespace parley
