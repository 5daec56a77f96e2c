#include "core/http/web_static.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include "core/http/http_api.hpp"
#include "proto/errors.hpp"

namespace parley::core {

namespace {

constexpr std::size_t kMaxIndexBytes = 1 << 20;

bool ApiPath(std::string_view path) {
  return path == "/health" || path == "/ready" || path == "/metrics" || path == "/v1" ||
         path.starts_with("/v1/");
}

// A file name inside assets/: letters, digits, '.', '-', '_', not starting
// with a dot (so no "..", no hidden files, no slashes).
bool SafeName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string_view ContentType(std::string_view name) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr std::array<Type, 11> kTypes{{
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".wasm", "application/wasm"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".txt", "text/plain; charset=utf-8"},
  }};
  for (const auto& t : kTypes) {
    if (name.ends_with(t.ext)) return t.type;
  }
  return "application/octet-stream";
}

// Host header characters that may go into the CSP (a name or address and a
// port); anything else leaves the ws: source out ('self' still covers it in
// browsers that follow CSP 3).
bool SafeHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

// Opens a regular file without following a symlink at its last component.
std::optional<int> OpenRegular(const std::string& path, struct stat* st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    return std::nullopt;
  }
  return fd;
}

net::HttpResponse NotFound() { return ErrorResponse(404, proto::code::kNotFound, "no such file"); }

}  // namespace

std::optional<std::string> WebStatic::Resolve(const std::string& setting) {
  if (setting == "off") return std::nullopt;
  std::filesystem::path dir = setting;
  if (setting.empty()) {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return std::nullopt;
    dir = exe.parent_path() / "web" / "dist";
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "index.html", ec)) return std::nullopt;
  return dir.string();
}

bool WebStatic::Owns(const net::HttpRequest& request) {
  return request.method == "GET" && !ApiPath(request.path);
}

void WebStatic::AddSecurityHeaders(net::HttpResponse& r, const net::HttpRequest& request) const {
  std::string connect = "'self'";
  const std::string_view host = request.GetHeader("Host");
  if (SafeHost(host)) connect += std::string(tls_ ? " wss://" : " ws://") + std::string(host);
  r.headers.push_back({"Content-Security-Policy",
                       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
                       "blob: data:; media-src 'self' blob:; font-src 'self'; connect-src " +
                           connect +
                           "; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  r.headers.push_back({"Referrer-Policy", "no-referrer"});
  r.headers.push_back({"Cross-Origin-Opener-Policy", "same-origin"});
  r.headers.push_back({"X-Frame-Options", "DENY"});
}

net::HttpResponse WebStatic::Index(const net::HttpRequest& request) const {
  struct stat st {};
  auto fd = OpenRegular(dir_ + "/index.html", &st);
  if (!fd) return NotFound();
  net::HttpResponse r;
  if (static_cast<std::size_t>(st.st_size) > kMaxIndexBytes) {
    ::close(*fd);
    return NotFound();
  }
  r.body.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < r.body.size()) {
    const ssize_t n = ::read(*fd, r.body.data() + got, r.body.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(*fd);
  r.body.resize(got);
  r.content_type = "text/html; charset=utf-8";
  r.headers.push_back({"Cache-Control", "no-cache"});
  AddSecurityHeaders(r, request);
  return r;
}

net::HttpResponse WebStatic::Serve(const net::HttpRequest& request) const {
  constexpr std::string_view kAssets = "/assets/";
  const std::string_view path = request.path;
  if (!path.starts_with(kAssets)) return Index(request);
  const std::string_view name = path.substr(kAssets.size());
  if (!SafeName(name)) return NotFound();
  struct stat st {};
  auto fd = OpenRegular(dir_ + "/assets/" + std::string(name), &st);
  if (!fd) return NotFound();
  net::HttpResponse r;
  r.content_type = std::string(ContentType(name));
  r.file = std::make_shared<net::FileRange>(*fd, 0, static_cast<std::uint64_t>(st.st_size));
  r.headers.push_back({"Cache-Control", "public, max-age=31536000, immutable"});
  AddSecurityHeaders(r, request);
  return r;
}

}  // namespace parley::core
