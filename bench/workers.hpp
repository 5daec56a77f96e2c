// Worker processes. One process may hold at most RLIMIT_NOFILE descriptors
// (20,000 on the reference machine), so a scenario with more sockets than
// that forks K workers, each taking a contiguous share of the accounts. A
// worker talks to the parent over two pipes, one JSON object per line:
// up:   {"type":"ready",...} once connected, {"type":"progress",...} each
//       second, {"type":"result",...} at the end;
// down: {"type":"go","start_ns":...} when every worker is ready (so that
//       measurement starts together, on the steady clock they all share).
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::bench {

struct WorkerInfo {
  int index = 0;
  int count = 1;
  std::size_t begin = 0;  // this worker's accounts: [begin, end)
  std::size_t end = 0;
};

// The child's end.
class ParentLink {
 public:
  ParentLink(int up_fd, int down_fd) : up_(up_fd), down_(down_fd) {}
  void Send(const boost::json::object& msg);  // thread-safe
  // The next line from the parent, or nullopt at the deadline or EOF.
  std::optional<boost::json::object> Receive(std::chrono::steady_clock::time_point deadline);

 private:
  int up_;
  int down_;
  std::mutex mu_;
  std::string buf_;
};

using WorkerMain = std::function<int(const WorkerInfo&, ParentLink&)>;

// The parent's end.
class WorkerPool {
 public:
  WorkerPool() = default;
  ~WorkerPool();  // kills and reaps workers that are still running
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Forks `procs` workers over `accounts` accounts. Call with no other
  // threads running (fork copies only the calling thread).
  bool Start(int procs, std::size_t accounts, const WorkerMain& fn, std::string* error);
  int size() const { return static_cast<int>(workers_.size()); }

  // Waits until every worker has sent a message of `type` (in `out`, by
  // worker). Other messages go to on_message; on_tick runs about every 200 ms.
  bool Gather(std::string_view type, std::chrono::steady_clock::time_point deadline,
              std::vector<boost::json::object>* out,
              const std::function<void(int, const boost::json::object&)>& on_message,
              const std::function<void()>& on_tick, std::string* error);
  void Broadcast(const boost::json::object& msg);
  // Waits (bounded) for every worker to exit; kills the ones that do not.
  void Reap(std::chrono::milliseconds grace);

 private:
  struct Worker {
    pid_t pid = -1;
    int up = -1;    // read end
    int down = -1;  // write end
    std::string buf;
    bool eof = false;
    bool exited = false;
  };
  std::vector<Worker> workers_;
};

}  // namespace parley::bench
