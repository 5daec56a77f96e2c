// Groups: the group row, its members, its former members, and the
// membership a group send fans out to.
//
// The writer works on whole groups (GroupCache: earlier jobs of the batch
// included). A change is checked against the group as it stands, applied to
// a copy, and written as the difference between the members before and
// after, plus one kGroup row in the mailbox of everyone in either. Nothing
// is written unless every precondition holds.
//
// Former members: a user who leaves or is removed gets a group_former row,
// which goes again when the user is re-added. The rows stay when the group
// itself is deleted (its last member left), so that those users keep being
// told "not a member" rather than "not found" about a group they were in.
#include <rocksdb/snapshot.h>

#include <algorithm>
#include <span>
#include <utility>

#include "store/common/group_rules.hpp"
#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {
namespace {

using Kind = GroupChange::Kind;
using Outcome = GroupChangeResult::Outcome;

// Adds one group_members row to `group`.
Status AddMemberRow(Group& group, std::string_view key, std::string_view value) {
  auto ids = ParseU64PairKey(key);
  if (!ids || ids->first != group.id) return Fail(Errc::kCorruption, "malformed group member key");
  auto member = DecodeGroupMember(ids->second, value);
  if (!member) return std::unexpected(member.error());
  group.members.push_back(*member);
  return Ok();
}

// Rows come in user order; the contract (and auto-promotion) wants join order.
void SortByJoinOrder(Group& group) {
  std::sort(group.members.begin(), group.members.end(),
            [](const GroupMember& a, const GroupMember& b) { return a.join_order < b.join_order; });
}

template <class T>
std::unexpected<Error> Failed(const Result<T>& r) {
  return std::unexpected(r.error());
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<Group>> RocksStore::GetGroup(GroupId id) {
  ReadTimer timer(observer_, "get_group");
  if (auto cached = groups_.Committed(id)) return std::optional<Group>(*cached);
  // One snapshot for the row and its members.
  rocksdb::ManagedSnapshot snapshot(db_->db());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  auto value = ReadValue(ro, Cf::kGroups, IdKey(id));
  if (!value) return Failed(value);
  if (!*value) return std::optional<Group>();
  auto row = DecodeGroupRow(id, **value);
  if (!row) return Failed(row);
  Group& group = row->group;

  const auto prefix = IdKey(id);
  const std::string upper = PrefixUpperBound(prefix.view());
  const rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kGroupMembers)));
  for (it->Seek(prefix.view()); it->Valid() && it->key().starts_with(prefix.view()); it->Next()) {
    if (auto s = AddMemberRow(group, it->key().ToStringView(), it->value().ToStringView()); !s) {
      return std::unexpected(s.error());
    }
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "get_group"));
  SortByJoinOrder(group);
  return std::optional<Group>(std::move(group));
}

Result<bool> RocksStore::IsFormerMember(GroupId id, UserId user) {
  ReadTimer timer(observer_, "is_former_member");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kGroupFormer, Pair64Key(id, user));
  if (!value) return Failed(value);
  return value->has_value();
}

// ---- Writes --------------------------------------------------------------------

