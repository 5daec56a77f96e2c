// The WebSocket session over real sockets (PROTOCOL.md sections 2, 4 and 5).
#include <sodium.h>

#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class WsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        new Parleyd(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone",
                                              "0", "--contacts-per-day", "1200"}});
    ASSERT_TRUE(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override { EXPECT_EQ(Http(server_->endpoint(), "GET", "/health").status, 200); }
  static Parleyd* server_;
};
Parleyd* WsTest::server_ = nullptr;

std::string Sha256Hex(const std::string& s) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  char hex[2 * sizeof out + 1];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

// Closes with `code` after answering hello with `error_code`.
void ExpectHelloRefused(Parleyd& server, const std::string& token, const std::string& error_code,
                        std::uint16_t close_code) {
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "hello"}, {"token", token}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "error");
  EXPECT_EQ(Str(*r, "code"), error_code);
  EXPECT_EQ(ws->WaitClosed(), close_code);
  auto bye = ws->ReceiveOp("bye", 100ms);
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["code"], close_code);
}

TEST_F(WsTest, HelloAnswersTheIdentity) {
  Account a = SignIn(*server_, NextPhone());
  json::object hello;
  auto ws = Connect(*server_, a, &hello);
  ASSERT_TRUE(ws);
  EXPECT_EQ(Str(hello, "user_id"), a.user_id);
  EXPECT_EQ(Str(hello, "device_id"), a.device_id);
  EXPECT_TRUE(hello["head_seq"].is_string());
  ASSERT_TRUE(hello["server_time_ms"].is_int64());
  EXPECT_GT(hello["server_time_ms"].as_int64(), 1700000000000);
}

TEST_F(WsTest, AuthorizationHeaderOnTheUpgradeReplacesTheToken) {
  Account a = SignIn(*server_, NextPhone());
  auto ws = WsClient::Connect(server_->endpoint(), "/v1/ws",
                              {{"Authorization", "Bearer " + a.access_token}});
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "hello"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok");
  EXPECT_EQ(Str(*r, "user_id"), a.user_id);
}

TEST_F(WsTest, ForgedAndMalformedTokensAreRefusedWith4401) {
  Account a = SignIn(*server_, NextPhone());
  std::string forged = a.access_token;
  forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
  ExpectHelloRefused(*server_, forged, "invalid_token", 4401);
  ExpectHelloRefused(*server_, "not.a.jwt", "invalid_token", 4401);
  // alg "none" with the same claims.
  const std::string payload = a.access_token.substr(
      a.access_token.find('.') + 1, a.access_token.rfind('.') - a.access_token.find('.') - 1);
  ExpectHelloRefused(*server_, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
                     "invalid_token", 4401);
  // No token at all.
  auto ws = WsClient::Connect(server_->endpoint());
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "hello"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "code"), "invalid_token");
  EXPECT_EQ(ws->WaitClosed(), 4401);
}

TEST_F(WsTest, OpsBeforeHelloAreRefusedAndPingWorks) {
  auto ws = WsClient::Connect(server_->endpoint());
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "devices.list"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "code"), "bad_request");
  ASSERT_TRUE(ws->SendJson({{"op", "ping"}}));
  EXPECT_TRUE(ws->ReceiveOp("pong"));
}

