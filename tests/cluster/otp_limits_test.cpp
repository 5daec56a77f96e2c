// The sign-in limits that guard cost and abuse hold across the nodes of a
// cluster (issue 14, item 6; src/core/otp_limits.hpp): codes per phone and
// the global cap on codes sent (SMS pumping) are counted once for the
// cluster, in Redis, not once per node.
#include <gtest/gtest.h>

#include "integration/helpers.hpp"
#include "support/cluster.hpp"

namespace parley::test {
namespace {

HttpResult AskCode(Cluster& c, std::size_t node, const std::string& phone) {
  return PostJson(c.node(node), "/v1/auth/otp", {{"phone", phone}});
}

TEST(ClusterOtpLimits, CodesPerPhoneAndInAllAreCountedOnceForTheCluster) {
  // 3 codes per phone (the default), 5 codes a minute in all.
  Cluster c({.nodes = 2, .args = {"--otp-global-per-minute", "5"}});
  ASSERT_TRUE(c.Start());
  const std::string p1 = NextPhone();
  EXPECT_EQ(AskCode(c, 0, p1).status, 202);
  EXPECT_EQ(AskCode(c, 1, p1).status, 202);
  EXPECT_EQ(AskCode(c, 0, p1).status, 202);
  // The fourth code for the phone, on the node that sent only one.
  auto fourth = AskCode(c, 1, p1);
  EXPECT_EQ(fourth.status, 429) << fourth.body;
  EXPECT_EQ(fourth.ErrorCode(), "rate_limited");
  EXPECT_TRUE(fourth.headers.contains("retry-after"));
  EXPECT_EQ(AskCode(c, 0, p1).status, 429);

  // Two more phones reach the cap of 5 in all (refused codes did not count).
  EXPECT_EQ(AskCode(c, 1, NextPhone()).status, 202);
  EXPECT_EQ(AskCode(c, 0, NextPhone()).status, 202);
  // The sixth code of the minute, on either node: each node sent fewer
  // than 5 itself.
  for (std::size_t node : {0u, 1u}) {
    auto over = AskCode(c, node, NextPhone());
    EXPECT_EQ(over.status, 429) << "node " << node << ": " << over.body;
    EXPECT_EQ(over.ErrorCode(), "rate_limited");
  }
}

// Codes a node issued while the bus was down are counted by the node alone
// (Redis never saw them); once the bus is back, the node's own count still
// applies, so the phone does not get its budget again. Before, the fourth
// code went through on Redis's count of zero.
TEST(ClusterOtpLimits, CodesIssuedWhileTheBusWasDownStillCountOnceItIsBack) {
  Cluster c({.nodes = 1});
  ASSERT_TRUE(c.Start());
  c.KillRedis();
  ASSERT_TRUE(c.WaitReady(0, 503));
  const std::string phone = NextPhone();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(AskCode(c, 0, phone).status, 202);
  ASSERT_TRUE(c.StartRedis());
  ASSERT_TRUE(c.WaitReady(0, 200));
  auto fourth = AskCode(c, 0, phone);
  EXPECT_EQ(fourth.status, 429) << fourth.body;
  EXPECT_EQ(fourth.ErrorCode(), "rate_limited");
}

}  // namespace
}  // namespace parley::test
