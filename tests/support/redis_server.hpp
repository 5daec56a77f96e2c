// A throwaway redis-server for tests: a free loopback port, its own
// temporary directory, no persistence. Killed (SIGKILL) by the destructor
// and when the thread that started it exits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace parley::test {

class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts it on a free port (or port(), after the first start) and waits
  // up to 10 s until it answers PING. False on failure.
  bool Start();
  // SIGKILL and reap (the port stays this object's for Start()).
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  std::uint16_t port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:PORT

  // One command over a fresh connection; the reply in RESP text ("" when
  // the server cannot be reached).
  std::string Command(const std::vector<std::string>& args) const;

 private:
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A loopback port nothing listens on right now.
std::uint16_t FreePort();

}  // namespace parley::test
