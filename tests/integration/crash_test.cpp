// Store before deliver: every message answered ok survives SIGKILL of the
// server the next instant, exactly once and in send order.
#include <random>
#include <set>
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

constexpr int kMessages = 2000;
constexpr int kInFlight = 32;
constexpr int kRuns = 10;

void OneRun(std::mt19937& rng) {
  Parleyd server(
      Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0",
                                "--device-send-rate", "0", "--device-write-rate", "0",
                                "--device-fanout-rate", "0", "--user-writes-in-flight", "0"}});
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone()), b = SignIn(server, NextPhone());
  auto wa = Connect(server, a);
  ASSERT_TRUE(wa);

  const int kill_after_ms = std::uniform_int_distribution<int>(5, 400)(rng);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
    server.Kill();
  });

  std::vector<bool> acknowledged(kMessages, false);
  int sent = 0, answered = 0;
  bool dead = false;
  while (answered < kMessages && !dead) {
    while (sent < kMessages && sent - answered < kInFlight) {
      if (!wa->SendJson({{"op", "send"},
                         {"rid", std::to_string(sent)},
                         {"to", ToUser(b.user_id)},
                         {"client_msg_id", "crash-" + std::to_string(sent)},
                         {"kind", "text"},
                         {"body", sent}})) {
        dead = true;
        break;
      }
      ++sent;
    }
    if (dead) break;
    auto r = wa->ReceiveOp("ok", 3s);
    if (!r) break;  // the server is gone
    acknowledged[std::stoi(Str(*r, "rid"))] = true;
    ++answered;
  }
  killer.join();
  wa.reset();
  ASSERT_TRUE(server.Restart());

  // The recipient syncs everything there is.
  auto wb = Connect(server, b);
  ASSERT_TRUE(wb);
  std::set<std::uint64_t> seqs;
  std::vector<int> order;
  while (auto e = NextEvent(*wb, 1s)) {
    const std::uint64_t seq = SeqOf(*e);
    if (!seqs.insert(seq).second) continue;  // a duplicate by seq is allowed, and dropped
    const auto& ev = EventOf(*e);
    if (Str(ev, "type") == "message") order.push_back(static_cast<int>(ev.at("body").as_int64()));
    if (seqs.size() % 128 == 0) Ack(*wb, seq);
  }
  // Every message answered ok is there, exactly once, in send order.
  std::vector<int> count(kMessages, 0);
  for (int n : order) ++count[n];
  int ok_count = 0;
  for (int i = 0; i < kMessages; ++i) {
    if (acknowledged[i]) {
      ++ok_count;
      EXPECT_EQ(count[i], 1) << "message " << i << " was answered ok; kill after " << kill_after_ms
                             << " ms";
    } else {
      EXPECT_LE(count[i], 1) << "message " << i;
    }
  }
  for (std::size_t i = 1; i < order.size(); ++i) {
    EXPECT_LT(order[i - 1], order[i]) << "out of order at " << i;
  }
  ::testing::Test::RecordProperty("acknowledged", ok_count);
}

TEST(Crash, EveryAcknowledgedMessageSurvivesSigkillTenRunsInARow) {
  std::mt19937 rng(std::random_device{}());
  for (int run = 0; run < kRuns; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    OneRun(rng);
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace parley::test