TEST_F(WsTest, UnknownOpsMissingOpsAndBadRids) {
  Account a = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, a);
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "teleport"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "code"), "unknown_op");
  r = ws->Request({{"rid", "x1"}, {"nop", 1}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "code"), "bad_request");
  EXPECT_NE(Str(*r, "message").find("op"), std::string::npos);
  ASSERT_TRUE(ws->SendJson({{"op", "devices.list"}, {"rid", 7}}));
  auto e = ws->ReceiveOp("error");
  ASSERT_TRUE(e);
  EXPECT_EQ(Str(*e, "code"), "bad_request");
  // The connection is still fine.
  r = ws->Request({{"op", "devices.list"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok");
}

TEST_F(WsTest, UnparseableFramesAreAnsweredAndTheFifthInAMinuteCloses) {
  Account a = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, a);
  ASSERT_TRUE(ws);
  for (const char* bad : {"{nope", "[]", "42", "\"str\""}) {
    ASSERT_TRUE(ws->SendText(bad));
    auto e = ws->ReceiveOp("error");
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(Str(*e, "code"), "bad_frame");
  }
  ASSERT_TRUE(ws->SendJson({{"op", "ping"}}));
  EXPECT_TRUE(ws->ReceiveOp("pong"));  // four bad frames do not close it
  ASSERT_TRUE(ws->SendText("still bad"));
  EXPECT_EQ(ws->WaitClosed(), 4400);
}

TEST_F(WsTest, OversizedFramesClose4400) {
  Account a = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, a);
  ASSERT_TRUE(ws);
  std::string big = R"({"op":"ping","pad":")" + std::string(300 * 1024, 'x') + "\"}";
  ws->SendText(big);
  EXPECT_EQ(ws->WaitClosed(), 4400);
}

