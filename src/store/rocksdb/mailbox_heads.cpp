#include "store/rocksdb/mailbox_heads.hpp"

#include <algorithm>

namespace parley::store::rocks {

Result<Seq> MailboxHeads::Committed(UserId user) {
  {
    std::lock_guard lock(mu_);
    if (auto it = committed_.find(user); it != committed_.end()) return it->second;
  }
  // Loaded outside the lock: a disk read must not hold up every other reader.
  auto loaded = load_(user);
  if (!loaded) return loaded;
  std::lock_guard lock(mu_);
  auto [it, inserted] = committed_.try_emplace(user, *loaded);
  // A commit may have raised it meanwhile; what the database showed us may be older.
  if (!inserted) it->second = std::max(it->second, *loaded);
  return it->second;
}

Result<Seq> MailboxHeads::Current(UserId user) {
  if (auto it = pending_.find(user); it != pending_.end()) return it->second;
  return Committed(user);
}

Result<Seq> MailboxHeads::Allocate(UserId user) {
  auto [it, inserted] = pending_.try_emplace(user, 0);
  if (inserted) {
    auto head = Committed(user);
    if (!head) {
      pending_.erase(it);
      return head;
    }
    it->second = *head;
    undo_.emplace_back(user, 0);
  } else {
    undo_.emplace_back(user, it->second);
  }
  return ++it->second;
}

void MailboxHeads::JobDone(bool kept) {
  if (!kept) {
    for (auto u = undo_.rbegin(); u != undo_.rend(); ++u) {
      if (u->second == 0) {
        pending_.erase(u->first);
      } else {
        pending_[u->first] = u->second;
      }
    }
  }
  undo_.clear();
}

void MailboxHeads::BatchDone(bool committed) {
  if (committed && !pending_.empty()) {
    std::lock_guard lock(mu_);
    for (const auto& [user, seq] : pending_) Raise(user, seq);
  }
  pending_.clear();
  undo_.clear();
}

void MailboxHeads::Raise(UserId user, Seq seq) {
  // Inserting without a load is right: the writer allocated `seq` from the
  // committed head, so it is the head now.
  auto [it, inserted] = committed_.try_emplace(user, seq);
  if (!inserted) it->second = std::max(it->second, seq);
}

}  // namespace parley::store::rocks
