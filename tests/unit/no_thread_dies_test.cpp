// No thread dies by an exception (issue 14, item 12): the store's writer and
// the worker pools catch what a job or a callback throws, fail that job and
// go on with the next.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "media/worker_pool.hpp"
#include "store/rocksdb/group_writer.hpp"
#include "store/rocksdb/schema.hpp"
#include "unit/store_contract.hpp"

namespace parley::store::testing {
namespace {

using namespace std::chrono_literals;

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = "/tmp/parley-nodie-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::optional<std::string> Read(rocks::Database& db, const std::string& key) {
  std::string value;
  auto s = db.db()->Get(rocksdb::ReadOptions(), db.cf(rocks::Cf::kMeta), key, &value);
  if (!s.ok()) return std::nullopt;
  return value;
}

TEST(NoThreadDies, TheStoreWriterSurvivesAJobThatThrowsAndACallbackThatThrows) {
  ScratchDir dir;
  auto db = rocks::Database::Open(dir.path() + "/db", false);
  ASSERT_TRUE(db.has_value()) << db.error().message;
  auto* meta = (*db)->cf(rocks::Cf::kMeta);
  rocks::GroupWriter writer((*db)->db(), false, nullptr);

  // A job that writes, then throws: it fails alone, and its write is undone.
  Pending<int> thrown;
  writer.Submit(rocks::MakeJob<int>(
      "throws",
      [meta](rocks::WriteTxn& txn) -> Result<int> {
        if (auto s = txn.Put(meta, "nodie-a", "x"); !s) return std::unexpected(s.error());
        throw std::runtime_error("boom in a job");
      },
      thrown.callback()));
  // A callback that throws.
  std::promise<void> threw;
  writer.Submit(rocks::MakeJob<int>(
      "callback throws", [](rocks::WriteTxn&) -> Result<int> { return 1; },
      Callback<int>([&threw](Result<int>) {
        threw.set_value();
        throw std::runtime_error("boom in a callback");
      })));
  // And the writer goes on.
  Pending<int> after;
  writer.Submit(rocks::MakeJob<int>(
      "after",
      [meta](rocks::WriteTxn& txn) -> Result<int> {
        if (auto s = txn.Put(meta, "nodie-b", "y"); !s) return std::unexpected(s.error());
        return 2;
      },
      after.callback()));

  auto r = thrown.Get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInternal);
  EXPECT_NE(r.error().message.find("boom in a job"), std::string::npos) << r.error().message;
  EXPECT_EQ(threw.get_future().wait_for(10s), std::future_status::ready);
  auto a = after.Get();
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(*a, 2);
  EXPECT_EQ(Read(**db, "nodie-a"), std::nullopt);
  EXPECT_EQ(Read(**db, "nodie-b"), std::optional<std::string>("y"));
}

TEST(NoThreadDies, AWorkerPoolSurvivesATaskThatThrows) {
  media::WorkerPool pool(1, "nodie-test");
  pool.Post([] { throw std::runtime_error("boom in a task"); });
  pool.Post([] { throw 42; });
  std::promise<void> ran;
  pool.Post([&ran] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(10s), std::future_status::ready);
}

}  // namespace
}  // namespace parley::store::testing
