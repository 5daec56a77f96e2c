#include "support/postgres.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace parley::test {
namespace {

namespace fs = std::filesystem;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("no free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs `command` as the postgres OS user when we are root.
std::string AsPostgres(const std::string& command) {
  if (geteuid() != 0) return command;
  return "runuser -u postgres -- " + command;
}

// Each server's folder names the test process that owns it (kOwnerFile:
// its pid and its start time, so that a reused pid is not taken for the
// owner). A test binary killed mid-run (SIGKILL, ctest stopped by hand)
// never stops its server; the next TempPostgres stops those whose owner is
// gone and removes their folders.
constexpr const char* kOwnerFile = "owner";

// The start time of process `pid` (field 22 of /proc/PID/stat), or "" when
// there is no such process.
std::string StartTime(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return "";
  // The command name (field 2) is in parentheses and may hold spaces.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return field;
  }
  return "";
}

bool OwnerAlive(const fs::path& dir) {
  std::ifstream in(dir / kOwnerFile);
  long pid = 0;
  std::string started;
  if (!(in >> pid >> started) || pid <= 0) return true;  // not ours to judge: leave it
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  return StartTime(static_cast<pid_t>(pid)) == started;
}

void ReapOrphans() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("parley-pg-") || !fs::exists(entry.path() / kOwnerFile, ec)) continue;
    if (OwnerAlive(entry.path())) continue;
    if (fs::exists(entry.path() / "data" / "postmaster.pid", ec)) {
      const std::string stop =
          AsPostgres(PostgresBinDir() + "/pg_ctl stop -w -t 30 -s -m immediate -D " +
                     entry.path().string() + "/data > /dev/null 2>&1");
      (void)std::system(stop.c_str());
    }
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

std::string PostgresBinDir() {
  if (const char* dir = std::getenv("PARLEY_PG_BIN"); dir != nullptr && *dir != '\0') return dir;
  return "/usr/lib/postgresql/15/bin";
}

TempPostgres::TempPostgres() {
  ReapOrphans();
  std::string tmpl = "/tmp/parley-pg-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  {
    std::ofstream owner(dir_ + "/" + kOwnerFile);
    owner << getpid() << " " << StartTime(getpid()) << "\n";
  }
  if (geteuid() == 0) {
    Run("chown postgres:postgres " + dir_);
  }
  Run(AsPostgres(PostgresBinDir() +
                 "/initdb --no-sync -A trust -U postgres -E UTF8 --locale=C -D " + dir_ +
                 "/data > " + dir_ + "/initdb.log 2>&1"));
  port_ = FreePort();
  Start();
}

TempPostgres::~TempPostgres() {
  try {
    if (running_) Stop();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void TempPostgres::Run(const std::string& command) const {
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("failed: " + command);
  }
}

void TempPostgres::Start() {
  // Port collisions with other test processes are possible in theory; a
  // failed start names the log.
  Run(AsPostgres(PostgresBinDir() + "/pg_ctl start -w -t 60 -s -D " + dir_ + "/data -l " + dir_ +
                 "/server.log -o \"-p " + std::to_string(port_) + " -k " + dir_ +
                 " -c listen_addresses='' -c max_connections=200 -c shared_buffers=32MB\""));
  running_ = true;
}

void TempPostgres::Stop() {
  Run(AsPostgres(PostgresBinDir() + "/pg_ctl stop -w -t 60 -s -m fast -D " + dir_ + "/data"));
  running_ = false;
}

std::string TempPostgres::Url(const std::string& database) const {
  return "postgresql://postgres@/" + database + "?host=" + dir_ + "&port=" + std::to_string(port_);
}

std::string TempPostgres::CreateDatabase(const std::string& name) {
  const std::string url = Url("postgres");
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("connect: ") + PQerrorMessage(conn.get()));
  }
  const std::string sql = "CREATE DATABASE \"" + name + "\"";
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    throw std::runtime_error(std::string("create database: ") + PQerrorMessage(conn.get()));
  }
  return Url(name);
}

TempPostgres& SharedPostgres() {
  // Destroyed at exit, which stops the server and removes its folder.
  static TempPostgres server;
  return server;
}

}  // namespace parley::test
