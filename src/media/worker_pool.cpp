#include "media/worker_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <exception>

#include "common/log.hpp"

namespace parley::media {

WorkerPool::WorkerPool(std::size_t threads, std::string name) : name_(name) {
  threads = std::max<std::size_t>(1, threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Run(); });
    pthread_setname_np(threads_.back().native_handle(), name.substr(0, 15).c_str());
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::Post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

std::size_t WorkerPool::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void WorkerPool::Run() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      fn = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    // A task that throws fails alone: the thread logs it and goes on (an
    // escaping exception would end the whole server).
    try {
      fn();
    } catch (const std::exception& e) {
      PLOG_ERROR("worker task failed", "pool={} error={}", name_, LogQuote(e.what()));
    } catch (...) {
      PLOG_ERROR("worker task failed", "pool={} error={}", name_, LogQuote("unknown exception"));
    }
    std::lock_guard lock(mu_);
    --running_;
  }
}

}  // namespace parley::media
