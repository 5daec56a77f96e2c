// Which user ids are known to exist, so that a 1:1 send need not read its
// recipient from the store every time (docs/architecture.md, "Reads go
// where").
//
// Design note. Accounts are never deleted (PROTOCOL.md has no such op; a
// device can go, the user id stays), so "this id exists" once seen is true
// for ever, on every node: no invalidation is needed, across nodes either.
// What is cached is only existence, never the user's record (profile,
// privacy), which does change. The cache is a fixed array of slots indexed
// by a hash of the id, each holding the last id seen there (0: empty; no
// account has id 0): lock-free, bounded (kSlots ids, 512 KiB), and a miss
// only costs the store read it replaces.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "store/store.hpp"

namespace parley::core {

class KnownUsers {
 public:
  static constexpr std::size_t kSlots = std::size_t{1} << 16;

  KnownUsers() : slots_(std::make_unique<std::array<std::atomic<store::UserId>, kSlots>>()) {}

  // True when `user` was Remember()ed and not pushed out by another id
  // since; false says nothing.
  bool Contains(store::UserId user) const {
    return user != 0 && Slot(user).load(std::memory_order_relaxed) == user;
  }
  // Only for an id the store said exists.
  void Remember(store::UserId user) {
    if (user != 0) Slot(user).store(user, std::memory_order_relaxed);
  }

 private:
  std::atomic<store::UserId>& Slot(store::UserId user) const {
    // Fibonacci hashing: the ids' low bits are a counter, their high bits a
    // timestamp; both spread over the slots.
    const std::uint64_t h = static_cast<std::uint64_t>(user) * 0x9E3779B97F4A7C15ull;
    return (*slots_)[h >> (64 - 16)];
  }
  std::unique_ptr<std::array<std::atomic<store::UserId>, kSlots>> slots_;
};

}  // namespace parley::core
