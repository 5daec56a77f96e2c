// Fairness between users for what they make the server write.
//
// Design note. Every store write is a job in one writer queue shared by all
// users (src/store/store.hpp). Three things keep one device from taking it
// over, whichever backend runs:
//   * a token bucket per device on every op that writes, and one on fan-out
//     whose cost is the number of recipients a write reaches (a group change
//     costs its members, a group message its members' devices), so a big
//     group is no multiplier (Core::write_limiter, Core::fanout_limiter);
//   * optionally (max_requests_in_flight, off by default), a cap on a
//     connection's requests in flight: past it, net stops reading that
//     socket until an answer goes out (Session::BeginWrite and
//     net::WsHandler::ReadyForMore), so pipelining gains nothing;
//   * a share per user of the writes in flight (WriteShare, below): past it
//     that user's next write is answered `rate_limited` at once and never
//     reaches the queue, so a user with many devices cannot fill it either.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "store/records.hpp"

namespace parley::core {

// How many store writes each user has in flight, with a cap per user.
// Thread-safe; a user with nothing in flight takes no memory.
class WriteShare {
 public:
  // limit 0: no cap (counting still happens, for the metrics).
  explicit WriteShare(std::uint32_t limit) : limit_(limit) {}

  // Counts one more write of `user`; false (and nothing counted) when the
  // user already has `limit` in flight.
  bool Acquire(store::UserId user);
  // The write counted by a successful Acquire is finished.
  void Release(store::UserId user);
  std::uint32_t InFlight(store::UserId user);

 private:
  const std::uint32_t limit_;
  std::mutex mu_;
  std::unordered_map<store::UserId, std::uint32_t> in_flight_;
};

}  // namespace parley::core
