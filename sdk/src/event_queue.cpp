#include "event_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

namespace parley::sdk::detail {

EventQueue::EventQueue(std::size_t max) : max_(max == 0 ? 1 : max) {
  fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

EventQueue::~EventQueue() {
  if (fd_ >= 0) ::close(fd_);
}

// The eventfd counter is 1 while events wait and 0 otherwise.
void EventQueue::SyncFdLocked() {
  if (fd_ < 0) return;
  const bool want = !queue_.empty();
  if (want == fd_signalled_) return;
  if (want) {
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  } else {
    std::uint64_t value = 0;
    (void)!::read(fd_, &value, sizeof value);
  }
  fd_signalled_ = want;
}

void EventQueue::Push(Event event) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= max_) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(std::move(event));
    SyncFdLocked();
  }
  cv_.notify_one();
}

std::optional<Event> EventQueue::Pop() {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return std::nullopt;
  Event e = std::move(queue_.front());
  queue_.pop_front();
  SyncFdLocked();
  return e;
}

std::optional<Event> EventQueue::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
  Event e = std::move(queue_.front());
  queue_.pop_front();
  SyncFdLocked();
  return e;
}

std::uint64_t EventQueue::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace parley::sdk::detail
