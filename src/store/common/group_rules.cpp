#include "store/common/group_rules.hpp"

#include <algorithm>
#include <utility>

namespace parley::store {
namespace {

using Kind = GroupChange::Kind;
using Outcome = GroupChangeResult::Outcome;

bool Contains(std::span<const UserId> users, UserId user) {
  return std::find(users.begin(), users.end(), user) != users.end();
}

// When members are left but no admin, the earliest joined becomes one. Those
// just demoted come last: a sole admin stepping down would otherwise be
// promoted straight back whenever it joined first (the creator always did).
void PromoteIfNoAdmin(Group& group, std::span<const UserId> demoted,
                      std::vector<UserId>& promoted) {
  if (group.members.empty()) return;
  for (const auto& m : group.members) {
    if (m.role == GroupRole::kAdmin) return;
  }
  GroupMember* pick = &group.members.front();
  for (auto& m : group.members) {
    if (!Contains(demoted, m.user)) {
      pick = &m;
      break;
    }
  }
  pick->role = GroupRole::kAdmin;
  promoted.push_back(pick->user);
}

// Whether `after` is `before` unchanged: the same members with the same
// roles, name and avatar (join data never changes for a member who stays).
bool SameGroup(const Group& before, const Group& after) {
  if (before.name != after.name || before.avatar_media_id != after.avatar_media_id ||
      before.members.size() != after.members.size()) {
    return false;
  }
  for (std::size_t i = 0; i < before.members.size(); ++i) {
    if (before.members[i].user != after.members[i].user ||
        before.members[i].role != after.members[i].role) {
      return false;
    }
  }
  return true;
}

GroupPlan Refused(Outcome outcome) {
  GroupPlan plan;
  plan.outcome = outcome;
  plan.changed = false;
  return plan;
}

}  // namespace

const GroupMember* FindMember(const Group& group, UserId user) {
  for (const auto& m : group.members) {
    if (m.user == user) return &m;
  }
  return nullptr;
}

Result<GroupPlan> PlanGroupChange(const GroupChange& c, const Group* before,
                                  std::uint64_t next_join_order,
                                  const std::function<Result<bool>()>& actor_is_former) {
  GroupPlan plan;
  std::uint64_t next = next_join_order;
  std::vector<UserId> demoted;
  std::shared_ptr<Group> after;

  if (c.kind == Kind::kCreate) {
    // Ids are fresh Snowflakes: an existing group here is a caller's bug.
    if (before != nullptr) return Fail(Errc::kInvalid, "the group already exists");
    after = std::make_shared<Group>(Group{.id = c.group_id,
                                          .name = c.name.value_or(""),
                                          .avatar_media_id = c.avatar_media_id.value_or(""),
                                          .created_by = c.actor,
                                          .created_ms = c.now_ms});
    next = 1;
    after->members.push_back({c.actor, GroupRole::kAdmin, c.now_ms, next++});
    for (UserId u : c.users) {
      if (FindMember(*after, u) != nullptr) continue;
      after->members.push_back({u, GroupRole::kMember, c.now_ms, next++});
    }
    if (after->members.size() > c.max_members) return Refused(Outcome::kTooManyMembers);
  } else {
    const GroupMember* actor = before != nullptr ? FindMember(*before, c.actor) : nullptr;
    if (actor == nullptr) {
      auto former = actor_is_former();
      if (!former) return std::unexpected(former.error());
      return Refused(*former ? Outcome::kNotMember : Outcome::kNotFound);
    }
    if (c.kind != Kind::kLeave && actor->role != GroupRole::kAdmin) {
      return Refused(Outcome::kNotAdmin);
    }
    after = std::make_shared<Group>(*before);
    auto& members = after->members;
    switch (c.kind) {
      case Kind::kAdd:
        for (UserId u : c.users) {
          if (FindMember(*after, u) != nullptr) continue;
          members.push_back({u, GroupRole::kMember, c.now_ms, next++});
        }
        if (members.size() > c.max_members) return Refused(Outcome::kTooManyMembers);
        break;
      case Kind::kRemove:
        std::erase_if(members, [&](const GroupMember& m) { return Contains(c.users, m.user); });
        break;
      case Kind::kLeave:
        std::erase_if(members, [&](const GroupMember& m) { return m.user == c.actor; });
        break;
      case Kind::kPromote:
      case Kind::kDemote: {
        const auto role = c.kind == Kind::kPromote ? GroupRole::kAdmin : GroupRole::kMember;
        for (auto& m : members) {
          if (!Contains(c.users, m.user)) continue;
          if (m.role == GroupRole::kAdmin && role == GroupRole::kMember) demoted.push_back(m.user);
          m.role = role;
        }
        break;
      }
      case Kind::kUpdate:
        if (c.name) after->name = *c.name;
        if (c.avatar_media_id) after->avatar_media_id = *c.avatar_media_id;
        break;
      case Kind::kCreate:
        break;  // handled above
    }
  }
  PromoteIfNoAdmin(*after, demoted, plan.auto_promoted);
  if (before != nullptr && SameGroup(*before, *after)) {
    // Nothing to write and nothing to announce (a sole admin stepping down
    // is promoted straight back: also no change, and no promotion).
    plan.changed = false;
    plan.auto_promoted.clear();
    plan.next_join_order = next_join_order;
    return plan;
  }
  plan.avatar_changed = c.kind == Kind::kUpdate && c.avatar_media_id &&
                        (before == nullptr || *c.avatar_media_id != before->avatar_media_id);
  plan.after = std::move(after);
  plan.next_join_order = next;
  return plan;
}

}  // namespace parley::store
