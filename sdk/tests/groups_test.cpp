// Groups through the SDK against a real parleyd: create, info, messages to
// every member's devices, membership changes and their events.
#include "sdk_helpers.hpp"

namespace parley::sdk::testing {
namespace {

class GroupsTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
};

TEST_F(GroupsTest, CreateMessageAndChangeMembership) {
  const std::string pa = NextPhone(), pb = NextPhone(), pc = NextPhone();
  auto a = Login(pa, "ga");
  auto b1 = Login(pb, "gb1");
  auto b2 = Login(pb, "gb2");
  auto c = Login(pc, "gc");
  ASSERT_TRUE(a && b1 && b2 && c);
  for (auto* x : {a.get(), b1.get(), b2.get(), c.get()}) ASSERT_TRUE(StartSynced(*x));
  const std::string au = a->account()->user_id, bu = b1->account()->user_id,
                    cu = c->account()->user_id;

  auto gid = a->CreateGroup("friends", {bu, cu}).get();
  ASSERT_TRUE(gid) << gid.error().ToString();
  auto info = b1->GetGroup(*gid).get();
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->name, "friends");
  ASSERT_EQ(info->members.size(), 3u);
  for (const auto& m : info->members) EXPECT_EQ(m.role, m.user == au ? "admin" : "member");

  for (auto* x : {b1.get(), b2.get(), c.get()}) {
    auto created = WaitFor<GroupEvent>(*x);
    ASSERT_TRUE(created);
    EXPECT_EQ(created->group_id, *gid);
    EXPECT_EQ(created->change, "created");
    EXPECT_EQ(created->by, au);
  }

  auto sent = b1->SendText(Conv::Group(*gid), "hi all").get();
  ASSERT_TRUE(sent) << sent.error().ToString();
  for (auto* x : {a.get(), c.get(), b2.get()}) {
    auto m = WaitFor<MessageEvent>(*x);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->message.conv, Conv::Group(*gid));
    EXPECT_EQ(m->message.text, "hi all");
    EXPECT_EQ(m->message.from.user, bu);
  }
  auto delivered = WaitFor<MessageStatusEvent>(*b1, [&](const MessageStatusEvent& s) {
    return s.msg_id == sent->msg_id && s.status == MessageStatus::kDelivered;
  });
  ASSERT_TRUE(delivered);

  // Only admins change membership.
  auto refused = c->RemoveMembers(*gid, {bu}).get();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "not_admin");
  ASSERT_TRUE(a->Promote(*gid, cu).get());
  ASSERT_TRUE(c->RemoveMembers(*gid, {bu}).get());
  auto removed =
      WaitFor<GroupEvent>(*b2, [](const GroupEvent& e) { return e.change == "removed"; });
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->users, std::vector<std::string>{bu});
  auto late = b1->SendText(Conv::Group(*gid), "still here?").get();
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, "not_member");

  ASSERT_TRUE(a->UpdateGroup(*gid, "best friends").get());
  auto renamed = WaitFor<GroupEvent>(*c, [](const GroupEvent& e) { return e.change == "updated"; });
  ASSERT_TRUE(renamed);
  EXPECT_EQ(renamed->name, "best friends");
  ASSERT_TRUE(a->AddMembers(*gid, {bu}).get());
  ASSERT_TRUE(c->Demote(*gid, cu).get());
  ASSERT_TRUE(c->LeaveGroup(*gid).get());
  auto after = a->GetGroup(*gid).get();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->name, "best friends");
  EXPECT_EQ(after->members.size(), 2u);

  auto history = b2->History(Conv::Group(*gid)).get();
  ASSERT_TRUE(history) << history.error().ToString();
  ASSERT_FALSE(history->messages.empty());
  EXPECT_EQ(history->messages.back().text, "hi all");
}

TEST_F(GroupsTest, StrangersCannotSeeAGroup) {
  auto a = Login(NextPhone(), "sa");
  auto s = Login(NextPhone(), "ss");
  ASSERT_TRUE(a && s);
  a->Start();
  s->Start();
  auto gid = a->CreateGroup("private", {}).get();
  ASSERT_TRUE(gid) << gid.error().ToString();
  auto r = s->GetGroup(*gid).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "not_found");
  auto send = s->SendText(Conv::Group(*gid), "let me in").get();
  ASSERT_FALSE(send);
  EXPECT_EQ(send.error().code, "not_found");
}

}  // namespace
}  // namespace parley::sdk::testing
