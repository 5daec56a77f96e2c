#include "workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <thread>

namespace parley::bench {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

bool WriteAll(int fd, std::string_view s) {
  // Bounded: each write makes progress or fails.
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int PollMs(Clock::time_point deadline, int cap_ms) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, cap_ms));
}

// Pops one complete line from buf into *line.
bool PopLine(std::string& buf, std::string* line) {
  const auto nl = buf.find('\n');
  if (nl == std::string::npos) return false;
  line->assign(buf, 0, nl);
  buf.erase(0, nl + 1);
  return true;
}

std::optional<json::object> ParseObject(const std::string& line) {
  boost::system::error_code ec;
  auto v = json::parse(line, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

void ParentLink::Send(const json::object& msg) {
  const std::string line = json::serialize(msg) + "\n";
  std::lock_guard lock(mu_);
  WriteAll(up_, line);
}

std::optional<json::object> ParentLink::Receive(Clock::time_point deadline) {
  std::string line;
  // Bounded by the deadline.
  while (!PopLine(buf_, &line)) {
    if (Clock::now() >= deadline) return std::nullopt;
    pollfd p{down_, POLLIN, 0};
    const int r = ::poll(&p, 1, PollMs(deadline, 1000));
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (r <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(down_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // the parent is gone
    buf_.append(chunk, static_cast<std::size_t>(n));
  }
  return ParseObject(line);
}

WorkerPool::~WorkerPool() { Reap(std::chrono::milliseconds(0)); }

bool WorkerPool::Start(int procs, std::size_t accounts, const WorkerMain& fn, std::string* error) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  for (int i = 0; i < procs; ++i) {
    int up[2];
    int down[2];
    if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0) {
      *error = "pipe failed";
      return false;
    }
    WorkerInfo info{i, procs, accounts * static_cast<std::size_t>(i) / procs,
                    accounts * static_cast<std::size_t>(i + 1) / procs};
    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = "fork failed";
      return false;
    }
    if (pid == 0) {
      // A worker never outlives the bench: if the parent dies, so does it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(3);
      ::close(up[0]);
      ::close(down[1]);
      for (const auto& w : workers_) {
        ::close(w.up);
        ::close(w.down);
      }
      ParentLink link(up[1], down[0]);
      int rc = 2;
      try {
        rc = fn(info, link);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "parley-bench worker %d: %s\n", i, e.what());
      }
      std::fflush(stderr);
      // _exit: tearing down thousands of sockets and threads' state politely
      // would only cost time; the kernel closes everything.
      ::_exit(rc);
    }
    ::close(up[1]);
    ::close(down[0]);
    workers_.push_back(Worker{pid, up[0], down[1], {}, false, false});
  }
  return true;
}

bool WorkerPool::Gather(std::string_view type, Clock::time_point deadline,
                        std::vector<json::object>* out,
                        const std::function<void(int, const json::object&)>& on_message,
                        const std::function<void()>& on_tick, std::string* error) {
  const std::size_t n = workers_.size();
  out->assign(n, json::object());
  std::vector<bool> have(n, false);
  std::size_t got = 0;
  // Bounded by the deadline.
  while (got < n) {
    if (Clock::now() >= deadline) {
      *error = "timed out waiting for workers' \"" + std::string(type) + "\"";
      return false;
    }
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < n; ++i) {
      if (workers_[i].eof) continue;
      fds.push_back(pollfd{workers_[i].up, POLLIN, 0});
      which.push_back(i);
    }
    const int r = fds.empty() ? 0 : ::poll(fds.data(), fds.size(), PollMs(deadline, 200));
    if (r < 0 && errno != EINTR) {
      *error = "poll failed";
      return false;
    }
    for (std::size_t k = 0; k < fds.size() && r > 0; ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Worker& w = workers_[which[k]];
      char chunk[65536];
      const ssize_t m = ::read(w.up, chunk, sizeof chunk);
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) {
        w.eof = true;
        continue;
      }
      w.buf.append(chunk, static_cast<std::size_t>(m));
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::string line;
      while (PopLine(workers_[i].buf, &line)) {
        auto msg = ParseObject(line);
        if (!msg) continue;
        const auto* t = msg->if_contains("type");
        if (t != nullptr && t->is_string() && t->as_string() == type && !have[i]) {
          have[i] = true;
          ++got;
          (*out)[i] = std::move(*msg);
        } else if (on_message) {
          on_message(static_cast<int>(i), *msg);
        }
      }
      if (workers_[i].eof && !have[i]) {
        *error = "worker " + std::to_string(i) + " exited before its \"" + std::string(type) +
                 "\" (see its messages above)";
        return false;
      }
    }
    if (on_tick) on_tick();
  }
  return true;
}

void WorkerPool::Broadcast(const json::object& msg) {
  const std::string line = json::serialize(msg) + "\n";
  for (auto& w : workers_) WriteAll(w.down, line);
}

void WorkerPool::Reap(std::chrono::milliseconds grace) {
  const auto deadline = Clock::now() + grace;
  for (auto& w : workers_) {
    if (w.exited) continue;
    // Bounded by the grace period, then SIGKILL.
    while (true) {
      int status = 0;
      const pid_t r = ::waitpid(w.pid, &status, WNOHANG);
      if (r == w.pid || r < 0) break;
      if (Clock::now() >= deadline) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    w.exited = true;
    ::close(w.up);
    ::close(w.down);
  }
}

}  // namespace parley::bench