TEST_F(WsTest, ANewerConnectionOfTheSameDeviceReplacesTheOlder) {
  Account a = SignIn(*server_, NextPhone());
  auto first = Connect(*server_, a);
  ASSERT_TRUE(first);
  auto second = Connect(*server_, a);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->WaitClosed(), 4409);
  auto bye = first->ReceiveOp("bye", 100ms);
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["code"], 4409);
  auto r = second->Request({{"op", "devices.list"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok");
}

TEST_F(WsTest, DevicesListAndRemove) {
  const std::string phone = NextPhone();
  Account phone_dev = SignIn(*server_, phone, "phone");
  Account laptop = SignIn(*server_, phone, "laptop");
  Account stranger = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, phone_dev);
  auto laptop_ws = Connect(*server_, laptop);
  ASSERT_TRUE(ws && laptop_ws);

  auto r = ws->Request({{"op", "devices.list"}});
  ASSERT_TRUE(r);
  auto& devices = (*r)["devices"].as_array();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].at("device_id"), phone_dev.device_id);
  EXPECT_EQ(devices[0].at("name"), "phone");
  EXPECT_EQ(devices[0].at("platform"), "cli");
  EXPECT_EQ(devices[0].at("current"), true);
  EXPECT_EQ(devices[1].at("current"), false);
  EXPECT_TRUE(devices[1].at("last_active_ms").is_int64());

  // Another user's device id, an unknown one and a malformed one.
  r = ws->Request({{"op", "devices.remove"}, {"device_id", stranger.device_id}});
  EXPECT_EQ(Str(*r, "code"), "not_found");
  r = ws->Request({{"op", "devices.remove"}, {"device_id", "12345"}});
  EXPECT_EQ(Str(*r, "code"), "not_found");
  r = ws->Request({{"op", "devices.remove"}, {"device_id", 12345}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");
  r = ws->Request({{"op", "devices.remove"}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");

  const auto before = std::chrono::steady_clock::now();
  r = ws->Request({{"op", "devices.remove"}, {"device_id", laptop.device_id}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok");
  EXPECT_EQ(laptop_ws->WaitClosed(1s), 4403);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);

  ExpectHelloRefused(*server_, laptop.access_token, "device_revoked", 4403);
  auto refresh = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", laptop.refresh_token}});
  EXPECT_EQ(refresh.status, 403);
  EXPECT_EQ(refresh.ErrorCode(), "device_revoked");
  r = ws->Request({{"op", "devices.list"}});
  EXPECT_EQ((*r)["devices"].as_array().size(), 1u);
  // The stranger's device was not touched.
  EXPECT_TRUE(Connect(*server_, stranger));
}

TEST_F(WsTest, ProfilesSetAndGet) {
  Account a = SignIn(*server_, NextPhone());
  Account b = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, a);
  ASSERT_TRUE(ws);
  auto r = ws->Request({{"op", "profile.set"},
                        {"name", "Ada"},
                        {"status_text", "at work"},
                        {"last_seen_visibility", "nobody"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);

  auto wsb = Connect(*server_, b);
  r = wsb->Request({{"op", "profile.get"}, {"users", json::array{a.user_id, "999", b.user_id}}});
  ASSERT_TRUE(r);
  auto& profiles = (*r)["profiles"].as_array();
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_EQ(profiles[0].at("user"), a.user_id);
  EXPECT_EQ(profiles[0].at("name"), "Ada");
  EXPECT_EQ(profiles[0].at("status_text"), "at work");
  EXPECT_FALSE(profiles[0].as_object().contains("last_seen_ms"));
  EXPECT_EQ(profiles[1].at("user"), b.user_id);

  for (json::object bad : {json::object{{"op", "profile.set"}, {"name", 5}},
                           json::object{{"op", "profile.set"}, {"name", std::string(65, 'n')}},
                           json::object{{"op", "profile.set"}, {"last_seen_visibility", "friends"}},
                           json::object{{"op", "profile.set"}, {"avatar_media_id", "../../etc"}},
                           json::object{{"op", "profile.get"}, {"users", "everyone"}},
                           json::object{{"op", "profile.get"}, {"users", json::array{1, 2}}}}) {
    r = ws->Request(bad);
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "code"), "bad_request") << json::serialize(bad);
  }
}

TEST_F(WsTest, ContactDiscoveryByPhoneHash) {
  Account a = SignIn(*server_, NextPhone());
  Account b = SignIn(*server_, NextPhone());
  auto ws = Connect(*server_, a);
  ASSERT_TRUE(ws);
  const std::string hb = Sha256Hex(b.phone);
  const std::string nobody = Sha256Hex("+19999999999");
  auto r = ws->Request({{"op", "contacts.discover"}, {"hashes", json::array{hb, nobody}}});
  ASSERT_TRUE(r);
  auto& matches = (*r)["matches"].as_array();
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].at("hash"), hb);
  EXPECT_EQ(matches[0].at("user_id"), b.user_id);

  std::string upper = hb;
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  r = ws->Request({{"op", "contacts.discover"}, {"hashes", json::array{upper}}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");
  json::array too_many;
  for (int i = 0; i < 1001; ++i) too_many.push_back(json::value(nobody));
  r = ws->Request({{"op", "contacts.discover"}, {"hashes", too_many}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");

  // The daily quota (1,200 in this suite): 1,000 more fit once, not twice.
  json::array thousand;
  for (int i = 0; i < 1000; ++i) thousand.push_back(json::value(nobody));
  r = ws->Request({{"op", "contacts.discover"}, {"hashes", thousand}});
  EXPECT_EQ(Str(*r, "op"), "ok");
  r = ws->Request({{"op", "contacts.discover"}, {"hashes", thousand}});
  EXPECT_EQ(Str(*r, "code"), "rate_limited");
  ASSERT_TRUE((*r)["retry_after_ms"].is_int64());
  EXPECT_GT((*r)["retry_after_ms"].as_int64(), 0);
}

TEST(WsTimeouts, NoHelloWithinTheDeadlineCloses4401) {
  Parleyd server(Parleyd::Options{.args = {"--auth-timeout-s", "1"}});
  ASSERT_TRUE(server.Start());
  auto ws = WsClient::Connect(server.endpoint());
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->WaitClosed(3s), 4401);
}

TEST(WsTimeouts, ASilentConnectionCloses4408) {
  Parleyd server(Parleyd::Options{.args = {"--idle-timeout-s", "2"}});
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone());
  auto ws = Connect(server, a);
  ASSERT_TRUE(ws);
  // Not reading means not answering pings either: the client is silent.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(ws->WaitClosed(3s), 4408);
}

TEST(WsTimeouts, AnExpiredAccessTokenIsRefused) {
  Parleyd server(Parleyd::Options{.args = {"--access-token-ttl-s", "1"}});
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone());
  std::this_thread::sleep_for(2100ms);
  ExpectHelloRefused(server, a.access_token, "token_expired", 4401);
}

}  // namespace
}  // namespace parley::test
