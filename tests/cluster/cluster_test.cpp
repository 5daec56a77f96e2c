// Several parleyd as one service (PROTOCOL.md section 8): real nodes on one
// throwaway PostgreSQL and one redis-server (support/cluster.hpp), each
// client on a different node.
#include <thread>

#include "integration/helpers.hpp"
#include "support/cluster.hpp"

namespace parley::test {
namespace {

TEST(Cluster, HarnessStartsNodesThatShareStoreAndBus) {
  Cluster c({.nodes = 2});
  ASSERT_TRUE(c.Start());
  EXPECT_EQ(Http(c.endpoint(1), "GET", "/health").Json().at("node"), "n2");
  // A token issued by one node is accepted by the other (one store).
  Account a = SignIn(c.node(0), NextPhone());
  EXPECT_TRUE(Connect(c.node(1), a));
  // A restarted node keeps its port and id.
  const auto port = c.endpoint(0).port;
  c.Kill(0);
  ASSERT_TRUE(c.Restart(0));
  EXPECT_EQ(c.endpoint(0).port, port);
  EXPECT_EQ(Http(c.endpoint(0), "GET", "/health").Json().at("node"), "n1");
  // Redis down: /ready 503; back: 200.
  c.KillRedis();
  EXPECT_TRUE(c.WaitReady(1, 503, 10s));
  ASSERT_TRUE(c.StartRedis());
  EXPECT_TRUE(c.WaitReady(1, 200, 10s));
  // A paused node answers nothing; resumed, it answers again.
  ASSERT_TRUE(c.Pause(1));
  EXPECT_EQ(Http(c.endpoint(1), "GET", "/health", "", {}, 500ms).status, 0);
  ASSERT_TRUE(c.Resume(1));
  EXPECT_EQ(Http(c.endpoint(1), "GET", "/health").status, 200);
}

}  // namespace
}  // namespace parley::test
