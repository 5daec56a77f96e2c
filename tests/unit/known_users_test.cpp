#include "core/account/known_users.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>

namespace parley::core {
namespace {

TEST(KnownUsers, KnowsOnlyWhatWasRemembered) {
  KnownUsers known;
  EXPECT_FALSE(known.Contains(42));
  known.Remember(42);
  EXPECT_TRUE(known.Contains(42));
  EXPECT_FALSE(known.Contains(43));
}

TEST(KnownUsers, IdZeroIsNeverKnown) {
  KnownUsers known;
  EXPECT_FALSE(known.Contains(0));  // an empty slot holds 0
  known.Remember(0);
  EXPECT_FALSE(known.Contains(0));
}

TEST(KnownUsers, AnotherIdInTheSameSlotPushesTheFirstOut) {
  // More ids than slots: whatever is still claimed is one that was
  // remembered, and ids never remembered are never claimed.
  KnownUsers known;
  const std::uint64_t base = std::uint64_t{1} << 40;
  for (std::uint64_t i = 0; i < 3 * KnownUsers::kSlots; i += 3) known.Remember(base + i);
  std::size_t kept = 0;
  for (std::uint64_t i = 0; i < 3 * KnownUsers::kSlots; ++i) {
    if (!known.Contains(base + i)) continue;
    EXPECT_EQ(i % 3, 0u) << "never remembered: " << base + i;
    ++kept;
  }
  EXPECT_GT(kept, KnownUsers::kSlots / 2);  // the hash spreads them
  EXPECT_LE(kept, KnownUsers::kSlots);
}

}  // namespace
}  // namespace parley::core
