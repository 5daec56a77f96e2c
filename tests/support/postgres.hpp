// A throwaway PostgreSQL 15 server for tests: initdb in a temporary folder
// (owned by, and run as, the `postgres` OS user when the tests run as root),
// a free port, its unix socket in that folder, no TCP listener. Stopped and
// removed when destroyed. One per test binary run; each test takes a fresh
// database (CreateDatabase).
#pragma once

#include <string>

namespace parley::test {

class TempPostgres {
 public:
  // Starts the server; throws std::runtime_error with the reason on failure.
  TempPostgres();
  ~TempPostgres();
  TempPostgres(const TempPostgres&) = delete;
  TempPostgres& operator=(const TempPostgres&) = delete;

  // Creates an empty database and answers its URL (postgresql://...).
  std::string CreateDatabase(const std::string& name);
  // A URL for `database` (which need not exist).
  std::string Url(const std::string& database) const;

  // Stops the server (fast shutdown: connections are cut) and starts it again.
  void Stop();
  void Start();
  bool running() const { return running_; }

 private:
  void Run(const std::string& command) const;

  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

// The process-wide server, started on first use and stopped at exit.
TempPostgres& SharedPostgres();

// Where PostgreSQL's server binaries are ($PARLEY_PG_BIN, else Debian's
// postgresql-15 path, which scripts/bootstrap installs).
std::string PostgresBinDir();

}  // namespace parley::test
