// Issue 14, item 5: connection caps, against a real parleyd. A flood from
// one address is capped while other addresses still connect; beyond the
// global cap (the open-files limit minus a reserve) new sockets are refused
// while the store and media still write.
#include <memory>
#include <thread>
#include <vector>

#include "integration/helpers.hpp"
#include "integration/raw_http.hpp"

namespace parley::test {
namespace {

std::vector<std::string> DefaultArgs(std::vector<std::string> more) {
  std::vector<std::string> args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0",
                                   "--device-send-rate",         "0"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// parley_connections_open{kind="http"} read on `probe`, a keep-alive socket
// from another address (so that it is not counted against the addresses
// under test, and is one steady socket of the count).
int HttpOpen(RawHttp& probe) {
  const std::string r = probe.Exchange("GET /metrics HTTP/1.1\r\nHost: parley\r\n\r\n");
  const std::string needle = "parley_connections_open{kind=\"http\"} ";
  const auto at = r.find(needle);
  return at == std::string::npos ? -1 : std::stoi(r.substr(at + needle.size()));
}

// Waits until `open` HTTP sockets are open, the probe included: the sockets
// of earlier requests have been released.
void WaitHttpSettled(RawHttp& probe, int open) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (HttpOpen(probe) != open && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(HttpOpen(probe), open);
}

TEST(ConnectionCapsTest, PerAddressCapsRefuseOneAddressOnly) {
  Parleyd server(Parleyd::Options{
      .args = DefaultArgs({"--connection-caps-exempt", "", "--max-connections-per-address", "8",
                           "--max-unauthenticated-per-address", "5"})});
  ASSERT_TRUE(server.Start());

  // Unauthenticated sockets from 127.0.0.2: five are served, the sixth is
  // closed at once.
  {
    std::vector<std::unique_ptr<RawHttp>> held;
    for (int i = 0; i < 5; ++i) {
      held.push_back(std::make_unique<RawHttp>("127.0.0.2", server.endpoint()));
      ASSERT_TRUE(held.back()->ok());
      EXPECT_TRUE(held.back()->Served()) << "socket " << i;
    }
    RawHttp sixth("127.0.0.2", server.endpoint());
    EXPECT_FALSE(sixth.Served());
    // Another address is not affected.
    RawHttp other("127.0.0.3", server.endpoint());
    EXPECT_TRUE(other.Served());
    // A closed socket gives its place back.
    held.pop_back();
    bool served_again = false;
    for (int i = 0; i < 100 && !served_again; ++i) {
      RawHttp again("127.0.0.2", server.endpoint());
      served_again = again.Served();
      if (!served_again) std::this_thread::sleep_for(20ms);  // the close is seen asynchronously
    }
    EXPECT_TRUE(served_again);
  }

  // Signed-in WebSockets (from 127.0.0.1) do not count as unauthenticated,
  // but count in the address's total of 8.
  std::vector<Account> accounts;
  for (int i = 0; i < 7; ++i) accounts.push_back(SignIn(server, NextPhone()));
  RawHttp probe("127.0.0.250", server.endpoint());
  WaitHttpSettled(probe, 1);
  std::vector<std::unique_ptr<WsClient>> sockets;
  for (int i = 0; i < 6; ++i) {
    sockets.push_back(Connect(server, accounts[i]));
    ASSERT_TRUE(sockets.back()) << "WebSocket " << i;
  }
  RawHttp seventh("127.0.0.1", server.endpoint());
  RawHttp eighth("127.0.0.1", server.endpoint());
  EXPECT_TRUE(seventh.Served());
  EXPECT_TRUE(eighth.Served());
  RawHttp ninth("127.0.0.1", server.endpoint());
  EXPECT_FALSE(ninth.Served());
  // Everyone signed in keeps working.
  auto r = SendText(*sockets[0], accounts[1].user_id, "still here");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Str(*r, "op"), "ok");
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 0)
      << "a ninth socket from 127.0.0.1 must be refused";
}

// The global cap: the open-files limit (400 here) minus --fd-reserve (200).
TEST(ConnectionCapsTest, GlobalCapKeepsDescriptorsForTheStoreAndMedia) {
  Parleyd::Options options{.args = DefaultArgs({"--fd-reserve", "200"})};
  options.open_files_limit = 400;
  Parleyd server(options);
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone()), b = SignIn(server, NextPhone());
  auto wa = Connect(server, a);
  ASSERT_TRUE(wa);
  // A keep-alive socket for the upload later, opened before the flood.
  RawHttp uploader("127.0.0.4", server.endpoint());
  ASSERT_TRUE(uploader.Served());
  RawHttp probe("127.0.0.250", server.endpoint());
  WaitHttpSettled(probe, 2);

  // The flood, from many addresses (each under its per-address caps).
  std::vector<std::unique_ptr<RawHttp>> flood;
  int served = 0, refused = 0;
  for (int i = 0; i < 260 && refused < 10; ++i) {
    auto s = std::make_unique<RawHttp>("127.0.1." + std::to_string(1 + i / 50), server.endpoint());
    ASSERT_TRUE(s->ok()) << "the kernel refused socket " << i;
    if (s->Served()) {
      ++served;
      EXPECT_EQ(refused, 0) << "served after a refusal";
      flood.push_back(std::move(s));
    } else {
      ++refused;
    }
  }
  // 200 in all: the WebSocket, the uploader, the probe and the flood.
  EXPECT_EQ(served, 197);
  EXPECT_EQ(refused, 10);

  // The store still writes, and media still opens files.
  auto r = SendText(*wa, b.user_id, "during the flood");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
  const std::string body(100000, 'x');
  const std::string upload = uploader.Exchange(
      "POST /v1/media HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer " + a.access_token +
      "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_TRUE(upload.starts_with("HTTP/1.1 201")) << upload.substr(0, 300);

  // Once the flood goes, new sockets are served again.
  flood.clear();
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) {
    back = Http(server.endpoint(), "GET", "/health").status == 200;
    if (!back) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(back);
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
}  // namespace parley::test
