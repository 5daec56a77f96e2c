// A presence transition heard on the bus must not hold up the bus's
// callback thread, which carries every other node's wakes too (issue 13):
// telling local subscribers reads the user from the store (its last_seen
// visibility), a round trip to PostgreSQL, so it runs on the read pool.
//
// Node 1 reaches PostgreSQL through a relay that adds a slow network's
// delay (support/delay_relay.hpp); a watcher on node 1 follows the presence
// of many users who all come online on node 0 at once, and right after
// that a message is sent to the watcher through node 0. Its live delivery
// (a wake carrying the rendered event: no read) must not wait behind one
// store read per presence transition.
#include <thread>

#include "integration/helpers.hpp"
#include "support/cluster.hpp"

namespace parley::test {
namespace {

using Clock = std::chrono::steady_clock;

TEST(ClusterPresence, TransitionsFromAnotherNodeDoNotHoldUpItsWakes) {
  constexpr std::size_t kWatched = 20;
  constexpr auto kOneWay = 100ms;  // each store round trip of node 1: 200 ms or more
  Cluster cluster({.nodes = 2,
                   .args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0",
                            "--max-connections-per-address", "0"},
                   .balancer = false,
                   .store_delay = {0ms, kOneWay}});
  ASSERT_TRUE(cluster.Start());
  Account watcher = SignIn(cluster.node(0), NextPhone());
  Account sender = SignIn(cluster.node(0), NextPhone());
  std::vector<Account> watched;
  json::array ids;
  for (std::size_t i = 0; i < kWatched; ++i) {
    watched.push_back(SignIn(cluster.node(0), NextPhone()));
    ids.push_back(json::value(watched.back().user_id));
  }
  auto ww = Connect(cluster.node(1), watcher);
  auto ws = Connect(cluster.node(0), sender);
  ASSERT_TRUE(ww && ws);
  auto sub = ww->Request({{"op", "presence.subscribe"}, {"users", ids}}, 20s);
  ASSERT_TRUE(sub);
  ASSERT_EQ((*sub)["op"], "ok") << json::serialize(*sub);

  // Every watched user comes online on node 0 at once: kWatched
  // transitions reach node 1's bus thread together.
  std::vector<std::unique_ptr<WsClient>> online(kWatched);
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < kWatched; ++i) {
      threads.emplace_back([&, i] { online[i] = Connect(cluster.node(0), watched[i]); });
    }
    for (auto& t : threads) t.join();
  }
  for (const auto& w : online) ASSERT_TRUE(w);
  // Node 0 publishes a transition once the registry answered, which may
  // come after the hello's answer: let all of them reach node 1 first.
  std::this_thread::sleep_for(1s);
  auto sent = SendText(*ws, watcher.user_id, "behind the presence changes");
  ASSERT_TRUE(sent);
  ASSERT_EQ((*sent)["op"], "ok") << json::serialize(*sent);
  const auto answered = Clock::now();
  auto e = NextEventOfType(*ww, "message", 10s);
  ASSERT_TRUE(e) << "the message never arrived";
  const auto waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - answered);
  // One read per transition on the bus thread would hold the wake back by
  // up to kWatched x 200 ms (4 s, less the second waited); off that thread
  // it comes at once. The margin is wide: what is checked is "not queued
  // behind the reads".
  EXPECT_LT(waited, 1500ms) << "the wake waited behind the presence transitions";

  // And the watcher heard every transition.
  std::set<std::string> came;
  const auto until = Clock::now() + 15s;
  while (came.size() < kWatched && Clock::now() < until) {
    auto p = ww->ReceiveOp("presence", 1s);
    if (p && (*p).at("online").as_bool()) came.insert(Str(*p, "user"));
  }
  EXPECT_EQ(came.size(), kWatched);
}

}  // namespace
}  // namespace parley::test
