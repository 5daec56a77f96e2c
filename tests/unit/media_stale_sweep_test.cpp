// The stale-upload sweep resumes where the last one left off (issue 14,
// item 7), against a real RocksDB store.
#include "core/media/media_stale_sweep.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <set>
#include <string>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "store/rocksdb/rocksdb_store.hpp"

namespace parley::core {
namespace {

using store::Media;
using store::MediaId;
using store::MediaStatus;

constexpr std::int64_t kDayMs = 86400000;

class StaleSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/parley-sweep-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::OpenRocksStore({.path = dir_ + "/db"});
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Put(MediaId id, MediaStatus status, std::int64_t created_ms) {
    Media m;
    m.id = id;
    m.owner = 7;
    m.content_type = "image/png";
    m.size = 10;
    m.status = status;
    m.created_ms = created_ms;
    std::promise<bool> done;
    store_->PutMedia(m, [&](Status st) { done.set_value(st.has_value()); });
    ASSERT_TRUE(done.get_future().get());
  }
  bool Delete(MediaId id) {
    std::promise<bool> done;
    store_->DeleteMedia(id, [&](Status st) { done.set_value(st.has_value()); });
    return done.get_future().get();
  }
  // One sweep; `busy` are left (as if being written).
  StaleSweepResult Sweep(std::int64_t cutoff, MediaId mark, const std::set<MediaId>& busy = {}) {
    seen_.clear();
    return RunStaleSweep(*store_, cutoff, mark, 2, [&](const Media& m) {
      seen_.push_back(m.id);
      return !busy.contains(m.id) && Delete(m.id);
    });
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::vector<MediaId> seen_;
};

TEST_F(StaleSweepTest, TheNextSweepStartsWhereTheLastLeftOff) {
  const std::int64_t now = NowMs();
  const std::int64_t old_ms = now - 3 * kDayMs;
  const std::int64_t cutoff = now - kDayMs;
  // Finished media and three stale uploads, all old; one young upload.
  for (MediaId i = 1; i <= 20; ++i)
    Put(IdFloorForTime(old_ms) + i * 10, MediaStatus::kReady, old_ms);
  const MediaId a = IdFloorForTime(old_ms) + 15;
  const MediaId b = IdFloorForTime(old_ms) + 55;
  const MediaId c = IdFloorForTime(old_ms) + 95;
  const MediaId young = IdFloorForTime(now) + 5;
  for (MediaId id : {a, b, c}) Put(id, MediaStatus::kUploading, old_ms);
  Put(young, MediaStatus::kUploading, now);

  // b is busy: a and c go (in batches of 2); the mark stays below b.
  auto first = Sweep(cutoff, 0, {b});
  EXPECT_FALSE(first.failed);
  EXPECT_EQ(first.removed, 2u);
  EXPECT_EQ(seen_, (std::vector<MediaId>{a, b, c}));
  EXPECT_EQ(first.mark, b - 1);

  // The next sweep starts just below b, removes it, and then its mark is the
  // floor a minute before the cutoff: everything below was looked at.
  auto second = Sweep(cutoff, first.mark);
  EXPECT_EQ(second.removed, 1u);
  EXPECT_EQ(seen_, (std::vector<MediaId>{b}));
  EXPECT_EQ(second.mark, IdFloorForTime(cutoff - 60000) - 1);

  // A later sweep reads nothing below its mark; an upload that became stale
  // since (created after the last floor) is still found.
  const MediaId late = IdFloorForTime(cutoff - 30000) + 1;
  Put(late, MediaStatus::kUploading, cutoff - 30000);
  auto third = Sweep(cutoff + 1000, second.mark);
  EXPECT_EQ(seen_, (std::vector<MediaId>{late}));
  EXPECT_EQ(third.removed, 1u);
  EXPECT_GE(third.mark, second.mark);
  // The young upload was never touched.
  EXPECT_TRUE(store_->GetMedia(young).value().has_value());
}

}  // namespace
}  // namespace parley::core
