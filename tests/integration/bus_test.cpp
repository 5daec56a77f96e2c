// parleyd with a bus (PROTOCOL.md section 8): --node-id and /health, /ready
// following the bus, the node id claim, the bus counters in /metrics. Real
// parleyd processes and a real redis-server on free ports.
#include <thread>

#include "integration/helpers.hpp"
#include "support/redis_server.hpp"

namespace parley::test {
namespace {

int Ready(const Parleyd& server) { return Http(server.endpoint(), "GET", "/ready").status; }

// Polls /ready until it answers `status` (or `within` passes).
bool WaitReady(const Parleyd& server, int status, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Ready(server) == status) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST(Bus, HealthAnswersTheNodeIdGivenOrAGeneratedOne) {
  Parleyd named({.args = {"--node-id", "eu-1"}});
  ASSERT_TRUE(named.Start());
  auto h = Http(named.endpoint(), "GET", "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Json().at("node"), "eu-1");

  Parleyd unnamed({.args = {"--bus", "none"}});
  ASSERT_TRUE(unnamed.Start());
  const std::string g(Http(unnamed.endpoint(), "GET", "/health").Json().at("node").as_string());
  EXPECT_TRUE(g.starts_with("node-")) << g;
  EXPECT_EQ(Ready(unnamed), 200);
}

TEST(Bus, BadBusUrlsStopTheStart) {
  Parleyd server({.args = {"--bus", "redis://h:99999"}});
  EXPECT_FALSE(server.Start());
  EXPECT_NE(server.Log().find("bus"), std::string::npos) << server.Log();
}

TEST(Bus, ReadyFollowsTheBus) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  const auto url = redis.url();
  redis.Kill();  // not there at start
  Parleyd server({.args = {"--bus", url, "--node-id", "ready-1"}});
  ASSERT_TRUE(server.Start());  // the node starts anyway
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
  EXPECT_EQ(Ready(server), 503);
  ASSERT_TRUE(redis.Start());  // same port
  EXPECT_TRUE(WaitReady(server, 200, 10s));
  // It claimed its id once the bus was there.
  EXPECT_NE(redis.Command({"GET", "nid:ready-1"}).find("$16"), std::string::npos);

  redis.Kill();
  EXPECT_TRUE(WaitReady(server, 503, 10s));
  ASSERT_TRUE(redis.Start());
  EXPECT_TRUE(WaitReady(server, 200, 10s));
  // Still serving throughout.
  Account a = SignIn(server, NextPhone());
  EXPECT_TRUE(Connect(server, a));
}

TEST(Bus, ANodeIdInUseByALiveNodeIsRefusedAndTakenOverOnceItIsDead) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  Parleyd first({.args = {"--bus", redis.url(), "--node-id", "n1"}});
  ASSERT_TRUE(first.Start());
  ASSERT_TRUE(WaitReady(first, 200, 10s));

  Parleyd second({.args = {"--bus", redis.url(), "--node-id", "n1"}});
  EXPECT_FALSE(second.Start());
  const std::string log = second.Log();
  EXPECT_NE(log.find("node id n1 is in use by a live node"), std::string::npos) << log;

  first.Kill();  // SIGKILL: it releases nothing, its bus connections close
  ASSERT_TRUE(second.Start());
  EXPECT_TRUE(WaitReady(second, 200, 10s));
  EXPECT_EQ(Http(second.endpoint(), "GET", "/health").Json().at("node"), "n1");
}

TEST(Bus, MetricsCountBusTraffic) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start());
  Parleyd server({.args = {"--bus", redis.url()}});
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(WaitReady(server, 200, 10s));
  const std::string m = Http(server.endpoint(), "GET", "/metrics").body;
  for (const char* name : {"parley_bus_published_total", "parley_bus_received_total",
                           "parley_bus_dropped_total", "parley_bus_reconnects_total"}) {
    EXPECT_NE(m.find(name), std::string::npos) << name;
  }
  EXPECT_NE(m.find("parley_bus_connected 1"), std::string::npos) << m;
  // Garbage on the presence channel, which every node hears, is counted.
  redis.Command({"PUBLISH", "presence", "garbage"});
  bool counted = false;
  for (int i = 0; i < 100 && !counted; ++i) {
    counted = Http(server.endpoint(), "GET", "/metrics").body.find("parley_bus_dropped_total 1") !=
              std::string::npos;
    if (!counted) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(counted);
  EXPECT_EQ(Ready(server), 200);
}

}  // namespace
}  // namespace parley::test
