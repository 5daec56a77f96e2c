// Which senders already have their peers rows (with the direction: sender
// wrote to recipient) for a recipient, so that a send does not look them up
// every time (writer thread only). Pairs are ordered: (a, b) says a wrote to b.
//
// A pair goes in as pending when a job writes its rows, is kept or dropped
// with the job (BatchObserver::JobDone) and becomes known once its batch
// committed: a pair is never "known" unless its rows are durable. The set is
// bounded: past kMaxKnown pairs it starts over, which costs lookups only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/records.hpp"
#include "store/rocksdb/group_writer.hpp"

namespace parley::store::rocks {

class PeerCache final : public BatchObserver {
 public:
  static constexpr std::size_t kMaxKnown = 1 << 20;

  // `a` wrote to `b` and the rows say so, committed or written by this batch.
  bool Known(UserId a, UserId b) const {
    const Pair p = Key(a, b);
    return known_.contains(p) || batch_.contains(p) || job_.contains(p);
  }
  // This job writes the pair's rows.
  void Add(UserId a, UserId b) { job_.insert(Key(a, b)); }

  void JobDone(bool kept) override {
    if (kept) batch_.insert(job_.begin(), job_.end());
    job_.clear();
  }
  void BatchDone(bool committed) override {
    if (committed) {
      if (known_.size() + batch_.size() > kMaxKnown) known_.clear();
      known_.insert(batch_.begin(), batch_.end());
    }
    batch_.clear();
  }

 private:
  using Pair = std::pair<UserId, UserId>;
  struct PairHash {
    std::size_t operator()(const Pair& p) const {
      return std::hash<std::uint64_t>()(p.first * 0x9e3779b97f4a7c15ull ^ p.second);
    }
  };
  static Pair Key(UserId a, UserId b) { return Pair{a, b}; }

  std::unordered_set<Pair, PairHash> known_;
  std::unordered_set<Pair, PairHash> batch_;
  std::unordered_set<Pair, PairHash> job_;
};

}  // namespace parley::store::rocks
