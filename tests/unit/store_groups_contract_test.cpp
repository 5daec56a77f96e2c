// The groups part of the store contract (src/store/store.hpp: GetGroup,
// IsFormerMember, ChangeGroup, and AppendMessage to a group), run against
// every backend that instantiates StoreGroupsContractTest (see
// store_contract.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

using Kind = GroupChange::Kind;
using Outcome = GroupChangeResult::Outcome;

// Users without accounts: the store keeps groups and mailboxes for any id.
inline constexpr UserId kDave = 1004;
inline constexpr UserId kErin = 1005;

std::vector<UserId> Users(const Group& g) {
  std::vector<UserId> users;
  for (const auto& m : g.members) users.push_back(m.user);
  return users;
}
std::vector<UserId> Admins(const Group& g) {
  std::vector<UserId> users;
  for (const auto& m : g.members) {
    if (m.role == GroupRole::kAdmin) users.push_back(m.user);
  }
  return users;
}
const GroupMember& MemberOf(const Group& g, UserId user) {
  for (const auto& m : g.members) {
    if (m.user == user) return m;
  }
  static const GroupMember kNone;
  ADD_FAILURE() << user << " is not a member";
  return kNone;
}

Group Stored(Store& s, GroupId id = kGroupId) {
  auto g = s.GetGroup(id);
  EXPECT_TRUE(g.has_value()) << g.error().message;
  EXPECT_TRUE(g && g->has_value()) << "no group " << id;
  return g && *g ? **g : Group{};
}

// The outcome of a change that must not fail outright.
Outcome OutcomeOf(Store& s, GroupChange change) {
  auto r = ChangeGroup(s, std::move(change));
  EXPECT_TRUE(r.has_value()) << r.error().message;
  if (!r) return Outcome::kOk;
  if (r->outcome != Outcome::kOk) {
    EXPECT_TRUE(r->appended.empty());
    EXPECT_EQ(r->group, nullptr);
  }
  return r->outcome;
}

template <class T>
Errc ErrorOf(const Result<T>& r) {
  if (r) {
    ADD_FAILURE() << "expected a failure";
    return Errc::kInternal;
  }
  return r.error().code;
}

GroupChangeResult ChangeOk(Store& s, GroupChange change) {
  auto r = ChangeGroup(s, std::move(change));
  EXPECT_TRUE(r.has_value()) << r.error().message;
  if (!r) return {};
  EXPECT_EQ(r->outcome, Outcome::kOk);
  return *r;
}

Message GroupText(UserId from, const std::string& client_msg_id, GroupId id = kGroupId) {
  // The recipient count is the store's to set: this one is wrong on purpose.
  return Text(from, GroupConv(id), client_msg_id, /*recipients=*/99);
}

SendResult SendToGroup(Store& s, UserId from, const std::string& client_msg_id) {
  auto r = Send(s, GroupText(from, client_msg_id), {});
  EXPECT_TRUE(r.has_value()) << r.error().message;
  return r ? *r : SendResult{};
}

// The kGroup payloads in a mailbox, oldest first.
std::vector<std::string> GroupEvents(Store& s, UserId user) {
  std::vector<std::string> payloads;
  const auto rows = s.ReadMailbox(user, 0, 1000).value();  // a temporary would dangle in the loop
  for (const auto& e : rows) {
    if (e.type == EventType::kGroup) payloads.push_back(e.payload);
  }
  return payloads;
}

// ---- Create ------------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, UnknownGroupReadsAsNothing) {
  EXPECT_EQ(store().GetGroup(kGroupId).value(), std::nullopt);
  EXPECT_FALSE(store().IsFormerMember(kGroupId, kAlice).value());
}

