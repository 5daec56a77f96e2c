// A throwaway cluster for tests (PROTOCOL.md section 8): one database of the
// process's throwaway PostgreSQL (support/postgres.hpp), one redis-server
// (support/redis_server.hpp) and N parleyd nodes (support/client.hpp) started
// with the same --store, --bus and --media-dir, each with its own --node-id
// ("n1", "n2", ...), data directory and SMS file, on a loopback port that
// stays the node's across restarts (a load balancer's backend list stays
// valid).
//
// The interface is deliberately small: start it, reach node i through
// node(i) / endpoint(i) (or every node through the load balancer,
// balancer(), with Options::balancer), and break things (Kill, Pause/Resume, Restart,
// KillRedis/StartRedis). Everything blocks with a timeout and answers false
// on failure, like the rest of tests/support. Indices are 0-based.
//
//   Cluster c({.nodes = 3});
//   ASSERT_TRUE(c.Start());
//   Account a = SignIn(c.node(0), phone);     // tests/integration/helpers.hpp
//   auto ws = Connect(c.node(1), a);
//   c.Kill(1);                                // SIGKILL
//   ASSERT_TRUE(c.Restart(1));                // same port, same node id
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "support/client.hpp"
#include "support/delay_relay.hpp"
#include "support/haproxy.hpp"
#include "support/redis_server.hpp"

namespace parley::test {

class Cluster {
 public:
  struct Options {
    std::size_t nodes = 3;
    std::vector<std::string> args;  // extra flags for every node
    // HAProxy with the shipped configuration in front of the nodes
    // (support/haproxy.hpp): balancer() is where clients connect.
    bool balancer = false;
    // Per node (by index; missing ones: none), a delay each way between
    // the node and PostgreSQL (support/delay_relay.hpp), as a slow network.
    std::vector<std::chrono::milliseconds> store_delay;
  };
  Cluster();
  explicit Cluster(Options options);
  // Stops every node (SIGTERM; SIGCONT first for a paused one), then Redis.
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Creates the database, starts Redis and every node, and waits until each
  // node answers /ready 200 (up to 20 s). False on failure (with the reason
  // on stderr).
  bool Start();

  std::size_t size() const { return nodes_.size(); }
  Parleyd& node(std::size_t i) { return *nodes_.at(i); }
  const Endpoint& endpoint(std::size_t i) const { return nodes_.at(i)->endpoint(); }
  std::string node_id(std::size_t i) const { return "n" + std::to_string(i + 1); }
  pid_t pid(std::size_t i) const { return nodes_.at(i)->pid(); }

  // Node faults. Kill: SIGKILL and reap. Pause/Resume: SIGSTOP/SIGCONT (its
  // sockets stay open, it answers nothing). Terminate: SIGTERM (a drain),
  // returns the exit status. Restart: starts a stopped or killed node again
  // (a running one is terminated first) on its port, with its node id, and
  // waits for /ready 200 (the old claim may take up to its TTL to yield).
  void Kill(std::size_t i);
  bool Pause(std::size_t i);
  bool Resume(std::size_t i);
  int Terminate(std::size_t i);
  bool Restart(std::size_t i);
  bool running(std::size_t i) const { return nodes_.at(i)->pid() > 0; }

  // Bus faults: SIGKILL redis-server (no persistence: everything in it is
  // gone) and start it again on the same port.
  void KillRedis() { redis_.Kill(); }
  bool StartRedis() { return redis_.Start(); }
  RedisServer& redis() { return redis_; }

  // The load balancer's endpoint (Options::balancer).
  const Endpoint& balancer() const { return haproxy_.endpoint(); }
  Haproxy& haproxy() { return haproxy_; }

  const std::string& store_url() const { return store_url_; }
  std::string bus_url() const { return redis_.url(); }
  const std::string& media_dir() const { return media_dir_; }

  // GET /ready of node i answers `status` within `within` (polling).
  bool WaitReady(std::size_t i, int status, std::chrono::milliseconds within = 20s);

 private:
  Options options_;
  RedisServer redis_;
  Haproxy haproxy_;
  std::vector<std::unique_ptr<DelayRelay>> relays_;
  std::string dir_;  // holds media/ (shared) and the nodes' data directories
  std::string store_url_;
  std::string media_dir_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<Parleyd>> nodes_;
  std::vector<bool> paused_;
};

}  // namespace parley::test
