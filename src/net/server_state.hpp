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

#include "common/address.hpp"
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

class ServerState;

// One admitted socket's place under the connection caps; it travels with the
// socket from the HTTP session to the WebSocket session and gives the place
// back when destroyed. Thread-safe.
class ConnectionSlot {
 public:
  ConnectionSlot(ServerState& state, std::string key, bool per_address)
      : state_(state), key_(std::move(key)), per_address_(per_address) {}
  ~ConnectionSlot();
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  // The socket is a signed-in WebSocket now: it leaves the unauthenticated count.
  void Authenticated();

 private:
  ServerState& state_;
  const std::string key_;
  const bool per_address_;
  std::atomic<bool> authenticated_{false};
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

  // A new socket from `address` under the caps of ServerOptions, or null when
  // a cap refuses it (counted in parley_connections_refused_total).
  std::shared_ptr<ConnectionSlot> Admit(const std::string& address);
  // The global cap in effect (0: none); set by Server::Listen.
  void SetConnectionCap(std::size_t cap) { connection_cap_ = cap; }
  std::size_t connection_cap() const { return connection_cap_; }

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
  friend class ConnectionSlot;
  void Release(const std::string& key, bool per_address, bool authenticated);
  void ReleaseUnauthenticated(const std::string& key, bool per_address);

  struct AddressCount {
    std::size_t open = 0;
    std::size_t unauthenticated = 0;
  };
  std::mutex caps_mu_;
  std::size_t open_total_ = 0;
  std::unordered_map<std::string, AddressCount> by_address_;
  std::size_t connection_cap_ = 0;
  AddressSet exempt_;
  Counter& refused_address_;
  Counter& refused_unauthenticated_;
  Counter& refused_global_;

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
