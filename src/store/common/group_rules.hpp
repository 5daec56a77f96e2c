// The backend-neutral rules of Store::ChangeGroup (store.hpp): who may do
// what, the member limit, join order, auto-promotion and the no-op check.
// Each backend reads the group as it stands inside its write, asks
// PlanGroupChange what the change makes of it, and writes the difference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store {

const GroupMember* FindMember(const Group& group, UserId user);

struct GroupPlan {
  // Not kOk: the change is refused and nothing else below is set.
  GroupChangeResult::Outcome outcome = GroupChangeResult::Outcome::kOk;
  // False: the group afterwards equals the group before; nothing to write.
  bool changed = true;
  // The group afterwards (no members: it is deleted). Null when refused or unchanged.
  std::shared_ptr<Group> after;
  std::uint64_t next_join_order = 1;  // what the group row keeps afterwards
  std::vector<UserId> auto_promoted;
  // A new group avatar (anyone signed in may then read it).
  bool avatar_changed = false;
};

// `before`: the group as it stands (null when there is none);
// `next_join_order` its row's. `actor_is_former` is asked only when the
// actor is not a member (kNotMember rather than kNotFound). kInvalid for a
// kCreate of an existing group.
Result<GroupPlan> PlanGroupChange(const GroupChange& change, const Group* before,
                                  std::uint64_t next_join_order,
                                  const std::function<Result<bool>()>& actor_is_former);

}  // namespace parley::store
