#include "support/haproxy.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "support/redis_server.hpp"  // FreePort

extern char** environ;

namespace parley::test {

namespace fs = std::filesystem;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The shipped configuration with this run's frontend, stats socket and
// servers (the rewrite scripts/cluster makes).
std::string Configure(const std::string& shipped, const std::string& sock, std::uint16_t port,
                      const std::vector<Endpoint>& servers) {
  std::istringstream in(shipped);
  std::ostringstream out;
  bool servers_written = false;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    const std::string_view word =
        first == std::string::npos ? std::string_view() : std::string_view(line).substr(first);
    const std::string indent = first == std::string::npos ? "" : line.substr(0, first);
    if (word.starts_with("stats socket ")) {
      std::string rest(word.substr(std::string_view("stats socket ").size()));
      rest = rest.substr(std::min(rest.size(), rest.find(' ')));
      line = indent + "stats socket " + sock + rest;
    } else if (word.starts_with("bind ")) {
      line = indent + "bind 127.0.0.1:" + std::to_string(port);
    } else if (word.starts_with("server ")) {
      if (servers_written) continue;
      servers_written = true;
      std::string lines;
      for (std::size_t i = 0; i < servers.size(); ++i) {
        lines += indent + "server n" + std::to_string(i + 1) + " " + servers[i].host + ":" +
                 std::to_string(servers[i].port) + "\n";
      }
      out << lines;
      continue;
    }
    out << line << "\n";
  }
  return out.str();
}

}  // namespace

Haproxy::Haproxy() {
  char tmpl[] = "/tmp/parley-haproxy-XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
}

Haproxy::~Haproxy() {
  Kill();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string Haproxy::Log() const { return Slurp(dir_ + "/haproxy.log"); }

bool Haproxy::Start(const std::vector<Endpoint>& servers) {
  if (pid_ > 0 || dir_.empty()) return false;
  const std::string shipped = Slurp(PARLEY_HAPROXY_CFG);
  if (shipped.empty()) {
    std::cerr << "parley-test: haproxy: cannot read " << PARLEY_HAPROXY_CFG << "\n";
    return false;
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    endpoint_.port = FreePort();
    const std::string cfg = dir_ + "/haproxy.cfg";
    std::ofstream(cfg) << Configure(shipped, dir_ + "/parley.sock", endpoint_.port, servers);
    const std::string log = dir_ + "/haproxy.log";
    std::vector<std::string> args = {"/usr/sbin/haproxy", "-db", "-f", cfg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Gone with the test (also when it crashes).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (log_fd >= 0) {
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
      }
      ::execve(argv[0], argv.data(), environ);
      ::_exit(127);
    }
    if (log_fd >= 0) ::close(log_fd);
    if (pid < 0) return false;
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Http(endpoint_, "GET", "/ready", "", {}, 1s).status == 200) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;  // exited: the port was taken, or the configuration is bad
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
  }
  std::cerr << "parley-test: haproxy did not start; its log:\n" << Log() << "\n";
  return false;
}

void Haproxy::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace parley::test
