#include "store/rocksdb/incoming_index.hpp"

#include <algorithm>

namespace parley::store::rocks {

void IncomingIndex::Note(UserId user, Seq head_before, const Row& row) {
  auto [it, inserted] = users_.try_emplace(user);
  if (inserted) it->second.from = head_before;
  auto& rows = it->second.rows;
  // Seqs of one mailbox only grow while an entry lives (a failed batch, which
  // hands seqs out again, clears the index), so this holds; if it did not,
  // the entry could no longer vouch for anything.
  if (row.seq <= it->second.from || (!rows.empty() && row.seq <= rows.back().seq)) {
    users_.erase(it);
    return;
  }
  rows.push_back(row);
  noted_.push_back(user);
}

bool IncomingIndex::Collect(UserId user, Seq after, Seq up_to, std::vector<Row>& out) const {
  auto it = users_.find(user);
  if (it == users_.end() || after < it->second.from) return false;
  const auto& rows = it->second.rows;
  auto first = std::upper_bound(rows.begin(), rows.end(), after,
                                [](Seq s, const Row& r) { return s < r.seq; });
  for (auto r = first; r != rows.end() && r->seq <= up_to; ++r) out.push_back(*r);
  return true;
}

void IncomingIndex::Track(UserId user, Seq head) {
  auto [it, inserted] = users_.try_emplace(user);
  if (inserted) it->second.from = head;
}

void IncomingIndex::Delivered(UserId user, Seq up_to) { delivered_.emplace_back(user, up_to); }

void IncomingIndex::Clear() {
  users_.clear();
  noted_.clear();
  job_noted_ = 0;
  // Watermarks recorded so far only ever remove rows: harmless on an empty index.
}

void IncomingIndex::JobDone(bool kept) {
  if (!kept) {
    // The job's rows are the newest of their users: take them back in reverse.
    for (std::size_t i = noted_.size(); i > job_noted_; --i) {
      auto it = users_.find(noted_[i - 1]);
      if (it != users_.end() && !it->second.rows.empty()) it->second.rows.pop_back();
    }
    noted_.resize(job_noted_);
    delivered_.resize(job_delivered_);
  }
  job_noted_ = noted_.size();
  job_delivered_ = delivered_.size();
}

void IncomingIndex::BatchDone(bool committed) {
  if (!committed) {
    // Its seqs are handed out again: what the index noted may be reused.
    users_.clear();
  } else {
    for (const auto& [user, up_to] : delivered_) {
      auto it = users_.find(user);
      if (it == users_.end()) continue;
      auto& rows = it->second.rows;
      auto end = std::upper_bound(rows.begin(), rows.end(), up_to,
                                  [](Seq s, const Row& r) { return s < r.seq; });
      rows.erase(rows.begin(), end);
    }
    for (UserId user : noted_) {
      auto it = users_.find(user);
      if (it == users_.end() || it->second.rows.size() <= kMaxRowsPerUser) continue;
      auto& e = it->second;
      const std::size_t drop = e.rows.size() - kMaxRowsPerUser;
      e.from = e.rows[drop - 1].seq;
      e.rows.erase(e.rows.begin(), e.rows.begin() + static_cast<std::ptrdiff_t>(drop));
    }
    if (users_.size() > kMaxUsers) users_.clear();
  }
  noted_.clear();
  delivered_.clear();
  job_noted_ = job_delivered_ = 0;
}

}  // namespace parley::store::rocks