TEST_P(StoreGroupsContractTest, CreateMakesTheActorAdminAndTheOthersMembersInJoinOrder) {
  auto change = Change(Kind::kCreate, kAlice, {kCarol, kBob, kCarol, kAlice});
  change.name = "weekend";
  change.payload = R"({"change":"created"})";
  auto r = ChangeOk(store(), change);
  EXPECT_TRUE(r.auto_promoted.empty());
  // Everyone in the group hears of it, the creator too.
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 1u}, {kCarol, 1u}, {kBob, 1u}}));
  for (UserId u : {kAlice, kBob, kCarol}) {
    auto rows = store().ReadMailbox(u, 0, 10).value();
    ASSERT_EQ(rows.size(), 1u) << u;
    EXPECT_EQ(rows[0].type, EventType::kGroup);
    EXPECT_EQ(rows[0].payload, R"({"change":"created"})");
    EXPECT_EQ(rows[0].ts_ms, kNow);
  }

  ASSERT_NE(r.group, nullptr);
  for (const Group& g : {*r.group, Stored(store())}) {
    EXPECT_EQ(g.id, kGroupId);
    EXPECT_EQ(g.name, "weekend");
    EXPECT_EQ(g.avatar_media_id, "");
    EXPECT_EQ(g.created_by, kAlice);
    EXPECT_EQ(g.created_ms, kNow);
    EXPECT_EQ(Users(g), (std::vector<UserId>{kAlice, kCarol, kBob}));
    EXPECT_EQ(Admins(g), std::vector<UserId>{kAlice});
    EXPECT_EQ(MemberOf(g, kBob).joined_ms, kNow);
    EXPECT_LT(MemberOf(g, kAlice).join_order, MemberOf(g, kCarol).join_order);
    EXPECT_LT(MemberOf(g, kCarol).join_order, MemberOf(g, kBob).join_order);
  }
  EXPECT_FALSE(store().IsFormerMember(kGroupId, kBob).value());

  // Survives a reopen unchanged.
  Reopen();
  const Group again = Stored(store());
  EXPECT_EQ(Users(again), (std::vector<UserId>{kAlice, kCarol, kBob}));
  EXPECT_EQ(Admins(again), std::vector<UserId>{kAlice});
  EXPECT_EQ(again.name, "weekend");
}

TEST_P(StoreGroupsContractTest, CreateWithoutANameOrOthers) {
  auto r = ChangeOk(store(), Change(Kind::kCreate, kAlice));
  ASSERT_NE(r.group, nullptr);
  EXPECT_EQ(r.group->name, "");
  EXPECT_EQ(Users(*r.group), std::vector<UserId>{kAlice});
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 1u}}));
}

TEST_P(StoreGroupsContractTest, CreatingAnExistingGroupIsInvalid) {
  CreateGroup(store(), kAlice, {kBob});
  EXPECT_EQ(ErrorOf(ChangeGroup(store(), Change(Kind::kCreate, kCarol, {kDave}))), Errc::kInvalid);
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 0u);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
}

TEST_P(StoreGroupsContractTest, AtMost256Members) {
  std::vector<UserId> others;
  for (UserId u = 5001; u <= 5256; ++u) others.push_back(u);  // 256 besides the creator
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kCreate, kAlice, others)), Outcome::kTooManyMembers);
  EXPECT_EQ(store().GetGroup(kGroupId).value(), std::nullopt);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 0u);
  EXPECT_EQ(store().HeadSeq(5001).value(), 0u);

  others.pop_back();
  auto r = ChangeOk(store(), Change(Kind::kCreate, kAlice, others));
  EXPECT_EQ(r.appended.size(), 256u);
  EXPECT_EQ(Stored(store()).members.size(), 256u);
  EXPECT_EQ(store().HeadSeq(5255).value(), 1u);
  // Full: one more is too many, and the refusal writes nothing.
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kAlice, {kBob})), Outcome::kTooManyMembers);
  EXPECT_EQ(Stored(store()).members.size(), 256u);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 0u);
  // Adding someone already in changes nothing, so it fits.
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kAlice, {5001})), Outcome::kOk);

  // The limit is the caller's.
  auto small = Change(Kind::kCreate, kAlice, {kBob, kCarol}, kGroupId + 1);
  small.max_members = 2;
  EXPECT_EQ(OutcomeOf(store(), small), Outcome::kTooManyMembers);
}

