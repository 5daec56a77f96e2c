#include "core/session/fairness.hpp"

#include <gtest/gtest.h>

#include "core/rate_limit.hpp"

namespace parley::core {
namespace {

TEST(WriteShare, EachUserHasItsOwnShareOfWritesInFlight) {
  WriteShare share(2);
  EXPECT_TRUE(share.Acquire(1));
  EXPECT_TRUE(share.Acquire(1));
  EXPECT_FALSE(share.Acquire(1));  // user 1 is at its share
  EXPECT_TRUE(share.Acquire(2));   // another user is not held back by it
  EXPECT_EQ(share.InFlight(1), 2u);
  share.Release(1);
  EXPECT_EQ(share.InFlight(1), 1u);
  EXPECT_TRUE(share.Acquire(1));
  share.Release(1);
  share.Release(1);
  share.Release(2);
  EXPECT_EQ(share.InFlight(1), 0u);
  EXPECT_EQ(share.InFlight(2), 0u);
  share.Release(3);  // nothing to release: harmless
  EXPECT_EQ(share.InFlight(3), 0u);
}

TEST(WriteShare, ZeroMeansNoCap) {
  WriteShare share(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(share.Acquire(7));
  EXPECT_EQ(share.InFlight(7), 1000u);
}

TEST(TokenBucket, CostIsTheWorkAndACostAboveTheBurstIsTheBurst) {
  TokenBucket bucket(10, 40);  // 10 a second, 40 at most
  EXPECT_EQ(bucket.Take("d", 100.0, 30), 0.0);
  const double wait = bucket.Take("d", 100.0, 30);  // 10 left: 20 missing at 10/s
  EXPECT_NEAR(wait, 2.0, 1e-9);
  EXPECT_EQ(bucket.Take("d", 102.0, 30), 0.0);
  // A cost above the burst empties a full bucket instead of never passing.
  EXPECT_EQ(bucket.Take("e", 100.0, 1000), 0.0);
  EXPECT_GT(bucket.Take("e", 100.0, 1), 0.0);
  EXPECT_EQ(bucket.Take("e", 104.0, 1000), 0.0);
}

// A cost learnt after the fact (a group change that looked like a no-op but
// changed something) is charged even from an empty bucket: the debt, at most
// one burst, is refused until it has refilled.
TEST(TokenBucket, ACostChargedAfterTheFactIsADebt) {
  TokenBucket bucket(10, 40);
  EXPECT_EQ(bucket.Take("d", 100.0, 40), 0.0);
  bucket.Charge("d", 100.0, 20);
  EXPECT_NEAR(bucket.Take("d", 100.0, 1), 2.1, 1e-9);  // 20 owed, then 1
  EXPECT_EQ(bucket.Take("d", 102.2, 1), 0.0);
  // Never deeper than one burst.
  bucket.Charge("e", 100.0, 1000);
  bucket.Charge("e", 100.0, 1000);
  EXPECT_NEAR(bucket.Take("e", 100.0, 1), 4.1, 1e-9);  // from -40 to 1
  // No limit, no debt.
  TokenBucket open(0, 0);
  open.Charge("d", 100.0, 1000);
  EXPECT_EQ(open.Take("d", 100.0, 1), 0.0);
}

}  // namespace
}  // namespace parley::core
