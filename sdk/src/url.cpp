#include <algorithm>
#include <cctype>

#include "net.hpp"

namespace parley::sdk::detail {

Result<Url> Url::Parse(std::string_view text) {
  Url url;
  auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    return Fail("invalid", "server URL must start with http://, https://, ws:// or wss://");
  }
  std::string scheme(text.substr(0, scheme_end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "http" || scheme == "ws") {
    url.tls = false;
  } else if (scheme == "https" || scheme == "wss") {
    url.tls = true;
  } else {
    return Fail("invalid", "unsupported URL scheme: " + scheme);
  }
  std::string_view rest = text.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    url.base = std::string(path);
  }
  if (authority.empty()) return Fail("invalid", "server URL has no host");
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return Fail("invalid", "unterminated IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return Fail("invalid", "bad port");
      url.port = std::string(authority.substr(1));
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) url.port = std::string(authority.substr(colon + 1));
  }
  if (url.host.empty()) return Fail("invalid", "server URL has no host");
  if (url.port.empty()) url.port = url.tls ? "443" : "80";
  if (!std::all_of(url.port.begin(), url.port.end(),
                   [](unsigned char c) { return std::isdigit(c) != 0; }) ||
      url.port.size() > 5) {
    return Fail("invalid", "bad port: " + url.port);
  }
  return url;
}

std::string Url::HostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + host + "]" : host;
  const bool default_port = (tls && port == "443") || (!tls && port == "80");
  return default_port ? h : h + ":" + port;
}

std::string Url::ToString() const {
  return std::string(tls ? "https://" : "http://") + HostHeader() + base;
}

}  // namespace parley::sdk::detail