// ---- Add -----------------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, AddNeedsAnAdminAndAMember) {
  CreateGroup(store(), kAlice, {kBob});  // alice 1, bob 1
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kBob, {kCarol})), Outcome::kNotAdmin);
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kCarol, {kDave})), Outcome::kNotFound);
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kAlice, {kCarol}, kGroupId + 1)),
            Outcome::kNotFound);
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 0u);

  // Those already in are skipped; the added hear of it with everyone else.
  auto r = ChangeOk(store(), Change(Kind::kAdd, kAlice, {kBob, kCarol, kDave, kCarol}));
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 1u}, {kDave, 1u}}));
  const Group g = Stored(store());
  EXPECT_EQ(Users(g), (std::vector<UserId>{kAlice, kBob, kCarol, kDave}));
  EXPECT_EQ(Admins(g), std::vector<UserId>{kAlice});
  EXPECT_LT(MemberOf(g, kBob).join_order, MemberOf(g, kCarol).join_order);
  EXPECT_EQ(Users(*r.group), Users(g));
}

TEST_P(StoreGroupsContractTest, FormerMembersAreToldSoAndCanBeAddedBack) {
  CreateGroup(store(), kAlice, {kBob, kCarol});
  ChangeOk(store(), Change(Kind::kRemove, kAlice, {kCarol}));
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kCarol).value());
  for (Kind kind :
       {Kind::kAdd, Kind::kRemove, Kind::kPromote, Kind::kDemote, Kind::kUpdate, Kind::kLeave}) {
    EXPECT_EQ(OutcomeOf(store(), Change(kind, kCarol, {kCarol})), Outcome::kNotMember)
        << static_cast<int>(kind);
    EXPECT_EQ(OutcomeOf(store(), Change(kind, kDave, {kDave})), Outcome::kNotFound)
        << static_cast<int>(kind);
  }

  // Back in, as the newest member, and no longer a former one.
  auto r = ChangeOk(store(), Change(Kind::kAdd, kAlice, {kCarol}));
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 3u}, {kBob, 3u}, {kCarol, 3u}}));
  EXPECT_FALSE(store().IsFormerMember(kGroupId, kCarol).value());
  const Group g = Stored(store());
  EXPECT_EQ(Users(g), (std::vector<UserId>{kAlice, kBob, kCarol}));
  EXPECT_EQ(MemberOf(g, kCarol).role, GroupRole::kMember);
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kLeave, kCarol)), Outcome::kOk);
  Reopen();
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kCarol).value());
}

// ---- Remove --------------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, RemovedMembersHearOfItAndBecomeFormer) {
  CreateGroup(store(), kAlice, {kBob, kCarol});  // everyone 1
  auto r = ChangeOk(store(), Change(Kind::kRemove, kAlice, {kCarol, kDave}));
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 2u}}));
  EXPECT_EQ(store().HeadSeq(kDave).value(), 0u);
  EXPECT_EQ(GroupEvents(store(), kCarol).size(), 2u);
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_EQ(Users(*r.group), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kCarol).value());
  EXPECT_FALSE(store().IsFormerMember(kGroupId, kBob).value());
  EXPECT_FALSE(store().IsFormerMember(kGroupId, kDave).value());

  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kRemove, kBob, {kAlice})), Outcome::kNotAdmin);
  // Removing nobody in the group is no change, but still the change asked for.
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kRemove, kAlice, {kCarol})), Outcome::kOk);
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
}

TEST_P(StoreGroupsContractTest, AnAdminRemovingItselfLeaves) {
  CreateGroup(store(), kAlice, {kBob, kCarol});
  auto r = ChangeOk(store(), Change(Kind::kRemove, kAlice, {kAlice}));
  EXPECT_EQ(r.auto_promoted, std::vector<UserId>{kBob});
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 2u}}));
  const Group g = Stored(store());
  EXPECT_EQ(Users(g), (std::vector<UserId>{kBob, kCarol}));
  EXPECT_EQ(Admins(g), std::vector<UserId>{kBob});
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kAlice).value());
}

// ---- Promote, demote, update -----------------------------------------------------------

