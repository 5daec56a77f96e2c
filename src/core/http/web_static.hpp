// The web client's files (PROTOCOL.md section 9; docs/web.md): parleyd serves
// the bundle that `make` builds in web/ from the same origin as the API, so
// that the page is a secure context that reaches the WebSocket without CORS.
//
// GET only. /assets/<name> is a content-hashed file: cached for a year,
// immutable. Every other path that is not an API path answers index.html
// (the app routes on the client; a reload of any URL it shows works),
// uncached. Every answer carries a strict Content-Security-Policy: scripts,
// styles and connections only from this origin (plus its ws:/wss: URL),
// images and media also from blob: (decrypted files), no frames, no plugins.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "net/service.hpp"

namespace parley::core {

class WebStatic {
 public:
  // `dir` holds index.html and assets/. `tls`: the page is served over https
  // (the CSP then names wss:).
  WebStatic(std::string dir, bool tls) : dir_(std::move(dir)), tls_(tls) {}

  // The folder to serve for the web_dir setting: "off" (none), a folder, or
  // empty for the bundle `make` builds (web/dist beside the parleyd
  // executable, i.e. build/web/dist). nullopt when it has no index.html.
  static std::optional<std::string> Resolve(const std::string& setting);

  // True for GET requests of paths that are not the API's (/v1/..., /health,
  // /ready, /metrics).
  static bool Owns(const net::HttpRequest& request);
  net::HttpResponse Serve(const net::HttpRequest& request) const;

 private:
  net::HttpResponse Index(const net::HttpRequest& request) const;
  void AddSecurityHeaders(net::HttpResponse& r, const net::HttpRequest& request) const;

  std::string dir_;
  bool tls_;
};

}  // namespace parley::core
