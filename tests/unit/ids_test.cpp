#include "common/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/clock.hpp"

namespace parley {
namespace {

constexpr std::int64_t kSomeMs = kIdEpochMs + 1'000'000'000;  // 2024-01-12

std::uint64_t NodeOf(std::uint64_t id) { return (id >> 12) & 1023; }
std::uint64_t CounterOf(std::uint64_t id) { return id & 4095; }

TEST(IdsTest, LayoutIsTimeNodeCounter) {
  IdGenerator gen(513, [] { return kSomeMs; });
  const auto a = gen.Next();
  const auto b = gen.Next();
  EXPECT_EQ(IdTimeMs(a), kSomeMs);
  EXPECT_EQ(NodeOf(a), 513u);
  EXPECT_EQ(CounterOf(a), 0u);
  EXPECT_EQ(CounterOf(b), 1u);
  EXPECT_EQ(a >> 22, static_cast<std::uint64_t>(kSomeMs - kIdEpochMs));
}

TEST(IdsTest, RealClockIdsCarryTheCurrentTime) {
  IdGenerator gen(1);
  const auto before = NowMs();
  const auto id = gen.Next();
  const auto after = NowMs();
  EXPECT_GE(IdTimeMs(id), before);
  EXPECT_LE(IdTimeMs(id), after);
}

TEST(IdsTest, RejectsNodeIdsFrom1024) {
  EXPECT_THROW(IdGenerator(1024), std::invalid_argument);
  EXPECT_NO_THROW(IdGenerator(1023));
}

TEST(IdsTest, StaysIncreasingWhenTheClockStepsBack) {
  std::int64_t now = kSomeMs;
  IdGenerator gen(7, [&] { return now; });
  const auto a = gen.Next();
  now -= 5000;
  const auto b = gen.Next();
  const auto c = gen.Next();
  EXPECT_GT(b, a);
  EXPECT_GT(c, b);
  EXPECT_EQ(IdTimeMs(b), kSomeMs);  // keeps the last millisecond it used
  now = kSomeMs + 1;
  const auto d = gen.Next();
  EXPECT_GT(d, c);
  EXPECT_EQ(IdTimeMs(d), kSomeMs + 1);
  EXPECT_EQ(CounterOf(d), 0u);
}

TEST(IdsTest, BorrowsTheNextMillisecondAfter4096) {
  IdGenerator gen(3, [] { return kSomeMs; });
  std::uint64_t prev = 0;
  for (int i = 0; i < 4096; ++i) {
    const auto id = gen.Next();
    EXPECT_GT(id, prev);
    EXPECT_EQ(IdTimeMs(id), kSomeMs);
    prev = id;
  }
  const auto borrowed = gen.Next();
  EXPECT_GT(borrowed, prev);
  EXPECT_EQ(IdTimeMs(borrowed), kSomeMs + 1);
  EXPECT_EQ(NodeOf(borrowed), 3u);
}

TEST(IdsTest, AClockBeforeTheEpochNeverYieldsIdZero) {
  IdGenerator gen(0, [] { return std::int64_t{0}; });
  const auto a = gen.Next();
  const auto b = gen.Next();
  EXPECT_NE(a, 0u);
  EXPECT_GT(b, a);
}

TEST(IdsTest, UniqueAndIncreasingPerThreadAcrossThreads) {
  IdGenerator gen(42);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<std::uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      got[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) got[t].push_back(gen.Next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> all;
  for (const auto& ids : got) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(IdsTest, StringRoundTrip) {
  EXPECT_EQ(IdToString(1234567890123), "1234567890123");
  EXPECT_EQ(ParseId("1234567890123"), 1234567890123u);
  EXPECT_EQ(ParseId("18446744073709551615"), 18446744073709551615u);
  IdGenerator gen(9);
  const auto id = gen.Next();
  EXPECT_EQ(ParseId(IdToString(id)), id);
}

TEST(IdsTest, ParseIsStrict) {
  for (const char* bad :
       {"", "0", "007", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "18446744073709551616",
        "99999999999999999999", "123456789012345678901"}) {
    EXPECT_EQ(ParseId(bad), std::nullopt) << bad;
  }
}

TEST(IdsTest, FloorForTimeSplitsOlderFromNewer) {
  IdGenerator gen(1023, [] { return kSomeMs; });
  const auto id = gen.Next();
  EXPECT_LT(id, IdFloorForTime(kSomeMs + 1));
  EXPECT_GE(id, IdFloorForTime(kSomeMs));
  EXPECT_EQ(IdTimeMs(IdFloorForTime(kSomeMs)), kSomeMs);
  EXPECT_EQ(IdFloorForTime(kIdEpochMs), 0u);
  EXPECT_EQ(IdFloorForTime(0), 0u);  // before the epoch: no id is older
  EXPECT_EQ(IdFloorForTime(std::numeric_limits<std::int64_t>::max()),
            std::numeric_limits<std::uint64_t>::max());
}

}  // namespace
}  // namespace parley