TEST_P(StoreGroupsContractTest, PromoteAndDemote) {
  CreateGroup(store(), kAlice, {kBob, kCarol});
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kPromote, kBob, {kBob})), Outcome::kNotAdmin);
  auto r = ChangeOk(store(), Change(Kind::kPromote, kAlice, {kBob}));
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 2u}}));
  EXPECT_EQ(Admins(Stored(store())), (std::vector<UserId>{kAlice, kBob}));

  // A new admin acts as one, on the first admin too.
  ChangeOk(store(), Change(Kind::kAdd, kBob, {kDave}));
  r = ChangeOk(store(), Change(Kind::kDemote, kBob, {kAlice}));
  EXPECT_TRUE(r.auto_promoted.empty());
  EXPECT_EQ(Admins(Stored(store())), std::vector<UserId>{kBob});
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kAlice, {kErin})), Outcome::kNotAdmin);

  // Someone not in the group: no change.
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kPromote, kBob, {kErin})), Outcome::kOk);
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kDemote, kBob, {kErin})), Outcome::kOk);
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob, kCarol, kDave}));
  EXPECT_EQ(Admins(Stored(store())), std::vector<UserId>{kBob});
}

TEST_P(StoreGroupsContractTest, TheLastAdminSteppingDownHandsOverToTheEarliestJoined) {
  CreateGroup(store(), kAlice, {kCarol, kBob});
  auto r = ChangeOk(store(), Change(Kind::kDemote, kAlice, {kAlice}));
  // Alice joined first, but she is the one who stepped down.
  EXPECT_EQ(r.auto_promoted, std::vector<UserId>{kCarol});
  ASSERT_NE(r.group, nullptr);
  EXPECT_EQ(Admins(*r.group), std::vector<UserId>{kCarol});
  EXPECT_EQ(Admins(Stored(store())), std::vector<UserId>{kCarol});

  // Alone in a group, stepping down changes nothing: the sole member is
  // promoted straight back, so nothing is written nor announced.
  CreateGroup(store(), kDave, {}, kGroupId + 1);
  const Seq head = store().HeadSeq(kDave).value();
  r = ChangeOk(store(), Change(Kind::kDemote, kDave, {kDave}, kGroupId + 1));
  EXPECT_FALSE(r.changed);
  EXPECT_TRUE(r.auto_promoted.empty());
  EXPECT_TRUE(r.appended.empty());
  EXPECT_EQ(store().HeadSeq(kDave).value(), head);
  EXPECT_EQ(Admins(Stored(store(), kGroupId + 1)), std::vector<UserId>{kDave});
}

// ---- Changes that change nothing ---------------------------------------------------------

TEST_P(StoreGroupsContractTest, AChangeThatChangesNothingWritesNothingAndIsNotAnnounced) {
  CreateGroup(store(), kAlice, {kBob, kCarol});  // everyone 1
  auto update = Change(Kind::kUpdate, kAlice);
  update.name = "team";
  update.avatar_media_id = "4242";
  auto first = ChangeOk(store(), update);
  EXPECT_TRUE(first.changed);
  EXPECT_EQ(Where(first.appended), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 2u}}));
  const Group before = Stored(store());

  std::vector<GroupChange> noops;
  noops.push_back(update);                                      // the same values again
  noops.push_back(Change(Kind::kUpdate, kAlice));               // nothing given
  noops.push_back(Change(Kind::kAdd, kAlice, {kBob, kCarol}));  // all already in
  noops.push_back(Change(Kind::kRemove, kAlice, {kDave}));      // nobody in the group
  noops.push_back(Change(Kind::kPromote, kAlice, {kAlice}));    // already admin
  noops.push_back(Change(Kind::kPromote, kAlice, {kErin}));     // not in the group
  noops.push_back(Change(Kind::kDemote, kAlice, {kBob}));       // already a member
  noops.push_back(Change(Kind::kDemote, kAlice, {kDave}));      // not in the group
  auto rename = Change(Kind::kUpdate, kAlice);
  rename.name = "team";
  noops.push_back(rename);  // only the name, equal
  for (std::size_t i = 0; i < noops.size(); ++i) {
    auto r = ChangeOk(store(), noops[i]);
    EXPECT_FALSE(r.changed) << i;
    EXPECT_TRUE(r.appended.empty()) << i;
    EXPECT_TRUE(r.auto_promoted.empty()) << i;
    ASSERT_NE(r.group, nullptr) << i;
    EXPECT_EQ(Users(*r.group), Users(before)) << i;
  }
  // Ten more in a row still change nothing.
  for (int i = 0; i < 10; ++i) {
    auto r = ChangeOk(store(), update);
    EXPECT_FALSE(r.changed);
  }
  for (UserId u : {kAlice, kBob, kCarol}) {
    EXPECT_EQ(store().HeadSeq(u).value(), 2u) << u;
    EXPECT_EQ(GroupEvents(store(), u).size(), 2u) << u;
  }
  EXPECT_EQ(store().HeadSeq(kDave).value(), 0u);
  EXPECT_EQ(store().HeadSeq(kErin).value(), 0u);
  Reopen();
  const Group after = Stored(store());
  EXPECT_EQ(after.name, "team");
  EXPECT_EQ(after.avatar_media_id, "4242");
  EXPECT_EQ(Users(after), Users(before));
  EXPECT_EQ(Admins(after), Admins(before));

  // A change that does change something is still written and announced.
  auto r = ChangeOk(store(), Change(Kind::kAdd, kAlice, {kBob, kDave}));
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 3u}, {kBob, 3u}, {kCarol, 3u}, {kDave, 1u}}));
  rename.name = "team 2";
  r = ChangeOk(store(), rename);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.appended.size(), 4u);
  EXPECT_EQ(Stored(store()).name, "team 2");
  // Leaving always changes something.
  r = ChangeOk(store(), Change(Kind::kLeave, kDave));
  EXPECT_TRUE(r.changed);
}

