#include "core/messaging/groups.hpp"

#include <algorithm>

namespace parley::core {

bool IsMember(const store::Group& g, store::UserId user) {
  return std::any_of(g.members.begin(), g.members.end(),
                     [&](const store::GroupMember& m) { return m.user == user; });
}

bool IsAdmin(const store::Group& g, store::UserId user) {
  return std::any_of(g.members.begin(), g.members.end(), [&](const store::GroupMember& m) {
    return m.user == user && m.role == store::GroupRole::kAdmin;
  });
}

Result<std::shared_ptr<const store::Group>> GroupCache::Get(store::GroupId id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(id); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.pos);
      return it->second.group;
    }
  }
  auto loaded = store_.GetGroup(id);
  if (!loaded) return std::unexpected(loaded.error());
  if (!*loaded) return std::shared_ptr<const store::Group>();
  auto group = std::make_shared<const store::Group>(std::move(**loaded));
  std::lock_guard lock(mu_);
  // A change committed while we read wins: only fill an empty slot.
  if (!entries_.contains(id)) Insert(id, group);
  return group;
}

Result<Membership> GroupCache::MembershipOf(store::GroupId id, store::UserId user) {
  auto g = Get(id);
  if (!g) return std::unexpected(g.error());
  if (*g && IsMember(**g, user)) return Membership::kMember;
  auto former = store_.IsFormerMember(id, user);
  if (!former) return std::unexpected(former.error());
  return *former ? Membership::kFormer : Membership::kNever;
}

void GroupCache::Replace(store::GroupId id, std::shared_ptr<const store::Group> group) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(id); it != entries_.end()) {
    lru_.erase(it->second.pos);
    entries_.erase(it);
  }
  if (group) Insert(id, std::move(group));
}

void GroupCache::Insert(store::GroupId id, std::shared_ptr<const store::Group> group) {
  lru_.push_front(id);
  entries_.emplace(id, Entry{std::move(group), lru_.begin()});
  while (entries_.size() > capacity_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
}

}  // namespace parley::core
