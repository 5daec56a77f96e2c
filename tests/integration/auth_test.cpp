// Accounts over real HTTP against a real parleyd (PROTOCOL.md section 1).
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Parleyd(
        Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0"}});
    ASSERT_TRUE(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override {
    // Whatever a test threw at it, the server still serves.
    EXPECT_EQ(Http(server_->endpoint(), "GET", "/health").status, 200);
  }
  static Parleyd* server_;
};
Parleyd* AuthTest::server_ = nullptr;

TEST_F(AuthTest, HealthReadyAndMetrics) {
  auto health = Http(server_->endpoint(), "GET", "/health");
  ASSERT_EQ(health.status, 200);
  EXPECT_EQ(health.Json().at("status"), "ok");
  EXPECT_TRUE(health.Json().as_object().contains("node"));
  EXPECT_EQ(Http(server_->endpoint(), "GET", "/ready").status, 200);

  SignIn(*server_, NextPhone());  // so that store latencies exist
  auto metrics = Http(server_->endpoint(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        "parley_connections_open", "parley_http_responses_total{status=\"202\"}",
        "parley_sessions_authenticated", "parley_ws_frames_in_total",
        "parley_store_op_seconds_bucket"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
}

TEST_F(AuthTest, SignUpThenSecondDeviceJoinsTheSameAccount) {
  const std::string phone = NextPhone();
  auto otp = RequestCode(*server_, phone);
  ASSERT_EQ(otp.status, 202) << otp.body;
  EXPECT_EQ(otp.Json().at("expires_in_s"), 300);
  auto code = server_->WaitCode(phone);
  ASSERT_TRUE(code);
  EXPECT_EQ(code->size(), 6u);

  auto first = Verify(*server_, phone, *code, "phone", "android");
  ASSERT_EQ(first.status, 200) << first.body;
  Account a = AccountFrom(phone, first);
  EXPECT_TRUE(a.new_user);
  EXPECT_FALSE(a.user_id.empty());
  EXPECT_FALSE(a.device_id.empty());
  EXPECT_EQ(first.Json().at("access_expires_in_s"), 900);
  EXPECT_EQ(first.Json().at("refresh_expires_in_s"), 2592000);
  // The access token is a JWT: three base64url parts.
  EXPECT_EQ(std::count(a.access_token.begin(), a.access_token.end(), '.'), 2);

  // A code works once.
  EXPECT_EQ(Verify(*server_, phone, *code).ErrorCode(), "invalid_code");

  Account b = SignIn(*server_, phone, "laptop");
  EXPECT_EQ(b.user_id, a.user_id);
  EXPECT_NE(b.device_id, a.device_id);
  EXPECT_FALSE(b.new_user);
}

TEST_F(AuthTest, InvalidPhonesAreRefused) {
  for (const char* bad : {"15551234567", "+1555", "+1234567890123456", "+1555abc4567", "",
                          "+ 15551234567", "++15551234567"}) {
    auto r = RequestCode(*server_, bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(r.ErrorCode(), "invalid_phone") << bad;
    EXPECT_EQ(Verify(*server_, bad, "123456").ErrorCode(), "invalid_phone") << bad;
  }
  EXPECT_EQ(RequestCode(*server_, "+12345678").status, 202);  // 8 digits is enough
}

TEST_F(AuthTest, MalformedBodiesAreBadRequestsNamingTheField) {
  const auto& ep = server_->endpoint();
  auto r = Http(ep, "POST", "/v1/auth/otp", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  r = Http(ep, "POST", "/v1/auth/otp", "[1,2]");
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  r = PostJson(*server_, "/v1/auth/otp", {{"phone", 15551234567}});
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  EXPECT_NE(r.body.find("phone"), std::string::npos) << r.body;
  r = PostJson(*server_, "/v1/auth/verify", {{"phone", NextPhone()}, {"code", "123456"}});
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  EXPECT_NE(r.body.find("device"), std::string::npos) << r.body;
  r = PostJson(*server_, "/v1/auth/verify",
               {{"phone", NextPhone()},
                {"code", "123456"},
                {"device", {{"name", "x"}, {"platform", "toaster"}}}});
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  EXPECT_NE(r.body.find("device.platform"), std::string::npos) << r.body;
  r = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", 42}});
  EXPECT_EQ(r.ErrorCode(), "bad_request");
  // Unknown fields are ignored.
  r = PostJson(*server_, "/v1/auth/otp", {{"phone", NextPhone()}, {"extra", true}});
  EXPECT_EQ(r.status, 202);
}

TEST_F(AuthTest, UnknownPathsMethodsAndOversizedBodies) {
  const auto& ep = server_->endpoint();
  EXPECT_EQ(Http(ep, "GET", "/v1/nothing").status, 404);
  auto r = Http(ep, "GET", "/v1/auth/otp");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Http(ep, "POST", "/v1/auth/otp", std::string(2 * 1024 * 1024, 'x')).status, 413);
}

TEST_F(AuthTest, WrongCodesAreCountedAndTheFifthBurnsTheCode) {
  const std::string phone = NextPhone();
  ASSERT_EQ(RequestCode(*server_, phone).status, 202);
  auto code = server_->WaitCode(phone);
  ASSERT_TRUE(code);
  const std::string wrong = *code == "000000" ? "000001" : "000000";
  for (int i = 0; i < 5; ++i) {
    auto r = Verify(*server_, phone, wrong);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.ErrorCode(), "invalid_code");
  }
  auto r = Verify(*server_, phone, *code);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.ErrorCode(), "too_many_attempts");
  // A new code starts afresh.
  Account a = SignIn(*server_, phone);
  EXPECT_FALSE(a.user_id.empty());
}

TEST_F(AuthTest, NoPendingCodeIsAnInvalidCode) {
  auto r = Verify(*server_, NextPhone(), "123456");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.ErrorCode(), "invalid_code");
}

TEST_F(AuthTest, AtMostFiveDevices) {
  const std::string phone = NextPhone();
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(SignIn(*server_, phone).device_id.empty());
  const std::size_t seen = server_->CodeCount(phone);
  ASSERT_EQ(RequestCode(*server_, phone).status, 202);
  auto code = server_->WaitCode(phone, seen);
  ASSERT_TRUE(code);
  auto r = Verify(*server_, phone, *code);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.ErrorCode(), "device_limit");
}