TEST_P(StoreGroupsContractTest, UpdateSetsWhatIsGiven) {
  CreateGroup(store(), kAlice, {kBob});
  auto update = Change(Kind::kUpdate, kBob);
  update.name = "nope";
  EXPECT_EQ(OutcomeOf(store(), update), Outcome::kNotAdmin);

  update = Change(Kind::kUpdate, kAlice);
  update.name = "renamed";
  update.avatar_media_id = "4242";
  auto r = ChangeOk(store(), update);
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 2u}, {kBob, 2u}}));
  update.avatar_media_id.reset();
  update.name = "again";
  ChangeOk(store(), update);
  Group g = Stored(store());
  EXPECT_EQ(g.name, "again");
  EXPECT_EQ(g.avatar_media_id, "4242");
  update.name.reset();
  update.avatar_media_id = "";
  ChangeOk(store(), update);
  Reopen();
  g = Stored(store());
  EXPECT_EQ(g.name, "again");
  EXPECT_EQ(g.avatar_media_id, "");
  EXPECT_EQ(g.created_by, kAlice);
  EXPECT_EQ(Users(g), (std::vector<UserId>{kAlice, kBob}));
}

// ---- Leave -------------------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, WhenTheLastAdminLeavesTheEarliestJoinedBecomesAdmin) {
  CreateGroup(store(), kAlice, {kCarol});
  ChangeOk(store(), Change(Kind::kAdd, kAlice, {kBob}));
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kLeave, kDave)), Outcome::kNotFound);

  auto r = ChangeOk(store(), Change(Kind::kLeave, kAlice));
  EXPECT_EQ(r.auto_promoted, std::vector<UserId>{kCarol});
  // The one who left hears of it too.
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 3u}, {kCarol, 3u}, {kBob, 2u}}));
  const Group g = Stored(store());
  EXPECT_EQ(Users(g), (std::vector<UserId>{kCarol, kBob}));
  EXPECT_EQ(Admins(g), std::vector<UserId>{kCarol});
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kAlice).value());
  EXPECT_EQ(OutcomeOf(store(), Change(Kind::kLeave, kAlice)), Outcome::kNotMember);

  // A member leaving while an admin stays promotes nobody.
  r = ChangeOk(store(), Change(Kind::kLeave, kBob));
  EXPECT_TRUE(r.auto_promoted.empty());
  EXPECT_EQ(Users(Stored(store())), std::vector<UserId>{kCarol});
}

