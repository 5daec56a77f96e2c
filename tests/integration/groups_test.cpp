// Group chats over real sockets (PROTOCOL.md section 4): membership and
// roles, the group events, fan-out on write, per-member receipts, typing,
// and the access rules (not_found for outsiders, not_member for former
// members).
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class GroupsTest : public SharedParleydTest<GroupsTest> {
 protected:
  struct Member {
    Account account;
    std::unique_ptr<WsClient> ws;
  };
  // n signed-up, connected users.
  static std::vector<Member> Users(int n) {
    std::vector<Member> out(n);
    for (auto& m : out) {
      m.account = SignIn(*server_, NextPhone());
      m.ws = Connect(*server_, m.account);
    }
    return out;
  }
  static json::array Ids(const std::vector<Member>& ms, std::size_t from = 0) {
    json::array a;
    for (std::size_t i = from; i < ms.size(); ++i) a.push_back(json::value(ms[i].account.user_id));
    return a;
  }
  static std::string Create(Member& creator, const json::array& members,
                            const std::string& name = "g") {
    auto r = creator.ws->Request({{"op", "group.create"}, {"name", name}, {"members", members}});
    EXPECT_TRUE(r);
    if (!r) return "";
    EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
    return Str(*r, "group_id");
  }
  static std::optional<json::object> SendToGroup(WsClient& ws, const std::string& group,
                                                 const std::string& text) {
    return ws.Request({{"op", "send"},
                       {"to", {{"group", group}}},
                       {"client_msg_id", NextClientMsgId()},
                       {"kind", "text"},
                       {"body", {{"text", text}}}});
  }
};

TEST_F(GroupsTest, CreateAnnouncesToEveryMemberAndInfoShowsRoles) {
  auto u = Users(3);
  const std::string g = Create(u[0], Ids(u, 1), "family");
  for (auto& m : u) {
    auto e = NextEventOfType(*m.ws, "group");
    ASSERT_TRUE(e);
    const auto& ev = EventOf(*e);
    EXPECT_EQ(Str(ev, "group_id"), g);
    EXPECT_EQ(Str(ev, "change"), "created");
    EXPECT_EQ(Str(ev, "by"), u[0].account.user_id);
    EXPECT_EQ(Str(ev, "name"), "family");
    EXPECT_EQ(ev.at("users").as_array().size(), 3u);
  }
  auto r = u[1].ws->Request({{"op", "group.info"}, {"group_id", g}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "name"), "family");
  EXPECT_TRUE((*r)["created_ms"].is_int64());
  auto& members = (*r)["members"].as_array();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].at("user"), u[0].account.user_id);
  EXPECT_EQ(members[0].at("role"), "admin");
  EXPECT_EQ(members[1].at("role"), "member");
}

TEST_F(GroupsTest, MessagesFanOutToEveryMemberAndTheSendersOtherDevices) {
  auto u = Users(3);
  Account a2 = SignIn(*server_, u[0].account.phone, "second");
  auto wa2 = Connect(*server_, a2);
  const std::string g = Create(u[0], Ids(u, 1));
  auto ok = SendToGroup(*u[0].ws, g, "hi all");
  ASSERT_EQ(Str(*ok, "op"), "ok") << json::serialize(*ok);
  for (auto* ws : {u[1].ws.get(), u[2].ws.get()}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    EXPECT_EQ(EventOf(*e).at("conv"), json::value(json::object{{"group", g}}));
    EXPECT_EQ(EventOf(*e).at("outgoing"), false);
    EXPECT_EQ(EventOf(*e).at("from").at("user"), u[0].account.user_id);
  }
  auto own = NextEventOfType(*wa2, "message");
  ASSERT_TRUE(own);
  EXPECT_EQ(EventOf(*own).at("outgoing"), true);
  EXPECT_EQ(EventOf(*own).at("conv"), json::value(json::object{{"group", g}}));
}

TEST_F(GroupsTest, OnlyAdminsChangeTheGroup) {
  auto u = Users(3);
  const std::string g = Create(u[0], Ids(u, 1));
  Account d = SignIn(*server_, NextPhone());
  for (json::object op :
       {json::object{{"op", "group.add"}, {"users", json::array{json::value(d.user_id)}}},
        json::object{{"op", "group.remove"},
                     {"users", json::array{json::value(u[2].account.user_id)}}},
        json::object{{"op", "group.promote"}, {"user", u[2].account.user_id}},
        json::object{{"op", "group.demote"}, {"user", u[0].account.user_id}},
        json::object{{"op", "group.update"}, {"name", "mine now"}}}) {
    op["group_id"] = g;
    auto r = u[1].ws->Request(op);
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "code"), "not_admin") << json::serialize(op);
  }
  // Promoted, the member may; demoted again, it may not.
  EXPECT_EQ(Str(*u[0].ws->Request(
                    {{"op", "group.promote"}, {"group_id", g}, {"user", u[1].account.user_id}}),
                "op"),
            "ok");
  auto r = u[1].ws->Request({{"op", "group.update"}, {"group_id", g}, {"name", "renamed"}});
  EXPECT_EQ(Str(*r, "op"), "ok");
  auto e = NextEventOfType(*u[2].ws, "group");  // created
  e = NextEventOfType(*u[2].ws, "group");       // promoted
  ASSERT_TRUE(e);
  EXPECT_EQ(Str(EventOf(*e), "change"), "promoted");
  e = NextEventOfType(*u[2].ws, "group");
  ASSERT_TRUE(e);
  EXPECT_EQ(Str(EventOf(*e), "change"), "updated");
  EXPECT_EQ(Str(EventOf(*e), "name"), "renamed");
  EXPECT_EQ(Str(*u[0].ws->Request(
                    {{"op", "group.demote"}, {"group_id", g}, {"user", u[1].account.user_id}}),
                "op"),
            "ok");
  r = u[1].ws->Request({{"op", "group.update"}, {"group_id", g}, {"name", "again"}});
  EXPECT_EQ(Str(*r, "code"), "not_admin");
}

