// --bus redis://HOST:PORT (PROTOCOL.md section 8), parsed for the Redis bus.
#include <charconv>
#include <string>
#include <string_view>

#include "bus/redis/redis_bus.hpp"

namespace parley::bus {

Result<RedisOptions> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    return Fail(Errc::kInvalid, "expected redis://HOST:PORT, got \"" + std::string(url) + "\"");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  RedisOptions o;
  std::string_view host = rest;
  std::string_view port = "6379";
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos)
      return Fail(Errc::kInvalid, "bad IPv6 host in " + std::string(url));
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Fail(Errc::kInvalid, "bad port in " + std::string(url));
      port = rest.substr(close + 2);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  unsigned n = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (host.empty() || host.find_first_of("/@?") != std::string_view::npos || ec != std::errc() ||
      end != port.data() + port.size() || n == 0 || n > 65535) {
    return Fail(Errc::kInvalid, "expected redis://HOST:PORT, got \"" + std::string(url) + "\"");
  }
  o.host = std::string(host);
  o.port = std::string(port);
  return o;
}

}  // namespace parley::bus
