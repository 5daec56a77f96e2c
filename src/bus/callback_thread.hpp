// A thread that runs what is posted to it, in order: the Executor parleyd
// gives its bus, so that bus callbacks (which only touch thread-safe core
// state and post to sessions' strands) never wait behind the I/O threads and
// can run before the server does (the node claim at start).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "bus/bus.hpp"

namespace parley::bus {

class CallbackThread {
 public:
  CallbackThread() : thread_([this] { Loop(); }) {}
  ~CallbackThread() { Stop(); }
  CallbackThread(const CallbackThread&) = delete;
  CallbackThread& operator=(const CallbackThread&) = delete;

  Executor executor() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      queue_.push_back(std::move(fn));
      cv_.notify_one();
    };
  }

  // Runs what is queued, then ends the thread.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace parley::bus
