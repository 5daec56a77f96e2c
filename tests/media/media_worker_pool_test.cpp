// The media worker pools outlive a task that throws (issue 14, item 12).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "media/worker_pool.hpp"

namespace parley::media {
namespace {

TEST(MediaWorkerPoolTest, ATaskThatThrowsFailsAloneAndThePoolGoesOn) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1, "test-pool");
    pool.Post([] { throw std::runtime_error("boom"); });
    pool.Post([] { throw 42; });  // not even a std::exception
    pool.Post([&] { ran.fetch_add(1); });
    pool.Post([&] { ran.fetch_add(1); });
    for (int i = 0; i < 500 && pool.pending() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(pool.pending(), 0u);
  }
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace
}  // namespace parley::media
