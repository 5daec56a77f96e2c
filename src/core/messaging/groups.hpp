// Group membership as core sees it: a cache of hot groups in front of the
// store (the seed's Redis membership cache, in one process), replaced after
// every committed change. A miss reads the store; entries are bounded.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::core {

enum class Membership { kMember, kFormer, kNever };

class GroupCache {
 public:
  explicit GroupCache(store::Store& store, std::size_t capacity = 10000)
      : store_(store), capacity_(capacity) {}

  // The group, or null when it does not exist.
  Result<std::shared_ptr<const store::Group>> Get(store::GroupId id);
  // What `user` is to the group (kNever also when the group does not exist).
  Result<Membership> MembershipOf(store::GroupId id, store::UserId user);
  // After a committed change: the group as it now is (null: gone).
  void Replace(store::GroupId id, std::shared_ptr<const store::Group> group);

 private:
  void Insert(store::GroupId id, std::shared_ptr<const store::Group> group);

  store::Store& store_;
  const std::size_t capacity_;
  std::mutex mu_;
  std::list<store::GroupId> lru_;  // front: most recently used
  struct Entry {
    std::shared_ptr<const store::Group> group;
    std::list<store::GroupId>::iterator pos;
  };
  std::unordered_map<store::GroupId, Entry> entries_;
};

bool IsMember(const store::Group& g, store::UserId user);
bool IsAdmin(const store::Group& g, store::UserId user);

}  // namespace parley::core