TEST_P(StoreGroupsContractTest, AGroupWhoseLastMemberLeavesIsGone) {
  CreateGroup(store(), kAlice, {kBob});
  ChangeOk(store(), Change(Kind::kLeave, kBob));
  auto r = ChangeOk(store(), Change(Kind::kLeave, kAlice));
  EXPECT_EQ(r.group, nullptr);
  EXPECT_TRUE(r.auto_promoted.empty());
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 3u}}));
  EXPECT_EQ(store().GetGroup(kGroupId).value(), std::nullopt);

  // Those who were in it are still told "not a member", everyone else "not found".
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_TRUE(store().IsFormerMember(kGroupId, kAlice).value());
    EXPECT_TRUE(store().IsFormerMember(kGroupId, kBob).value());
    EXPECT_EQ(OutcomeOf(store(), Change(Kind::kLeave, kAlice)), Outcome::kNotMember);
    EXPECT_EQ(OutcomeOf(store(), Change(Kind::kAdd, kBob, {kCarol})), Outcome::kNotMember);
    EXPECT_EQ(OutcomeOf(store(), Change(Kind::kLeave, kCarol)), Outcome::kNotFound);
    EXPECT_EQ(ErrorOf(Send(store(), GroupText(kAlice, "late" + std::to_string(pass)), {})),
              Errc::kConflict);
    EXPECT_EQ(ErrorOf(Send(store(), GroupText(kCarol, "late" + std::to_string(pass)), {})),
              Errc::kNotFound);
    Reopen();
    EXPECT_EQ(store().GetGroup(kGroupId).value(), std::nullopt);
  }
}

// ---- Sending to a group ------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, GroupMessageFansOutToEveryMember) {
  SignUpCast(store());
  CreateGroup(store(), kAlice, {kBob, kCarol});  // everyone 1
  Message m = GroupText(kAlice, "g1");
  // `recipients` is ignored for a group: the store takes the members.
  auto r = Send(store(), m, {kDave}).value();
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(r.seq, 2u);
  EXPECT_EQ(Where(r.appended), (Rows{{kBob, 2u}, {kCarol, 2u}, {kAlice, 2u}}));
  EXPECT_EQ(store().HeadSeq(kDave).value(), 0u);
  for (UserId member : {kAlice, kBob, kCarol}) {
    auto rows = store().ReadMailbox(member, 1, 10).value();
    ASSERT_EQ(rows.size(), 1u) << member;
    EXPECT_EQ(rows[0].type, EventType::kMessage);
    EXPECT_EQ(rows[0].outgoing, member == kAlice);
    EXPECT_EQ(rows[0].conv, GroupConv(kGroupId));
    ASSERT_NE(rows[0].message, nullptr);
    EXPECT_EQ(rows[0].message->to, GroupConv(kGroupId));
    EXPECT_EQ(rows[0].message->recipients, 2u);
    EXPECT_EQ(Ids(store().History(member, GroupConv(kGroupId), 0, 10).value()),
              std::vector<MsgId>{m.msg_id})
        << member;
  }
  EXPECT_TRUE(store().History(kBob, UserConv(kAlice), 0, 10).value().empty());
  EXPECT_EQ(store().GetMessage(m.msg_id).value()->recipients, 2u);
  Reopen();  // from the database, not a cache
  EXPECT_EQ(store().GetMessage(m.msg_id).value()->recipients, 2u);
}

TEST_P(StoreGroupsContractTest, OnlyMembersSendAndARemovedMemberGetsNoLaterMessage) {
  SignUpCast(store());
  CreateGroup(store(), kAlice, {kBob, kCarol});                // everyone 1
  auto m1 = SendToGroup(store(), kCarol, "before");            // everyone 2
  ChangeOk(store(), Change(Kind::kRemove, kAlice, {kCarol}));  // everyone 3
  auto m2 = SendToGroup(store(), kBob, "after");               // alice 4, bob 4
  EXPECT_EQ(Where(m2.appended), (Rows{{kAlice, 4u}, {kBob, 4u}}));
  EXPECT_EQ(store().GetMessage(m2.msg_id).value()->recipients, 1u);
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 3u);

  // History: a member sees both, the removed member what it received.
  EXPECT_EQ(Ids(store().History(kBob, GroupConv(kGroupId), 0, 10).value()),
            (std::vector<MsgId>{m2.msg_id, m1.msg_id}));
  EXPECT_EQ(Ids(store().History(kCarol, GroupConv(kGroupId), 0, 10).value()),
            std::vector<MsgId>{m1.msg_id});

  // A former member is refused with kConflict, anyone else with kNotFound,
  // a retry of an earlier send included: membership comes before the
  // idempotency key.
  for (const char* cmid : {"new", "before"}) {
    EXPECT_EQ(ErrorOf(Send(store(), GroupText(kCarol, cmid), {})), Errc::kConflict) << cmid;
  }
  EXPECT_EQ(ErrorOf(Send(store(), GroupText(kDave, "x"), {})), Errc::kNotFound);
  EXPECT_EQ(ErrorOf(Send(store(), GroupText(kAlice, "x", kGroupId + 1), {})), Errc::kNotFound);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 4u);
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 3u);
  EXPECT_EQ(store().HeadSeq(kDave).value(), 0u);
}

