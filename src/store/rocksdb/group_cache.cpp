#include "store/rocksdb/group_cache.hpp"

namespace parley::store::rocks {

std::shared_ptr<const Group> GroupCache::Committed(GroupId id) {
  std::lock_guard lock(mu_);
  auto it = committed_.find(id);
  if (it == committed_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.state.group;
}

std::optional<GroupState> GroupCache::Current(GroupId id) {
  if (auto it = pending_.find(id); it != pending_.end()) return it->second;
  std::lock_guard lock(mu_);
  auto it = committed_.find(id);
  if (it == committed_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.state;
}

void GroupCache::Loaded(GroupId id, const GroupState& state) {
  if (!state.group) return;  // ids that name nothing are not worth a slot
  std::lock_guard lock(mu_);
  Insert(id, state);
}

void GroupCache::Stage(GroupId id, GroupState state) {
  auto [it, inserted] = pending_.try_emplace(id, state);
  if (inserted) {
    undo_.emplace_back(id, std::nullopt);
  } else {
    undo_.emplace_back(id, std::move(it->second));
    it->second = std::move(state);
  }
}

void GroupCache::JobDone(bool kept) {
  if (!kept) {
    for (auto u = undo_.rbegin(); u != undo_.rend(); ++u) {
      if (u->second) {
        pending_[u->first] = std::move(*u->second);
      } else {
        pending_.erase(u->first);
      }
    }
  }
  undo_.clear();
}

void GroupCache::BatchDone(bool committed) {
  if (committed && !pending_.empty()) {
    std::lock_guard lock(mu_);
    for (const auto& [id, state] : pending_) {
      if (state.group) {
        Insert(id, state);
      } else {
        Erase(id);
      }
    }
  }
  pending_.clear();
  undo_.clear();
}

void GroupCache::Insert(GroupId id, const GroupState& state) {
  if (auto it = committed_.find(id); it != committed_.end()) {
    it->second.state = state;
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return;
  }
  lru_.push_front(id);
  committed_.emplace(id, Entry{state, lru_.begin()});
  if (committed_.size() > capacity_) {
    committed_.erase(lru_.back());
    lru_.pop_back();
  }
}

void GroupCache::Erase(GroupId id) {
  if (auto it = committed_.find(id); it != committed_.end()) {
    lru_.erase(it->second.pos);
    committed_.erase(it);
  }
}

}  // namespace parley::store::rocks
