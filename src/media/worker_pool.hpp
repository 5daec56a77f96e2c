// A small fixed pool of threads for work that must stay off the I/O
// threads: disk writes and fsyncs of uploads, hashing, and media decoding.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parley::media {

class WorkerPool {
 public:
  WorkerPool(std::size_t threads, std::string name);
  // Runs what is queued, then joins.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues fn; tasks start in the order posted. After shutdown fn is dropped.
  void Post(std::function<void()> fn);
  // Tasks queued or running.
  std::size_t pending() const;
  // Tasks queued, not yet started.
  std::size_t queued() const;

 private:
  void Run();

  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace parley::media
