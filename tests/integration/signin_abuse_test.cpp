// Issue 14, item 6: sign-in abuse, against a real parleyd. Per-address code
// limits count an IPv6 client by its /64 and believe X-Forwarded-For only
// from trusted proxies; a victim whose codes are burned can always get a
// fresh one after a growing delay; a global cap bounds codes per minute; a
// hung SMS gateway delays codes and never blocks the server.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "integration/helpers.hpp"
#include "integration/raw_http.hpp"

namespace parley::test {
namespace {

HttpResult AskCode(Parleyd& server, const std::string& phone, const std::string& forwarded = "") {
  std::map<std::string, std::string> headers;
  if (!forwarded.empty()) headers["X-Forwarded-For"] = forwarded;
  return PostJson(server, "/v1/auth/otp", {{"phone", phone}}, headers);
}

int RetryAfter(const HttpResult& r) {
  auto it = r.headers.find("retry-after");
  return it == r.headers.end() ? -1 : std::stoi(it->second);
}

TEST(SignInAbuseTest, PerAddressLimitsTrustOnlyConfiguredProxiesAndCountIpv6By64) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "2", "--otp-per-phone",
                                           "0", "--trusted-proxies", "127.0.0.1, 10.0.0.0/8"}});
  ASSERT_TRUE(server.Start());
  // Behind the trusted proxy, each client has its own budget.
  EXPECT_EQ(AskCode(server, NextPhone(), "192.0.2.9").status, 202);
  EXPECT_EQ(AskCode(server, NextPhone(), "192.0.2.9").status, 202);
  auto r = AskCode(server, NextPhone(), "192.0.2.9");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.ErrorCode(), "rate_limited");
  EXPECT_EQ(AskCode(server, NextPhone(), "192.0.2.8").status, 202);
  // Whatever the client writes at the left is not believed: the nearest
  // address that is not a trusted proxy (10.x is one) counts.
  EXPECT_EQ(AskCode(server, NextPhone(), "198.51.100.1, 192.0.2.9").status, 429);
  EXPECT_EQ(AskCode(server, NextPhone(), "198.51.100.1, 192.0.2.9, 10.1.2.3").status, 429);
  // IPv6: one /64 is one client.
  EXPECT_EQ(AskCode(server, NextPhone(), "2001:db8::1").status, 202);
  EXPECT_EQ(AskCode(server, NextPhone(), "2001:db8::2:3").status, 202);
  EXPECT_EQ(AskCode(server, NextPhone(), "2001:db8:0:0:ffff::9").status, 429);
  EXPECT_EQ(AskCode(server, NextPhone(), "2001:db8:0:1::1").status, 202);

  // A peer that is not a trusted proxy: its X-Forwarded-For is ignored.
  auto ask_from = [&](const std::string& source, const std::string& forwarded) {
    RawHttp raw(source, server.endpoint());
    const std::string body = "{\"phone\":\"" + NextPhone() + "\"}";
    return raw.Exchange(
        "POST /v1/auth/otp HTTP/1.1\r\nHost: parley\r\nX-Forwarded-For: " + forwarded +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body);
  };
  EXPECT_TRUE(ask_from("127.0.0.7", "203.0.113.1").starts_with("HTTP/1.1 202"));
  EXPECT_TRUE(ask_from("127.0.0.7", "203.0.113.2").starts_with("HTTP/1.1 202"));
  EXPECT_TRUE(ask_from("127.0.0.7", "203.0.113.3").starts_with("HTTP/1.1 429"));
}

// Someone who burns the victim's codes (five wrong guesses each) cannot lock
// the victim out: a fresh code is possible after 1 s, then 2 s, ..., even
// though --otp-per-phone 1 would otherwise refuse one for 10 minutes.
TEST(SignInAbuseTest, BurnedCodesNeverLockTheVictimOut) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone",
                                           "1", "--otp-burn-delay-s", "1"}});
  ASSERT_TRUE(server.Start());
  const std::string phone = NextPhone();
  std::size_t seen = server.CodeCount(phone);
  ASSERT_EQ(AskCode(server, phone).status, 202);
  for (int burn = 1; burn <= 2; ++burn) {
    auto code = server.WaitCode(phone, seen);
    ASSERT_TRUE(code.has_value());
    seen = server.CodeCount(phone);
    const std::string wrong = *code == "000000" ? "111111" : "000000";
    for (int i = 0; i < 5; ++i) EXPECT_EQ(Verify(server, phone, wrong).status, 401);
    auto burned = Verify(server, phone, *code);
    EXPECT_EQ(burned.status, 429) << burned.body;
    EXPECT_EQ(burned.ErrorCode(), "too_many_attempts");

    // A fresh code: at first maybe "wait a little" (never the 10 minutes of
    // the per-phone window), then granted.
    auto r = AskCode(server, phone);
    if (r.status == 429) {
      EXPECT_LE(RetryAfter(r), 1 << (burn - 1)) << "burn " << burn << ": " << r.body;
      EXPECT_GE(RetryAfter(r), 1);
      std::this_thread::sleep_for(std::chrono::seconds(RetryAfter(r)) + 100ms);
      r = AskCode(server, phone);
    }
    ASSERT_EQ(r.status, 202) << "burn " << burn << ": " << r.body;
  }
  // The victim signs in with the last code.
  auto code = server.WaitCode(phone, seen);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(Verify(server, phone, *code).status, 200);
  // Without a burn the per-phone window applies as before.
  auto r = AskCode(server, phone);
  EXPECT_EQ(r.status, 429);
  EXPECT_GT(RetryAfter(r), 60);
}

