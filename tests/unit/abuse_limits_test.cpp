#include "core/account/abuse_limits.hpp"

#include <gtest/gtest.h>

namespace parley::core {
namespace {

TEST(OtpBurnsTest, AFreshCodeFollowsEachBurnAfterADelayThatDoubles) {
  OtpBurns burns(30);
  const std::string phone = "+15550001111";
  EXPECT_LT(burns.FreshCodeAfter(phone, 0), 0) << "no burn, nothing to answer";
  burns.Burned(phone, 100);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 100), 30);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 120), 10);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 200), 0);
  // More wrong guesses at the same burned code are not another burn.
  burns.Burned(phone, 150);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 200), 0);
  burns.Issued(phone);
  EXPECT_LT(burns.FreshCodeAfter(phone, 200), 0);
  // The second burn of the day waits twice as long, the third four times.
  burns.Burned(phone, 300);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 300), 60);
  burns.Issued(phone);
  burns.Burned(phone, 400);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 400), 120);
  // Capped at an hour.
  for (int i = 0; i < 10; ++i) {
    burns.Issued(phone);
    burns.Burned(phone, 500 + i);
  }
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 509), 3600);
  // A day later the count starts over.
  burns.Issued(phone);
  burns.Burned(phone, 100 + 86400 + 1);
  EXPECT_DOUBLE_EQ(burns.FreshCodeAfter(phone, 100 + 86400 + 1), 30);
  // Phones are independent.
  EXPECT_LT(burns.FreshCodeAfter("+15550002222", 0), 0);
}

}  // namespace
}  // namespace parley::core
