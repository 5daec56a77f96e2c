// A throwaway HAProxy in front of a cluster's nodes, for the failure tests
// that are about what a user behind the load balancer sees (issue 13).
//
// It runs the configuration the repository ships (deploy/haproxy/
// haproxy.cfg: leastconn, checks on /ready, the WebSocket timeouts), changed
// as `make cluster` changes it (scripts/cluster): its frontend on a free
// loopback port, its stats socket in a folder of its own, and one server
// line per node. Killed (SIGKILL) by the destructor and when the thread that
// started it exits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/client.hpp"

namespace parley::test {

class Haproxy {
 public:
  Haproxy();
  ~Haproxy();
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  // Starts it in front of `servers` (named n1, n2, ... in order) and waits
  // up to 10 s until GET /ready through it answers 200. False on failure
  // (the reason and its log on stderr).
  bool Start(const std::vector<Endpoint>& servers);
  void Kill();

  // Where clients connect.
  const Endpoint& endpoint() const { return endpoint_; }
  // Its log (stdout and stderr).
  std::string Log() const;

 private:
  std::string dir_;
  Endpoint endpoint_;
  pid_t pid_ = -1;
};

}  // namespace parley::test
