#include "common/fifo.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace parley {
namespace {

TEST(FifoTest, KeepsOrderThroughCompactionAndReuse) {
  Fifo<std::unique_ptr<int>> q;
  EXPECT_TRUE(q.empty());
  int next_in = 0, next_out = 0;
  // Pushes run ahead of pops so that the head passes the compaction point
  // many times with items still queued.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 97; ++i) q.push_back(std::make_unique<int>(next_in++));
    for (int i = 0; i < 90; ++i) {
      ASSERT_FALSE(q.empty());
      ASSERT_EQ(*q.front(), next_out++);
      q.pop_front();
    }
    EXPECT_EQ(q.size(), static_cast<std::size_t>(next_in - next_out));
    EXPECT_EQ(*q.back(), next_in - 1);
  }
  while (!q.empty()) {
    ASSERT_EQ(*q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
  q.push_back(std::make_unique<int>(7));
  EXPECT_EQ(*q.front(), 7);
}

TEST(FifoTest, PopBackAndClear) {
  Fifo<std::string> q;
  q.push_back("a");
  q.push_back("b");
  q.push_back("c");
  q.pop_front();
  q.pop_back();
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.front(), "b");
  q.pop_back();
  EXPECT_TRUE(q.empty());
  q.push_back("d");
  EXPECT_EQ(q.front(), "d");
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace parley
