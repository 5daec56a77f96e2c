// The Client's event queue: filled by the I/O thread, drained by the
// application from any thread. Bounded: past the limit the oldest event is
// dropped (and counted); messages are in the store regardless.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "parley/events.hpp"

namespace parley::sdk::detail {

class EventQueue {
 public:
  explicit EventQueue(std::size_t max);
  ~EventQueue();
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  void Push(Event event);
  std::optional<Event> Pop();
  std::optional<Event> Wait(std::chrono::milliseconds timeout);
  // An eventfd that is readable exactly while the queue is not empty.
  int fd() const { return fd_; }
  std::uint64_t dropped() const;

 private:
  void SyncFdLocked();

  const std::size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> queue_;
  std::uint64_t dropped_ = 0;
  bool fd_signalled_ = false;
  int fd_ = -1;
};

}  // namespace parley::sdk::detail
