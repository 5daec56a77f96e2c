// A relay that holds every byte for a while in each direction, to put a
// network's round trip between parleyd and a test's PostgreSQL (which
// listens on a unix socket only, support/postgres.hpp).
//
// It listens on a unix socket of the same port number in a folder of its
// own, so that a PostgreSQL URL points at it by changing `host=` alone
// (Url), and relays each connection to the server's socket. Bytes read from
// either side are written to the other `one_way` later, without holding up
// the bytes behind them: a round trip costs 2 x one_way, pipelined traffic
// keeps its throughput.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace parley::test {

class DelayRelay {
 public:
  // `url`: a PostgreSQL URL of the form TempPostgres::Url answers
  // (postgresql://USER@/DB?host=DIR&port=PORT). Throws std::runtime_error
  // when it cannot listen.
  DelayRelay(const std::string& url, std::chrono::milliseconds one_way);
  // Cuts every relayed connection and removes the socket's folder.
  ~DelayRelay();
  DelayRelay(const DelayRelay&) = delete;
  DelayRelay& operator=(const DelayRelay&) = delete;

  // `url` with its host replaced by the relay's folder.
  const std::string& url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::test
