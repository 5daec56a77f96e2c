// The HTTP + WebSocket server: one io_context run by N threads, a strand per
// connection, TLS when a certificate is configured. Asio and Beast stay
// behind this pimpl so that only src/net/*.cpp instantiates them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/metrics.hpp"
#include "common/result.hpp"
#include "net/service.hpp"

namespace parley::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: pick a free port
  unsigned threads = 1;
  std::string tls_cert_file;  // both set: serve https:// and wss:// only
  std::string tls_key_file;
  std::chrono::milliseconds auth_timeout{10000};   // no MarkAuthenticated by then: close 4401
  std::chrono::milliseconds idle_timeout{90000};   // nothing received for this long: close 4408
  std::chrono::milliseconds ping_interval{30000};  // WebSocket pings to a quiet peer
  std::size_t max_frame_bytes = 256 * 1024;        // larger: close 4400
  std::size_t max_body_bytes = 1024 * 1024;        // larger HTTP bodies: 413
  std::size_t max_queue_bytes = 8 * 1024 * 1024;   // per-socket unsent frames; over it: close 1013
  std::chrono::milliseconds shutdown_timeout{10000};
  // Connection caps (0: none). A socket over a cap is closed as soon as it is
  // accepted. Per address: IPv4, or an IPv6 /64; "unauthenticated" is every
  // socket but a WebSocket whose hello succeeded (MarkAuthenticated). The
  // global cap is max_connections, and never more than the open-files limit
  // minus fd_reserve, so that a flood cannot take the descriptors the store
  // and media need. `trusted_proxies` (IPs and CIDRs) are exempt from the
  // per-address caps.
  std::size_t max_connections_per_address = 0;
  std::size_t max_unauthenticated_per_address = 0;
  std::size_t max_connections = 0;
  std::size_t fd_reserve = 0;
  std::string trusted_proxies;
  std::string connection_caps_exempt;  // also exempt from the per-address caps
};

class Server {
 public:
  Server(ServerOptions options, Service& service, Registry& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens. Returns the bound "host:port" (the real port when 0
  // was asked for). Throws std::runtime_error when it cannot bind or read
  // the TLS files.
  std::string Listen();
  bool tls() const;

  // Runs the I/O threads on this thread and options.threads - 1 more, until
  // the server has drained after Shutdown() or SIGTERM/SIGINT.
  void Run();

  // Stop accepting, close every WebSocket with 1001 (bye first), let
  // in-flight HTTP requests finish, then stop the I/O threads once every
  // socket is gone or the shutdown timeout has passed. Thread-safe.
  void Shutdown();

  // Runs fn on an I/O thread.
  void Post(std::function<void()> fn);
  // Runs fn on an I/O thread every `period` until shutdown.
  void Every(std::chrono::milliseconds period, std::function<void()> fn);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace parley::net
