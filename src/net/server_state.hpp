// Internal to src/net/: what the listener, the HTTP sessions and the
// WebSocket sessions share. Nothing outside src/net/ includes this.
//
// Lifetime: the io_context is the last member, so it is destroyed first.
// Destroying it destroys every pending handler, and with them the sessions
// those handlers own; a session's destructor still uses the members declared
// before the io_context (the connection table, the metrics, the TLS context).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.hpp"
#include "net/server.hpp"
#include "net/service.hpp"

namespace parley::net::detail {

// A live socket, as the server sees it while shutting down. Every method is
// thread-safe: it posts to the connection's strand.
class Connection {
 public:
  virtual ~Connection() = default;
  // Graceful: WebSockets close with 1001, HTTP closes after the response in flight.
  virtual void BeginShutdown() = 0;
  // The shutdown deadline has passed: drop the socket now.
  virtual void ForceClose() = 0;
  // The server is being destroyed and no I/O thread runs: break any
  // self-reference so that destroying the io_context frees the session.
  virtual void ReleaseSelf() {}
};

class ServerState {
 public:
  ServerState(ServerOptions options, Service& service, Registry& metrics);
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  // The connection table. Register returns the key to Unregister with. When
  // the last connection goes away during shutdown, the io_context stops.
  std::uint64_t Register(std::weak_ptr<Connection> connection);
  void Unregister(std::uint64_t key);
  std::vector<std::shared_ptr<Connection>> Snapshot();
  std::size_t ConnectionCount();

  bool shutting_down() const { return shutting_down_.load(); }
  // Set once Run() is over and the server is being destroyed: posting to the
  // io_context is pointless then, and unsafe while it is being torn down.
  bool destroying() const { return destroying_.load(); }

  // parley_http_responses_total{status}; the registry is asked once per status.
  Counter& Responses(unsigned status);

  const ServerOptions options;
  Service& service;
  Gauge& http_open;
  Gauge& ws_open;
  std::optional<boost::asio::ssl::context> ssl;

 protected:
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> destroying_{false};

 private:
  Registry& registry_;
  std::array<std::atomic<Counter*>, 600> responses_{};
  std::mutex mu_;
  std::uint64_t next_key_ = 1;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> connections_;

 public:
  boost::asio::io_context ioc;  // keep last: see the note at the top
};

// The peer's IP address as text; IPv4-mapped IPv6 addresses as plain IPv4.
std::string PeerAddress(const boost::asio::ip::address& address);

}  // namespace parley::net::detail