TEST_F(AuthTest, RefreshRotatesAndAReusedTokenRevokesTheDevice) {
  Account a = SignIn(*server_, NextPhone());
  auto r1 = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", a.refresh_token}});
  ASSERT_EQ(r1.status, 200) << r1.body;
  Account rotated = AccountFrom(a.phone, r1);
  EXPECT_EQ(rotated.user_id, a.user_id);
  EXPECT_EQ(rotated.device_id, a.device_id);
  EXPECT_NE(rotated.refresh_token, a.refresh_token);

  // The thief (or the victim) presents the old token again: everything of
  // that device stops working.
  auto ws = Connect(*server_, rotated);
  ASSERT_TRUE(ws);
  auto reuse = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", a.refresh_token}});
  EXPECT_EQ(reuse.status, 401);
  EXPECT_EQ(reuse.ErrorCode(), "invalid_token");
  EXPECT_EQ(ws->WaitClosed(2s), 4401);
  auto r2 = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", rotated.refresh_token}});
  EXPECT_EQ(r2.status, 401);
  auto ws2 = WsClient::Connect(server_->endpoint());
  ASSERT_TRUE(ws2);
  auto hello = ws2->Request({{"op", "hello"}, {"token", rotated.access_token}});
  ASSERT_TRUE(hello);
  EXPECT_EQ(Str(*hello, "code"), "invalid_token");
  EXPECT_EQ(ws2->WaitClosed(), 4401);
}

TEST_F(AuthTest, UnknownRefreshTokenIsInvalid) {
  auto r = PostJson(*server_, "/v1/auth/refresh", {{"refresh_token", "nonsense"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.ErrorCode(), "invalid_token");
}

TEST(AuthLimits, CodesPerPhoneAreLimitedWithRetryAfter) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0"}});
  ASSERT_TRUE(server.Start());
  const std::string phone = NextPhone();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RequestCode(server, phone).status, 202);
  auto r = RequestCode(server, phone);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.ErrorCode(), "rate_limited");
  ASSERT_TRUE(r.headers.contains("retry-after"));
  const int retry = std::stoi(r.headers["retry-after"]);
  EXPECT_GT(retry, 0);
  EXPECT_LE(retry, 600);
  EXPECT_EQ(RequestCode(server, NextPhone()).status, 202);  // other phones are not affected
}

TEST(AuthLimits, CodesPerAddressAreLimited) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "2"}});
  ASSERT_TRUE(server.Start());
  EXPECT_EQ(RequestCode(server, NextPhone()).status, 202);
  EXPECT_EQ(RequestCode(server, NextPhone()).status, 202);
  auto r = RequestCode(server, NextPhone());
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.ErrorCode(), "rate_limited");
  EXPECT_TRUE(r.headers.contains("retry-after"));
}

TEST(AuthLimits, ZeroMeansNoLimit) {
  Parleyd server(
      Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0"}});
  ASSERT_TRUE(server.Start());
  const std::string phone = NextPhone();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(RequestCode(server, phone).status, 202);
}

TEST(AuthExpiry, AnExpiredCodeAnswersCodeExpired) {
  Parleyd server(Parleyd::Options{.args = {"--otp-ttl-s", "1"}});
  ASSERT_TRUE(server.Start());
  const std::string phone = NextPhone();
  ASSERT_EQ(RequestCode(server, phone).status, 202);
  auto code = server.WaitCode(phone);
  ASSERT_TRUE(code);
  std::this_thread::sleep_for(1200ms);
  auto r = Verify(server, phone, *code);
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(r.ErrorCode(), "code_expired");
}

}  // namespace
}  // namespace parley::test