TEST_P(StoreGroupsContractTest, DuplicateGroupSendAnswersTheFirst) {
  CreateGroup(store(), kAlice, {kBob});
  auto first = SendToGroup(store(), kBob, "once");
  auto again = Send(store(), GroupText(kBob, "once"), {}).value();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.msg_id, first.msg_id);
  EXPECT_EQ(again.seq, first.seq);
  EXPECT_TRUE(again.appended.empty());
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 2u);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 2u);
}

TEST_P(StoreGroupsContractTest, ReceiptsInAGroupComeFromEachMember) {
  SignUpCast(store());
  CreateGroup(store(), kAlice, {kBob, kCarol});  // everyone 1
  auto m = SendToGroup(store(), kAlice, "g");    // everyone 2
  auto bob = Ack(store(), kBob, kBobPhone, 2, kNow + 20).value();
  auto carol = Ack(store(), kCarol, kCarolPhone, 2, kNow + 10).value();
  EXPECT_EQ(Where(bob.appended), (Rows{{kAlice, 3u}}));
  EXPECT_EQ(Where(carol.appended), (Rows{{kAlice, 4u}}));
  auto rows = store().ReadMailbox(kAlice, 2, 10).value();
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_EQ(row.type, EventType::kReceipt);
    EXPECT_EQ(row.status, ReceiptStatus::kDelivered);
    EXPECT_EQ(row.conv, GroupConv(kGroupId));
    EXPECT_EQ(row.msg_ids, std::vector<MsgId>{m.msg_id});
  }
  EXPECT_EQ(rows[0].by, kBob);
  EXPECT_EQ(rows[1].by, kCarol);

  auto receipts = store().GetReceipts(m.msg_id).value();
  ASSERT_EQ(receipts.delivered.size(), 2u);
  EXPECT_EQ(receipts.delivered[0].user, kCarol);  // by time
  EXPECT_EQ(receipts.delivered[1].user, kBob);
  EXPECT_EQ(store().GetMessage(m.msg_id).value()->recipients, 2u);

  ASSERT_TRUE(MarkRead(store(), kBob, GroupConv(kGroupId), m.msg_id, kNow + 30));
  ASSERT_TRUE(MarkRead(store(), kCarol, GroupConv(kGroupId), m.msg_id, kNow + 30));
  receipts = store().GetReceipts(m.msg_id).value();
  ASSERT_EQ(receipts.read.size(), 2u);
  EXPECT_EQ(receipts.read[0].user, kBob);  // same time: lower user id first
  EXPECT_EQ(receipts.read[1].user, kCarol);
  rows = store().ReadMailbox(kAlice, 4, 10).value();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].status, ReceiptStatus::kRead);
  EXPECT_EQ(rows[0].conv, GroupConv(kGroupId));
}

// ---- Batches ---------------------------------------------------------------------------------

