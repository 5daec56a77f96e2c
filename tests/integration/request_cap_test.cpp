// The cap on a connection's requests in flight (max_requests_in_flight,
// issue 14 item 1) against a real parleyd: a client that pipelines far past
// the cap is read at the cap's pace, every request is answered, in order,
// and other users are not held back meanwhile.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

using Clock = std::chrono::steady_clock;

json::object SendWithRid(const std::string& to_user, int i) {
  return {{"op", "send"},          {"rid", std::to_string(i)},
          {"to", ToUser(to_user)}, {"client_msg_id", NextClientMsgId()},
          {"kind", "text"},        {"body", {{"text", "pipelined " + std::to_string(i)}}}};
}

// 2,000 sends pipelined with a cap of 2. The user's share of the writer is 2
// as well: had the server read a third request while two were waiting for
// the store, that one would be answered rate_limited, so "every answer is
// ok" also proves that the server read at most the cap ahead. Before the fix
// the server stopped answering and reading for good after the first pause
// (the client's write timed out after 181 to 362 frames).
TEST(RequestCap, APipelineFarPastTheCapIsAnsweredInOrder) {
  constexpr int kPipelined = 2000;
  Parleyd server(Parleyd::Options{
      .args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0", "--device-send-rate", "0",
               "--max-requests-in-flight", "2", "--user-writes-in-flight", "2"}});
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  const Account bob = SignIn(server, NextPhone());
  const Account carol = SignIn(server, NextPhone());
  auto a = Connect(server, alice);
  auto c = Connect(server, carol);
  ASSERT_TRUE(a && c);

  int written = 0;
  std::vector<int> answered;  // rids of the ok answers, in arrival order
  std::vector<std::string> failures;
  std::vector<std::uint64_t> seqs;
  std::atomic<bool> pipelining{true};
  std::thread pipeline([&] {
    for (int i = 0; i < kPipelined && a->SendJson(SendWithRid(bob.user_id, i)); ++i) ++written;
    const auto deadline = Clock::now() + 120s;
    while (static_cast<int>(answered.size() + failures.size()) < written &&
           Clock::now() < deadline) {
      auto f = a->ReceiveJson(2s);
      if (!f) {
        if (a->closed()) break;
        continue;
      }
      const std::string op = Str(*f, "op");
      if (op == "ok") {
        answered.push_back(std::stoi(Str(*f, "rid")));
        seqs.push_back(std::stoull(Str(*f, "seq")));
      } else if (op == "error") {
        failures.push_back(json::serialize(*f));
      }
    }
    pipelining = false;
  });

  // Meanwhile another user sends, one at a time, and is answered promptly.
  std::vector<double> other_ms;
  int other_failed = 0;
  while (pipelining.load() && other_ms.size() < 200) {
    const auto start = Clock::now();
    auto r = SendText(*c, bob.user_id, "unrelated", "", 10s);
    if (!r || Str(*r, "op") != "ok") {
      ++other_failed;
      continue;
    }
    other_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    std::this_thread::sleep_for(20ms);
  }
  pipeline.join();

  EXPECT_EQ(written, kPipelined) << "the client's writes stopped (the server stopped reading)";
  EXPECT_TRUE(failures.empty()) << failures.size() << " errors, the first: " << failures.front();
  ASSERT_EQ(static_cast<int>(answered.size()), kPipelined)
      << "answered " << answered.size() << " of " << written << " written";
  for (int i = 0; i < kPipelined; ++i) {
    ASSERT_EQ(answered[i], i) << "answer " << i << " out of order";
    if (i > 0) {
      ASSERT_GT(seqs[i], seqs[i - 1]) << "seq of answer " << i;
    }
  }
  EXPECT_EQ(other_failed, 0);
  ASSERT_FALSE(other_ms.empty());
  const double slowest = *std::max_element(other_ms.begin(), other_ms.end());
  std::printf("other user's sends during the pipeline: n=%zu slowest=%.1f ms\n", other_ms.size(),
              slowest);
  EXPECT_LT(slowest, 2000.0) << "another user was held back";
}

}  // namespace
}  // namespace parley::test
