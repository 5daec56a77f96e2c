#include "support/postgres.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
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

}  // namespace

std::string PostgresBinDir() {
  if (const char* dir = std::getenv("PARLEY_PG_BIN"); dir != nullptr && *dir != '\0') return dir;
  return "/usr/lib/postgresql/15/bin";
}

TempPostgres::TempPostgres() {
  std::string tmpl = "/tmp/parley-pg-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
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