// Changes and sends queued together commit as one batch: each sees the ones
// before it, and refused or failed ones leave no trace, no gap in any seq.
TEST_P(StoreGroupsContractTest, ChangesAndSendsInOneBatchSeeEachOther) {
  SignUpCast(store());
  Pending<GroupChangeResult> create, not_admin, exists, remove, too_many;
  Pending<SendResult> s1, outsider, s2, s3;
  auto big = Change(Kind::kAdd, kAlice, {kDave, kErin});
  big.max_members = 3;
  Message m1 = GroupText(kAlice, "m1");
  Message m2 = GroupText(kBob, "m2");
  Message m3 = GroupText(kCarol, "m3");
  {
    WriterHold hold(store());
    store().ChangeGroup(Change(Kind::kCreate, kAlice, {kBob, kCarol}), create.callback());
    store().AppendMessage(m1, {}, s1.callback());
    store().ChangeGroup(Change(Kind::kAdd, kBob, {kDave}), not_admin.callback());
    store().AppendMessage(GroupText(kDave, "no"), {}, outsider.callback());
    store().ChangeGroup(Change(Kind::kCreate, kBob), exists.callback());
    store().ChangeGroup(std::move(big), too_many.callback());
    store().AppendMessage(m2, {}, s2.callback());
    store().ChangeGroup(Change(Kind::kRemove, kAlice, {kCarol}), remove.callback());
    store().AppendMessage(m3, {}, s3.callback());
    EXPECT_EQ(store().GetGroup(kGroupId).value(), std::nullopt);  // nothing committed yet
  }
  EXPECT_EQ(Where(create.Get().value().appended), (Rows{{kAlice, 1u}, {kBob, 1u}, {kCarol, 1u}}));
  EXPECT_EQ(Where(s1.Get().value().appended), (Rows{{kBob, 2u}, {kCarol, 2u}, {kAlice, 2u}}));
  EXPECT_EQ(not_admin.Get().value().outcome, Outcome::kNotAdmin);
  EXPECT_EQ(ErrorOf(outsider.Get()), Errc::kNotFound);
  EXPECT_EQ(ErrorOf(exists.Get()), Errc::kInvalid);
  EXPECT_EQ(too_many.Get().value().outcome, Outcome::kTooManyMembers);
  EXPECT_EQ(Where(s2.Get().value().appended), (Rows{{kAlice, 3u}, {kCarol, 3u}, {kBob, 3u}}));
  EXPECT_EQ(Where(remove.Get().value().appended), (Rows{{kAlice, 4u}, {kBob, 4u}, {kCarol, 4u}}));
  EXPECT_EQ(ErrorOf(s3.Get()), Errc::kConflict);

  for (UserId u : {kAlice, kBob, kCarol}) {
    EXPECT_EQ(Seqs(store().ReadMailbox(u, 0, 10).value()), (std::vector<Seq>{1, 2, 3, 4})) << u;
  }
  EXPECT_EQ(store().HeadSeq(kDave).value(), 0u);
  EXPECT_EQ(store().HeadSeq(kErin).value(), 0u);
  const Group g = Stored(store());
  EXPECT_EQ(Users(g), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_EQ(Admins(g), std::vector<UserId>{kAlice});
  EXPECT_EQ(store().GetMessage(m2.msg_id).value()->recipients, 2u);
  EXPECT_EQ(store().GetMessage(m3.msg_id).value(), std::nullopt);

  // What the batch left is what the next one starts from.
  auto after = SendToGroup(store(), kBob, "next");
  EXPECT_EQ(Where(after.appended), (Rows{{kAlice, 5u}, {kBob, 5u}}));
  Reopen();
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
}

// ---- Retention ---------------------------------------------------------------------------------

TEST_P(StoreGroupsContractTest, PurgeKeepsGroups) {
  auto old = Change(Kind::kCreate, kAlice, {kBob, kCarol}, kGroupId, kNow - 10 * kDay);
  ChangeOk(store(), old);
  ChangeOk(store(), Change(Kind::kLeave, kCarol, {}, kGroupId, kNow - 9 * kDay));
  while (Purge(store(), kNow, 100).value() == 100) {
  }
  EXPECT_EQ(store().HeadSeq(kBob).value(), 2u);
  EXPECT_TRUE(store().ReadMailbox(kBob, 0, 10).value().empty());  // the events went
  EXPECT_EQ(Users(Stored(store())), (std::vector<UserId>{kAlice, kBob}));
  EXPECT_TRUE(store().IsFormerMember(kGroupId, kCarol).value());
  EXPECT_EQ(SendToGroup(store(), kBob, "still").seq, 3u);
}

}  // namespace
}  // namespace parley::store::testing