TEST_F(GroupsTest, OutsidersCannotTellAGroupExists) {
  auto u = Users(2);
  const std::string g = Create(u[0], Ids(u, 1));
  auto outsider = Users(1);
  WsClient& ws = *outsider[0].ws;
  for (const std::string& id : {g, std::string("4242424242")}) {
    std::vector<json::object> ops = {
        {{"op", "group.info"}, {"group_id", id}},
        {{"op", "group.add"},
         {"group_id", id},
         {"users", json::array{json::value(outsider[0].account.user_id)}}},
        {{"op", "group.leave"}, {"group_id", id}},
        {{"op", "group.update"}, {"group_id", id}, {"name", "x"}},
        {{"op", "history"}, {"conv", {{"group", id}}}, {"limit", 10}},
        {{"op", "send"},
         {"to", {{"group", id}}},
         {"client_msg_id", NextClientMsgId()},
         {"kind", "text"},
         {"body", "x"}},
    };
    for (auto& op : ops) {
      auto r = ws.Request(op);
      ASSERT_TRUE(r);
      EXPECT_EQ(Str(*r, "code"), "not_found") << id << " " << json::serialize(op);
    }
  }
}

TEST_F(GroupsTest, ARemovedMemberHearsOfItAndNothingAfter) {
  auto u = Users(3);
  const std::string g = Create(u[0], Ids(u, 1));
  const std::string before = Str(*SendToGroup(*u[0].ws, g, "before"), "msg_id");
  auto r = u[0].ws->Request({{"op", "group.remove"},
                             {"group_id", g},
                             {"users", json::array{json::value(u[2].account.user_id)}}});
  ASSERT_EQ(Str(*r, "op"), "ok");
  // The removed member gets the removal event.
  std::optional<json::object> removal;
  while (auto e = NextEventOfType(*u[2].ws, "group")) {
    if (Str(EventOf(*e), "change") == "removed") {
      removal = e;
      break;
    }
  }
  ASSERT_TRUE(removal);
  EXPECT_EQ(EventOf(*removal).at("users"),
            json::value(json::array{json::value(u[2].account.user_id)}));
  SendToGroup(*u[0].ws, g, "after");
  ASSERT_TRUE(NextEventOfType(*u[1].ws, "message"));
  ASSERT_TRUE(NextEventOfType(*u[1].ws, "message"));
  // u[2] saw "before" only.
  auto first = NextEventOfType(*u[2].ws, "message", 300ms);
  EXPECT_FALSE(first) << "a removed member got a message";
  EXPECT_EQ(Str(*SendToGroup(*u[2].ws, g, "let me in"), "code"), "not_member");
  EXPECT_EQ(Str(*u[2].ws->Request({{"op", "group.info"}, {"group_id", g}}), "code"), "not_member");
  auto h = u[2].ws->Request({{"op", "history"}, {"conv", {{"group", g}}}, {"limit", 10}});
  ASSERT_EQ(Str(*h, "op"), "ok");
  ASSERT_EQ((*h)["messages"].as_array().size(), 1u);
  EXPECT_EQ((*h)["messages"].as_array()[0].at("msg_id"), before);
}

TEST_F(GroupsTest, WhenTheLastAdminLeavesTheEarliestMemberBecomesAdmin) {
  auto u = Users(3);
  const std::string g = Create(u[0], Ids(u, 1));
  ASSERT_EQ(Str(*u[0].ws->Request({{"op", "group.leave"}, {"group_id", g}}), "op"), "ok");
  auto info = u[2].ws->Request({{"op", "group.info"}, {"group_id", g}});
  auto& members = (*info)["members"].as_array();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].at("user"), u[1].account.user_id);
  EXPECT_EQ(members[0].at("role"), "admin");
  std::vector<std::string> changes;
  while (auto e = NextEventOfType(*u[2].ws, "group", 500ms))
    changes.push_back(Str(EventOf(*e), "change"));
  EXPECT_EQ(changes, (std::vector<std::string>{"created", "left", "promoted"}));
  EXPECT_EQ(Str(*u[0].ws->Request({{"op", "group.leave"}, {"group_id", g}}), "code"), "not_member");
}

