// Groups: the group row, its members, its former members, and the
// membership a group send fans out to.
//
// A change locks the group row (FOR UPDATE), reads its members, is checked
// against the group as it stands, applied to a copy, and written as the
// difference between the members before and after, plus one kGroup row in
// the mailbox of everyone in either. Nothing is written unless every
// precondition holds; a change that changes nothing writes nothing and
// appends no event (changed = false).
//
// Former members: a user who leaves or is removed gets a group_former row,
// which goes again when the user is re-added. The rows stay when the group
// itself is deleted, so that those users keep being told "not a member".
#include <algorithm>
#include <span>
#include <utility>

#include "store/common/group_rules.hpp"
#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {
namespace {

using Kind = GroupChange::Kind;
using Outcome = GroupChangeResult::Outcome;

constexpr const char* kGroupQuery =
    "SELECT g.name, g.avatar_media_id, g.created_by, g.created_ms, g.next_join_order, "
    "m.user_id, m.role, m.joined_ms, m.join_order FROM groups g LEFT JOIN group_members m "
    "ON m.group_id = g.group_id WHERE g.group_id = $1 ORDER BY m.join_order";

// The group from kGroupQuery's rows (null when there are none).
std::shared_ptr<Group> GroupFrom(const Rows& r, GroupId id, std::uint64_t* next) {
  if (r.empty()) return nullptr;
  auto g = std::make_shared<Group>(Group{.id = id,
                                         .name = r.Bytes(0, 0),
                                         .avatar_media_id = r.Bytes(0, 1),
                                         .created_by = r.U64(0, 2),
                                         .created_ms = r.I64(0, 3)});
  if (next != nullptr) *next = r.U64(0, 4);
  for (int i = 0; i < r.size(); ++i) {
    if (r.IsNull(i, 5)) continue;
    g->members.push_back({.user = r.U64(i, 5),
                          .role = static_cast<GroupRole>(r.I16(i, 6)),
                          .joined_ms = r.I64(i, 7),
                          .join_order = r.U64(i, 8)});
  }
  return g;
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<Group>> PgStore::GetGroup(GroupId id) {
  ReadTimer timer(observer_, "get_group");
  auto r = reads_->Exec(kGroupQuery, Params().U64(id));
  if (!r) return Failed(r);
  auto g = GroupFrom(*r, id, nullptr);
  if (!g) return std::optional<Group>();
  return std::optional<Group>(std::move(*g));
}

Result<bool> PgStore::IsFormerMember(GroupId id, UserId user) {
  ReadTimer timer(observer_, "is_former_member");
  auto r = reads_->Exec("SELECT 1 FROM group_former WHERE group_id = $1 AND user_id = $2",
                        Params().U64(id).U64(user));
  if (!r) return Failed(r);
  return !r->empty();
}

// ---- Writes --------------------------------------------------------------------

void PgStore::ChangeGroup(GroupChange change, Callback<GroupChangeResult> done) {
  const GroupId id = change.group_id;
  Submit<GroupChangeResult>(
      "change_group", {}, std::move(done),
      [this, change = std::move(change)](Tx& tx) { return ApplyChangeGroup(tx, change); }, {id});
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<PgStore::GroupState> PgStore::TxnGroup(Tx& tx, GroupId id, bool lock) {
  if (lock) {
    auto exists = tx.LockGroup(id);
    if (!exists) return Failed(exists);
    if (!*exists) return GroupState{};
  }
  auto r = tx.Read(kGroupQuery, Params().U64(id));
  if (!r) return Failed(r);
  GroupState state;
  state.group = GroupFrom(*r, id, &state.next_join_order);
  return state;
}

Result<bool> PgStore::TxnIsFormer(Tx& tx, GroupId id, UserId user) {
  auto r = tx.Read("SELECT 1 FROM group_former WHERE group_id = $1 AND user_id = $2",
                   Params().U64(id).U64(user));
  if (!r) return Failed(r);
  return !r->empty();
}

Result<std::shared_ptr<const Group>> PgStore::TxnGroupForSend(Tx& tx, GroupId id, UserId sender) {
  auto state = TxnGroup(tx, id, /*lock=*/true);
  if (!state) return Failed(state);
  if (state->group && FindMember(*state->group, sender) != nullptr) return state->group;
  auto former = TxnIsFormer(tx, id, sender);
  if (!former) return Failed(former);
  if (*former) return Fail(Errc::kConflict, "the sender is no longer a member of the group");
  return Fail(Errc::kNotFound, "no such group");
}

Result<GroupChangeResult> PgStore::ApplyChangeGroup(Tx& tx, const GroupChange& c) {
  auto current = TxnGroup(tx, c.group_id, /*lock=*/true);
  if (!current) return Failed(current);
  const std::shared_ptr<Group> before = current->group;
  auto plan = PlanGroupChange(c, before.get(), current->next_join_order,
                              [&] { return TxnIsFormer(tx, c.group_id, c.actor); });
  if (!plan) return Failed(plan);
  GroupChangeResult result{.outcome = plan->outcome,
                           .changed = plan->changed,
                           .auto_promoted = std::move(plan->auto_promoted)};
  if (plan->outcome != Outcome::kOk) return result;
  if (!plan->changed) {
    result.group = before;
    return result;
  }
  std::shared_ptr<Group> after = std::move(plan->after);
  const std::uint64_t next = plan->next_join_order;
  if (plan->avatar_changed) {
    GrantMedia(tx, *c.avatar_media_id, 0);  // a group avatar is readable by anyone signed in
  }

  const GroupId id = c.group_id;
  if (c.kind == Kind::kCreate) {
    // Only a deleted group with the same id can have left these.
    tx.Write("DELETE FROM group_former WHERE group_id = $1", Params().U64(id));
  }
  if (after->members.empty()) {
    tx.Write("DELETE FROM groups WHERE group_id = $1", Params().U64(id));
  } else {
    tx.Write(
        "INSERT INTO groups (group_id, name, avatar_media_id, created_by, created_ms, "
        "next_join_order) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (group_id) DO UPDATE SET "
        "name = excluded.name, avatar_media_id = excluded.avatar_media_id, next_join_order = "
        "excluded.next_join_order",
        Params()
            .U64(id)
            .Bytes(after->name)
            .Bytes(after->avatar_media_id)
            .U64(after->created_by)
            .I64(after->created_ms)
            .U64(next));
  }

  static const std::vector<GroupMember> kNone;
  const auto& old_members = before != nullptr ? before->members : kNone;
  const auto& new_members = after->members;
  std::vector<UserId> recipients;
  for (const auto& m : old_members) recipients.push_back(m.user);
  std::vector<std::uint64_t> joined_users, joined_roles, joined_ms, joined_orders;
  for (const auto& m : old_members) {
    const GroupMember* now = FindMember(*after, m.user);
    if (now == nullptr) {
      tx.Write("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
               Params().U64(id).U64(m.user));
      tx.Write(
          "INSERT INTO group_former (group_id, user_id, left_ms) VALUES ($1, $2, $3) "
          "ON CONFLICT (group_id, user_id) DO UPDATE SET left_ms = excluded.left_ms",
          Params().U64(id).U64(m.user).I64(c.now_ms));
    } else if (now->role != m.role) {
      tx.Write("UPDATE group_members SET role = $3 WHERE group_id = $1 AND user_id = $2",
               Params().U64(id).U64(m.user).I16(static_cast<std::int16_t>(now->role)));
    }
  }
  for (const auto& m : new_members) {
    if (before != nullptr && FindMember(*before, m.user) != nullptr) continue;
    joined_users.push_back(m.user);
    joined_roles.push_back(static_cast<std::uint64_t>(m.role));
    joined_ms.push_back(static_cast<std::uint64_t>(m.joined_ms));
    joined_orders.push_back(m.join_order);
    recipients.push_back(m.user);
  }
  if (!joined_users.empty()) {
    tx.Write(
        "INSERT INTO group_members (group_id, user_id, role, joined_ms, join_order) SELECT $1, u, "
        "r::int2, j, o FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[]) AS v(u, r, j, "
        "o)",
        Params()
            .U64(id)
            .U64Array(joined_users)
            .U64Array(joined_roles)
            .U64Array(joined_ms)
            .U64Array(joined_orders));
    if (c.kind != Kind::kCreate) {
      // A re-added member is no longer a former one.
      tx.Write("DELETE FROM group_former WHERE group_id = $1 AND user_id = ANY($2::int8[])",
               Params().U64(id).U64Array(joined_users));
    }
  }

  const MailboxEvent event{.type = EventType::kGroup, .ts_ms = c.now_ms, .payload = c.payload};
  if (auto s = AppendSameEvent(tx, recipients, event, result.appended); !s) return Failed(s);
  if (!after->members.empty()) result.group = std::move(after);
  return result;
}

}  // namespace parley::store::pg
