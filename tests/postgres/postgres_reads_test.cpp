// parleyd on a PostgreSQL a network round trip away (support/delay_relay.hpp):
// one client's reads must not stall the other sockets of its I/O thread
// (issue 12 item 3; docs/architecture.md, "Reads go where").
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "integration/helpers.hpp"
#include "support/delay_relay.hpp"
#include "support/postgres.hpp"

namespace parley::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

TEST(PostgresReads, OneClientsReadFloodDoesNotStallAnother) {
  static std::atomic<int> next{0};
  const std::string url = SharedPostgres().CreateDatabase("r" + std::to_string(getpid()) + "_" +
                                                          std::to_string(next++));
  // 20 ms per round trip to the database.
  DelayRelay relay(url, 10ms);
  // One I/O thread: every socket shares it, so a read on it stalls them all.
  Parleyd node({.args = {"--store", relay.url(), "--threads", "1"}});
  ASSERT_TRUE(node.Start()) << node.Log();
  Account flooder = SignIn(node, NextPhone());
  Account other = SignIn(node, NextPhone());
  auto wf = Connect(node, flooder);
  auto wo = Connect(node, other);
  ASSERT_NE(wf, nullptr);
  ASSERT_NE(wo, nullptr);

  // 150 profile lookups pipelined: one read each, about 3 s of round trips.
  constexpr int kFlood = 150;
  const auto flood_start = Clock::now();
  for (int i = 0; i < kFlood; ++i) {
    ASSERT_TRUE(wf->SendJson({{"op", "profile.get"},
                              {"rid", "f" + std::to_string(i)},
                              {"users", json::array{json::value(flooder.user_id)}}}))
        << node.Log();
  }
  std::this_thread::sleep_for(100ms);  // the flood is under way

  // The other client's pings (no read), one every 20 ms without waiting
  // for the answers, then one lookup of its own (one read); answers are
  // timed as they arrive.
  constexpr int kPings = 15;
  std::map<std::string, Clock::time_point> sent;
  std::map<std::string, double> took;
  auto collect_until = [&](Clock::time_point until) {
    while (Clock::now() < until) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      auto f = wo->ReceiveJson(std::max(left, 1ms));
      if (!f) continue;
      const std::string rid = Str(*f, "rid");
      if (auto it = sent.find(rid); it != sent.end() && !took.contains(rid)) {
        took[rid] = MsSince(it->second);
      }
    }
  };
  for (int i = 0; i < kPings; ++i) {
    const std::string rid = "p" + std::to_string(i);
    sent[rid] = Clock::now();
    ASSERT_TRUE(wo->SendJson({{"op", "ping"}, {"rid", rid}}));
    collect_until(sent[rid] + 20ms);
  }
  sent["own"] = Clock::now();
  ASSERT_TRUE(wo->SendJson(
      {{"op", "profile.get"}, {"rid", "own"}, {"users", json::array{json::value(other.user_id)}}}));
  const auto give_up = Clock::now() + 20s;
  while (took.size() < sent.size() && Clock::now() < give_up) {
    collect_until(Clock::now() + 50ms);
  }
  ASSERT_EQ(took.size(), sent.size()) << "answers missing";
  const double measured_until =
      std::chrono::duration<double, std::milli>(sent["own"] - flood_start).count();
  std::vector<double> pings;
  for (int i = 0; i < kPings; ++i) pings.push_back(took["p" + std::to_string(i)]);
  const double own_ms = took["own"];

  // Every lookup of the flood is answered, in order.
  for (int i = 0; i < kFlood;) {
    auto r = wf->ReceiveJson(20s);
    ASSERT_TRUE(r.has_value()) << "flood answer " << i << " missing; closed " << wf->closed()
                               << "; log:\n"
                               << node.Log();
    if ((*r)["op"] == "event") continue;
    EXPECT_EQ((*r)["op"], "ok") << json::serialize(*r);
    EXPECT_EQ(Str(*r, "rid"), "f" + std::to_string(i));
    ++i;
  }
  const double flood_ms = MsSince(flood_start);

  const double p50 = Median(pings);
  const double worst = *std::max_element(pings.begin(), pings.end());
  std::printf(
      "flood of %d reads: %.0f ms; other client's ping p50 %.1f ms, slowest %.1f ms; "
      "its own lookup %.1f ms (all sent within the first %.0f ms)\n",
      kFlood, flood_ms, p50, worst, own_ms, measured_until);
  // The measurements were sent while the flood lasted, or they prove nothing.
  EXPECT_GT(flood_ms, measured_until);
  EXPECT_LT(p50, 50) << "a ping waits behind another client's reads";
  EXPECT_LT(own_ms, 500) << "a read waits behind another client's reads";
}

}  // namespace
}  // namespace parley::test
