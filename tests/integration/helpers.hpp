// Shared steps of the integration tests: sign-up through the real HTTP API
// and an authenticated WebSocket, against a real parleyd.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <concepts>
#include <string>

#include "support/client.hpp"

// Lets tests write EXPECT_EQ(obj.at("user"), some_std_string). Declared in
// boost::json so that argument-dependent lookup finds it from inside gtest.
namespace boost::json {
template <class S>
requires std::same_as<S, std::string>
bool operator==(const value& v, const S& s) { return v.is_string() && v.get_string() == s; }
}  // namespace boost::json

namespace parley::test {

struct Account {
  std::string phone;
  std::string user_id;
  std::string device_id;
  std::string access_token;
  std::string refresh_token;
  bool new_user = false;
};

// A phone number no other test in this process uses.
inline std::string NextPhone() {
  static std::atomic<int> n{0};
  return "+1555" + std::to_string(1000000 + n.fetch_add(1));
}

inline HttpResult PostJson(const Parleyd& server, const std::string& path, const json::object& body,
                           const std::map<std::string, std::string>& headers = {}) {
  return Http(server.endpoint(), "POST", path, json::serialize(body), headers);
}

inline HttpResult RequestCode(Parleyd& server, const std::string& phone) {
  return PostJson(server, "/v1/auth/otp", {{"phone", phone}});
}

inline HttpResult Verify(Parleyd& server, const std::string& phone, const std::string& code,
                         const std::string& device_name = "test device",
                         const std::string& platform = "cli") {
  return PostJson(server, "/v1/auth/verify",
                  {{"phone", phone},
                   {"code", code},
                   {"device", {{"name", device_name}, {"platform", platform}}}});
}

inline Account AccountFrom(const std::string& phone, const HttpResult& r) {
  Account a;
  a.phone = phone;
  auto j = r.Json();
  if (!j.is_object()) return a;
  const auto& o = j.as_object();
  auto str = [&](const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->value().is_string() ? std::string(it->value().get_string())
                                                    : std::string();
  };
  a.user_id = str("user_id");
  a.device_id = str("device_id");
  a.access_token = str("access_token");
  a.refresh_token = str("refresh_token");
  if (auto it = o.find("new_user"); it != o.end() && it->value().is_bool()) {
    a.new_user = it->value().get_bool();
  }
  return a;
}

// Signs in (a new account, or a new device of the phone's account).
inline Account SignIn(Parleyd& server, const std::string& phone,
                      const std::string& device_name = "test device") {
  const std::size_t seen = server.CodeCount(phone);
  auto otp = RequestCode(server, phone);
  EXPECT_EQ(otp.status, 202) << otp.body;
  auto code = server.WaitCode(phone, seen);
  EXPECT_TRUE(code.has_value()) << "no code for " << phone;
  if (!code) return {};
  auto r = Verify(server, phone, *code, device_name);
  EXPECT_EQ(r.status, 200) << r.body;
  return AccountFrom(phone, r);
}

// A WebSocket that has completed hello.
inline std::unique_ptr<WsClient> Connect(Parleyd& server, const Account& account,
                                         json::object* hello_result = nullptr) {
  auto ws = WsClient::Connect(server.endpoint());
  EXPECT_TRUE(ws) << "WebSocket connect failed";
  if (!ws) return nullptr;
  auto r = ws->Request({{"op", "hello"}, {"token", account.access_token}});
  EXPECT_TRUE(r.has_value()) << "no answer to hello";
  if (!r) return nullptr;
  EXPECT_EQ((*r)["op"], "ok") << json::serialize(*r);
  if (hello_result != nullptr) *hello_result = *r;
  return ws;
}

inline std::string Str(const json::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().get_string())
                                                  : std::string();
}

}  // namespace parley::test

namespace parley::test {

inline json::object ToUser(const std::string& user_id) { return {{"user", user_id}}; }

inline std::string NextClientMsgId() {
  static std::atomic<int> n{0};
  return "c" + std::to_string(n.fetch_add(1));
}

// Sends a text message and returns the answer (ok or error).
inline std::optional<json::object> SendText(WsClient& ws, const std::string& to_user,
                                            const std::string& text, std::string client_msg_id = "",
                                            std::chrono::milliseconds timeout = 5s) {
  if (client_msg_id.empty()) client_msg_id = NextClientMsgId();
  return ws.Request({{"op", "send"},
                     {"to", ToUser(to_user)},
                     {"client_msg_id", client_msg_id},
                     {"kind", "text"},
                     {"body", {{"text", text}}}},
                    timeout);
}

// The next pushed event frame ({"op":"event",...}), or nullopt.
inline std::optional<json::object> NextEvent(WsClient& ws, std::chrono::milliseconds timeout = 5s) {
  return ws.ReceiveOp("event", timeout);
}

inline std::uint64_t SeqOf(const json::object& event_frame) {
  auto it = event_frame.find("seq");
  if (it == event_frame.end() || !it->value().is_string()) return 0;
  return std::stoull(std::string(it->value().get_string()));
}

inline const json::object& EventOf(const json::object& event_frame) {
  return event_frame.at("event").as_object();
}

inline void Ack(WsClient& ws, std::uint64_t seq) {
  ws.SendJson({{"op", "ack"}, {"seq", std::to_string(seq)}});
}

}  // namespace parley::test

namespace parley::test {

// The next event of the given type; events of other types are skipped.
inline std::optional<json::object> NextEventOfType(WsClient& ws, const std::string& type,
                                                   std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = NextEvent(ws, left);
    if (!e) return std::nullopt;
    if (Str(EventOf(*e), "type") == type) return e;
  }
}

}  // namespace parley::test

namespace parley::test {

// One parleyd for every test of a suite (`class MySuite : public
// SharedParleydTest<MySuite>`), started with the limits that would slow a
// test of many sign-ins and sends switched off, plus the suite's own flags
// (a public `static std::vector<std::string> ExtraArgs()` in the suite), and checked
// to still serve after each test, whatever the test threw at it.
template <class Suite>
class SharedParleydTest : public ::testing::Test {
 protected:
  static std::vector<std::string> ExtraArgs() { return {}; }
  static void SetUpTestSuite() {
    std::vector<std::string> args = {"--otp-per-address-per-hour", "0", "--otp-per-phone",     "0",
                                     "--device-send-rate",         "0", "--device-write-rate", "0",
                                     "--device-fanout-rate",       "0"};
    for (auto& a : Suite::ExtraArgs()) args.push_back(std::move(a));
    server_ = new Parleyd(Parleyd::Options{.args = std::move(args)});
    ASSERT_TRUE(server_->Start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override { EXPECT_EQ(Http(server_->endpoint(), "GET", "/health").status, 200); }
  static inline Parleyd* server_ = nullptr;
};

}  // namespace parley::test