TEST(SignInAbuseTest, GlobalCapOnCodesPerMinute) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone",
                                           "0", "--otp-global-per-minute", "3"}});
  ASSERT_TRUE(server.Start());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(AskCode(server, NextPhone()).status, 202);
  auto r = AskCode(server, NextPhone());
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.ErrorCode(), "rate_limited");
  EXPECT_GE(RetryAfter(r), 1);
  EXPECT_LE(RetryAfter(r), 60);
}

// A local SMS gateway that hangs (accepts, reads, never answers) the first
// request and every request while `hang` is set, and answers 200 otherwise.
class Gateway {
 public:
  Gateway() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~Gateway() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : hung_) ::close(fd);
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }
  void HangAll(bool on) { hang_all_ = on; }
  int connections() const { return connections_; }
  // Bodies answered 200 so far.
  std::vector<std::string> Delivered() {
    std::lock_guard lock(mu_);
    return delivered_;
  }
  bool WaitDelivered(const std::string& phone, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& b : Delivered()) {
        if (b.find(phone) != std::string::npos) return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const int n = ++connections_;
      // Read the request (head and body) with a bound on the wait.
      std::string req;
      char buf[4096];
      for (int i = 0; i < 100 && req.find("}") == std::string::npos; ++i) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 50) != 1) continue;
        const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
        if (got <= 0) break;
        req.append(buf, static_cast<std::size_t>(got));
      }
      if (n == 1 || hang_all_) {
        hung_.push_back(fd);  // never answered, closed at the end
        continue;
      }
      const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(fd, ok.data(), ok.size(), MSG_NOSIGNAL);
      ::close(fd);
      std::lock_guard lock(mu_);
      delivered_.push_back(req);
    }
  }

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> hang_all_{false};
  std::atomic<int> connections_{0};
  std::vector<int> hung_;  // gateway thread only, then the destructor
  std::mutex mu_;
  std::vector<std::string> delivered_;
};

TEST(SignInAbuseTest, AHungSmsGatewayDelaysCodesButNeverBlocksTheServer) {
  Gateway gateway;
  ASSERT_NE(gateway.port(), 0);
  Parleyd server(Parleyd::Options{
      .args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0", "--sms-provider",
               "webhook:http://127.0.0.1:" + std::to_string(gateway.port()) + "/sms",
               "--sms-connect-timeout-ms", "500", "--sms-read-timeout-ms", "500",
               "--shutdown-timeout-s", "2"}});
  ASSERT_TRUE(server.Start());
  const std::string first = NextPhone(), second = NextPhone();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(AskCode(server, first).status, 202);
  EXPECT_EQ(AskCode(server, second).status, 202);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "asking for a code waited on the gateway";
  // The first request hangs; it is timed out and retried, and the second
  // code does not wait behind it forever.
  EXPECT_TRUE(gateway.WaitDelivered(second, 20s));
  EXPECT_TRUE(gateway.WaitDelivered(first, 20s));
  EXPECT_GE(gateway.connections(), 3);

  // Now the gateway hangs everything: the server still answers, and stops
  // at once on SIGTERM (the requests in flight are cut off).
  gateway.HangAll(true);
  const std::string third = NextPhone();
  EXPECT_EQ(AskCode(server, third).status, 202);
  const int before = gateway.connections();
  for (int i = 0; i < 200 && gateway.connections() == before; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_GT(gateway.connections(), before) << "the webhook never called the gateway";
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(server.Terminate(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 10s);
}

}  // namespace
}  // namespace parley::test
