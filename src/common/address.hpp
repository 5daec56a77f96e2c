// Client addresses for per-address limits (issue 14, items 5 and 6).
//
// * AddressKey: what a per-address limit counts. An IPv4 address (or an
//   IPv4-mapped IPv6 one) is itself; an IPv6 address is its /64, since one
//   host is usually handed a whole /64 and could otherwise take a new
//   address for every request.
// * AddressSet: a list of IPs and CIDRs (the trusted proxies).
// * ClientAddress: the address a request came from: the peer, or, when the
//   peer is a trusted proxy, the nearest address in X-Forwarded-For that is
//   not a trusted proxy (read from the right, since a client can write
//   anything at the left of that header).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

// 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
using IpBytes = std::array<std::uint8_t, 16>;

// Parses an IPv4 or IPv6 literal (IPv6 may be in brackets); nullopt otherwise.
std::optional<IpBytes> ParseIp(std::string_view text);

// The per-address limit key of an address literal (the text itself when it
// does not parse).
std::string AddressKey(std::string_view address);

class AddressSet {
 public:
  AddressSet() = default;
  // "10.0.0.1, 10.1.0.0/16, fd00::/8". Throws std::invalid_argument naming
  // the entry it cannot read.
  static AddressSet Parse(std::string_view spec);

  bool Contains(std::string_view address) const;
  bool Contains(const IpBytes& ip) const;
  bool empty() const { return nets_.empty(); }

 private:
  struct Net {
    IpBytes ip;
    unsigned bits;  // prefix length over the 128 bits
  };
  std::vector<Net> nets_;
};

// The client's address for a request whose socket peer is `peer` and whose
// X-Forwarded-For header is `forwarded_for` ("" when absent).
std::string ClientAddress(std::string_view peer, std::string_view forwarded_for,
                          const AddressSet& trusted_proxies);

}  // namespace parley
