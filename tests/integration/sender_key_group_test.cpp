// Group messages under Sender Keys (extension, docs/protocol.md): kind
// "e2ee" to a group with {"sender_device","group":{"data"}}. The server
// checks the shape, not a device set, and every member device gets the body
// unchanged; bad shapes answer bad_request and the connection survives.
#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class SenderKeyGroupTest : public SharedParleydTest<SenderKeyGroupTest> {
 protected:
};

json::object GroupSend(const json::object& to, json::value body) {
  return {{"op", "send"},
          {"to", to},
          {"client_msg_id", NextClientMsgId()},
          {"kind", "e2ee"},
          {"body", std::move(body)}};
}

TEST_F(SenderKeyGroupTest, TheGroupShapeReachesEveryMemberDeviceUnchanged) {
  const std::string phone_b = NextPhone();
  Account a = SignIn(*server_, NextPhone()), b1 = SignIn(*server_, phone_b),
          b2 = SignIn(*server_, phone_b), c = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a), wb1 = Connect(*server_, b1), wb2 = Connect(*server_, b2),
       wc = Connect(*server_, c);
  ASSERT_TRUE(wa && wb1 && wb2 && wc);
  auto g =
      wa->Request({{"op", "group.create"}, {"name", "sk"}, {"members", json::array{b1.user_id}}});
  ASSERT_TRUE(g);
  ASSERT_EQ(Str(*g, "op"), "ok") << json::serialize(*g);
  const json::object to{{"group", Str(*g, "group_id")}};
  const json::object body{{"sender_device", a.device_id},
                          {"group", json::object{{"data", "c2VuZGVyLWtleSBjaXBoZXJ0ZXh0"}}}};
  auto sent = wa->Request(GroupSend(to, body));
  ASSERT_TRUE(sent);
  ASSERT_EQ(Str(*sent, "op"), "ok") << json::serialize(*sent);
  for (auto* ws : {wb1.get(), wb2.get()}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    EXPECT_EQ(Str(EventOf(*e), "kind"), "e2ee");
    EXPECT_EQ(EventOf(*e).at("body"), json::value(body));
  }

  // Bad shapes: bad_request naming the field.
  const std::vector<std::pair<json::object, std::string>> bad = {
      {{{"sender_device", a.device_id}, {"group", json::object{}}}, "body.group.data"},
      {{{"sender_device", a.device_id}, {"group", json::object{{"data", "not base64!"}}}},
       "body.group.data"},
      {{{"sender_device", a.device_id}, {"group", json::object{{"data", ""}}}}, "body.group.data"},
      {{{"sender_device", a.device_id}, {"group", "x"}}, "body.group"},
      {{{"sender_device", a.device_id}, {"group", json::object{{"data", "QUJD"}, {"more", 1}}}},
       "body.group.more"},
      {{{"sender_device", b1.device_id}, {"group", json::object{{"data", "QUJD"}}}},
       "body.sender_device"},
      {{{"group", json::object{{"data", "QUJD"}}}}, "body.sender_device"},
      {{{"sender_device", a.device_id},
        {"group", json::object{{"data", "QUJD"}}},
        {"ciphertexts", json::array{}}},
       "body.ciphertexts"},
  };
  for (const auto& [b, field] : bad) {
    auto r = wa->Request(GroupSend(to, b));
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "code"), "bad_request") << json::serialize(b);
    EXPECT_TRUE(Str(*r, "message").starts_with(field)) << json::serialize(*r);
  }
  // Only for groups.
  auto to_user = wa->Request(GroupSend(ToUser(b1.user_id), body));
  ASSERT_TRUE(to_user);
  EXPECT_EQ(Str(*to_user, "code"), "bad_request");
  EXPECT_TRUE(Str(*to_user, "message").starts_with("body.group")) << json::serialize(*to_user);
  // An outsider's group send is not_found, as for any kind.
  json::object cbody = body;
  cbody["sender_device"] = c.device_id;
  auto outsider = wc->Request(GroupSend(to, cbody));
  ASSERT_TRUE(outsider);
  EXPECT_EQ(Str(*outsider, "code"), "not_found") << json::serialize(*outsider);
  // The connection survived all that.
  auto again = wa->Request(GroupSend(to, body));
  ASSERT_TRUE(again);
  EXPECT_EQ(Str(*again, "op"), "ok");
}

}  // namespace
}  // namespace parley::test