TEST_F(GroupsTest, ReceiptsAreCountedPerMemberWithSomeOffline) {
  auto u = Users(4);
  const std::string g = Create(u[0], Ids(u, 1));
  u[3].ws.reset();  // offline
  const std::string id = Str(*SendToGroup(*u[0].ws, g, "count me"), "msg_id");
  for (int i : {1, 2}) {
    auto e = NextEventOfType(*u[i].ws, "message");
    ASSERT_TRUE(e);
    Ack(*u[i].ws, SeqOf(*e));
  }
  auto rr = u[2].ws->Request({{"op", "read"}, {"conv", {{"group", g}}}, {"up_to_msg_id", id}});
  ASSERT_EQ(Str(*rr, "op"), "ok") << json::serialize(*rr);
  // The sender's mailbox gets the receipts (one per member here).
  int delivered = 0, read = 0;
  while (auto e = NextEventOfType(*u[0].ws, "receipt", 1s)) {
    const auto& ev = EventOf(*e);
    EXPECT_EQ(ev.at("conv"), json::value(json::object{{"group", g}}));
    if (Str(ev, "status") == "delivered") ++delivered;
    if (Str(ev, "status") == "read") ++read;
    if (delivered == 2 && read == 1) break;
  }
  EXPECT_EQ(delivered, 2);
  EXPECT_EQ(read, 1);
  auto r = u[0].ws->Request({{"op", "receipts"}, {"msg_id", id}});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["members"], 3);
  EXPECT_EQ((*r)["delivered"].as_array().size(), 2u);
  EXPECT_EQ((*r)["read"].as_array().size(), 1u);
}

TEST_F(GroupsTest, TypingReachesOnlineMembersOnly) {
  auto u = Users(3);
  const std::string g = Create(u[0], Ids(u, 1));
  u[1].ws->SendJson({{"op", "typing"}, {"to", {{"group", g}}}, {"state", "composing"}});
  for (int i : {0, 2}) {
    auto t = u[i].ws->ReceiveOp("typing");
    ASSERT_TRUE(t);
    EXPECT_EQ((*t)["conv"], json::value(json::object{{"group", g}}));
    EXPECT_EQ((*t)["from"].at("user"), u[1].account.user_id);
  }
  EXPECT_FALSE(u[1].ws->ReceiveOp("typing", 200ms));
}

TEST_F(GroupsTest, AFullGroupOf256EveryMemberOnlineGetsTheMessageAndThe257thIsRefused) {
  auto u = Users(256);
  json::array too_many = Ids(u, 1);
  Account extra = SignIn(*server_, NextPhone());
  too_many.push_back(json::value(extra.user_id));
  auto r = u[0].ws->Request({{"op", "group.create"}, {"name", "big"}, {"members", too_many}});
  EXPECT_EQ(Str(*r, "code"), "too_many_members");

  const std::string g = Create(u[0], Ids(u, 1), "big");
  r = u[0].ws->Request(
      {{"op", "group.add"}, {"group_id", g}, {"users", json::array{json::value(extra.user_id)}}});
  EXPECT_EQ(Str(*r, "code"), "too_many_members");

  const std::string id = Str(*SendToGroup(*u[0].ws, g, "to everyone"), "msg_id");
  for (std::size_t i = 1; i < u.size(); ++i) {
    auto e = NextEventOfType(*u[i].ws, "message");
    ASSERT_TRUE(e) << "member " << i;
    EXPECT_EQ(Str(EventOf(*e), "msg_id"), id);
  }
  auto rec = u[0].ws->Request({{"op", "receipts"}, {"msg_id", id}});
  EXPECT_EQ((*rec)["members"], 255);
}

TEST_F(GroupsTest, BadGroupRequests) {
  auto u = Users(2);
  const std::string g = Create(u[0], Ids(u, 1));
  WsClient& ws = *u[0].ws;
  EXPECT_EQ(Str(*ws.Request({{"op", "group.create"}, {"members", json::array{}}}), "code"),
            "bad_request");
  EXPECT_EQ(Str(*ws.Request({{"op", "group.create"}, {"name", "x"}, {"members", "all"}}), "code"),
            "bad_request");
  EXPECT_EQ(Str(*ws.Request({{"op", "group.create"},
                             {"name", "x"},
                             {"members", json::array{json::value("999999")}}}),
                "code"),
            "not_found");
  EXPECT_EQ(Str(*ws.Request({{"op", "group.info"}}), "code"), "bad_request");
  EXPECT_EQ(Str(*ws.Request(
                    {{"op", "group.add"}, {"group_id", g}, {"users", json::array{json::value(7)}}}),
                "code"),
            "bad_request");
  EXPECT_EQ(Str(*ws.Request({{"op", "group.promote"}, {"group_id", g}}), "code"), "bad_request");
}

}  // namespace
}  // namespace parley::test