void RocksStore::ChangeGroup(GroupChange change, Callback<GroupChangeResult> done) {
  Submit<GroupChangeResult>(
      "change_group", std::move(done),
      [this, change = std::move(change)](WriteTxn& txn) { return ApplyChangeGroup(txn, change); });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<GroupState> RocksStore::TxnGroup(WriteTxn& txn, GroupId id) {
  if (auto known = groups_.Current(id)) return *known;
  // Not pending, so no job of this batch changed the group: what the batch
  // and the database hold is the committed group, which the cache may keep.
  auto value = txn.Get(cf(Cf::kGroups), IdKey(id));
  if (!value) return Failed(value);
  if (!*value) return GroupState{};
  auto row = DecodeGroupRow(id, **value);
  if (!row) return Failed(row);
  auto group = std::make_shared<Group>(std::move(row->group));
  Status decoded = Ok();
  auto s = txn.ScanPrefix(cf(Cf::kGroupMembers), IdKey(id).view(),
                          [&](std::string_view key, std::string_view member) {
                            decoded = AddMemberRow(*group, key, member);
                            return decoded.has_value();
                          });
  if (!s) return std::unexpected(s.error());
  if (!decoded) return std::unexpected(decoded.error());
  SortByJoinOrder(*group);
  GroupState state{.group = std::move(group), .next_join_order = row->next_join_order};
  groups_.Loaded(id, state);
  return state;
}

Result<bool> RocksStore::TxnIsFormer(WriteTxn& txn, GroupId id, UserId user) {
  auto value = txn.Get(cf(Cf::kGroupFormer), Pair64Key(id, user));
  if (!value) return Failed(value);
  return value->has_value();
}

Result<std::shared_ptr<const Group>> RocksStore::TxnGroupForSend(WriteTxn& txn, GroupId id,
                                                                 UserId sender) {
  auto state = TxnGroup(txn, id);
  if (!state) return Failed(state);
  if (state->group && FindMember(*state->group, sender) != nullptr) return state->group;
  auto former = TxnIsFormer(txn, id, sender);
  if (!former) return Failed(former);
  if (*former) return Fail(Errc::kConflict, "the sender is no longer a member of the group");
  return Fail(Errc::kNotFound, "no such group");
}

Result<GroupChangeResult> RocksStore::ApplyChangeGroup(WriteTxn& txn, const GroupChange& c) {
  auto current = TxnGroup(txn, c.group_id);
  if (!current) return Failed(current);
  const Group* before = current->group.get();
  auto plan = PlanGroupChange(c, before, current->next_join_order,
                              [&] { return TxnIsFormer(txn, c.group_id, c.actor); });
  if (!plan) return Failed(plan);
  GroupChangeResult result{.outcome = plan->outcome,
                           .changed = plan->changed,
                           .auto_promoted = std::move(plan->auto_promoted)};
  if (plan->outcome != Outcome::kOk || !plan->changed) {
    // Nothing to write (refusals and no-ops come before any write;
    // discarding anyway keeps it so if that changes).
    txn.Discard();
    if (plan->outcome == Outcome::kOk) result.group = current->group;
    return result;
  }
  std::shared_ptr<Group> after = std::move(plan->after);
  const std::uint64_t next = plan->next_join_order;
  if (plan->avatar_changed) {
    // A group avatar is readable by anyone signed in.
    if (auto s = GrantMedia(txn, *c.avatar_media_id, 0); !s) return std::unexpected(s.error());
  }

  std::shared_ptr<const Group> published;
  if (!after->members.empty()) published = std::move(after);
  if (auto s = WriteGroupChange(txn, c, before, published, next, result.appended); !s) {
    return std::unexpected(s.error());
  }
  groups_.Stage(c.group_id, GroupState{.group = published, .next_join_order = next});
  result.group = std::move(published);
  return result;
}

Status RocksStore::WriteGroupChange(WriteTxn& txn, const GroupChange& c, const Group* before,
                                    const std::shared_ptr<const Group>& after,
                                    std::uint64_t next_join_order,
                                    std::vector<Appended>& appended) {
  const GroupId id = c.group_id;
  if (c.kind == Kind::kCreate) {
    // Only a deleted group with the same id can have left these; they were
    // members of that one, not of this.
    std::vector<std::string> stale;
    auto s = txn.ScanPrefix(cf(Cf::kGroupFormer), IdKey(id).view(),
                            [&](std::string_view key, std::string_view) {
                              stale.emplace_back(key);
                              return true;
                            });
    if (!s) return s;
    for (const auto& key : stale) {
      if (auto d = txn.Delete(cf(Cf::kGroupFormer), key); !d) return d;
    }
  }

  if (!after) {
    if (auto s = txn.Delete(cf(Cf::kGroups), IdKey(id)); !s) return s;
  } else if (c.kind == Kind::kCreate || c.kind == Kind::kAdd || c.kind == Kind::kUpdate) {
    const GroupRow row{.group = Group{.id = id,
                                      .name = after->name,
                                      .avatar_media_id = after->avatar_media_id,
                                      .created_by = after->created_by,
                                      .created_ms = after->created_ms},
                       .next_join_order = next_join_order};
    if (auto s = txn.Put(cf(Cf::kGroups), IdKey(id), EncodeGroupRow(row)); !s) return s;
  }

  // Both lists are in join order and a join order is never reused, so one
  // merge pass pairs each member before with itself after.
  static const std::vector<GroupMember> kNone;
  const auto& old_members = before != nullptr ? before->members : kNone;
  const auto& new_members = after ? after->members : kNone;
  std::vector<UserId> recipients;
  recipients.reserve(old_members.size() + new_members.size());
  for (const auto& m : old_members) recipients.push_back(m.user);
  const std::string left = EncodeFormerMember(c.now_ms);
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < old_members.size() || j < new_members.size()) {
    const bool gone =
        j == new_members.size() ||
        (i < old_members.size() && old_members[i].join_order < new_members[j].join_order);
    const bool joined =
        !gone && (i == old_members.size() || new_members[j].join_order < old_members[i].join_order);
    if (gone) {
      const auto key = Pair64Key(id, old_members[i].user);
      if (auto s = txn.Delete(cf(Cf::kGroupMembers), key); !s) return s;
      if (auto s = txn.Put(cf(Cf::kGroupFormer), key, left); !s) return s;
      if (auto s = txn.Delete(cf(Cf::kUserGroups), Pair64Key(old_members[i].user, id)); !s) {
        return s;
      }
      ++i;
    } else if (joined) {
      const auto key = Pair64Key(id, new_members[j].user);
      if (auto s = txn.Put(cf(Cf::kGroupMembers), key, EncodeGroupMember(new_members[j])); !s) {
        return s;
      }
      if (auto s = txn.Put(cf(Cf::kUserGroups), Pair64Key(new_members[j].user, id), ""); !s) {
        return s;
      }
      if (c.kind != Kind::kCreate) {
        // A re-added member is no longer a former one.
        auto former = TxnIsFormer(txn, id, new_members[j].user);
        if (!former) return Failed(former);
        if (*former) {
          if (auto s = txn.Delete(cf(Cf::kGroupFormer), key); !s) return s;
        }
      }
      recipients.push_back(new_members[j].user);
      ++j;
    } else {
      if (old_members[i].role != new_members[j].role) {
        auto s = txn.Put(cf(Cf::kGroupMembers), Pair64Key(id, new_members[j].user),
                         EncodeGroupMember(new_members[j]));
        if (!s) return s;
      }
      ++i;
      ++j;
    }
  }

  const MailboxEvent event{.type = EventType::kGroup, .ts_ms = c.now_ms, .payload = c.payload};
  appended.reserve(recipients.size());
  for (UserId user : recipients) {
    if (auto seq = AppendEventRow(txn, user, event, appended); !seq) return Failed(seq);
  }
  return Ok();
}

}  // namespace parley::store::rocks
