// Group commit for the RocksDB store.
//
// Every write is a job queued to one writer thread. The writer takes what is
// queued (at most kMaxJobsPerCommit, so one commit's latency stays bounded),
// runs the jobs in order against one WriteBatchWithIndex, commits that batch
// with a single DB::Write (one fsync for all of them), and only then invokes
// the jobs' callbacks, in order.
//
// * A job reads through WriteTxn, which sees the database plus what earlier
//   jobs of the same batch wrote (GetFromBatchAndDB), so jobs behave as if
//   committed one by one in submission order.
// * Each job runs under its own save point: a job that fails, or that asks
//   for its writes to be discarded (an outcome such as "device limit" that
//   must change nothing), is rolled back without touching its neighbours.
// * If the commit itself fails, nothing of the batch was applied and every
//   job of it gets that error.
// * A BatchObserver keeps writer-side state that is not in the batch (the
//   mailbox heads that jobs allocate seqs from, the cached groups) in step
//   with it: told when each job is kept or rolled back, and whether the
//   batch committed, before any callback runs.
// * Reads do not go through here: they hit the database directly.
// * No exception ends the writer thread: a job whose body throws fails alone
//   (kInternal, rolled back) and a callback that throws is logged; the
//   writer goes on with the next.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::store::rocks {

inline constexpr std::size_t kMaxJobsPerCommit = 1024;
// Beyond this many queued writes the store answers kUnavailable instead of
// growing without bound behind a slow disk.
inline constexpr std::size_t kMaxQueuedJobs = 1 << 16;

// The committed values of a few small, hot column families (a device's row,
// its cursor, a user's state: read and rewritten by every ack), kept by the
// writer so that a job's point read of them is a hash lookup rather than a
// memtable walk. Writer thread only. It holds committed values only: filled
// from database reads (nothing else writes while a batch is built) and
// updated from each batch once that batch has committed. Absent keys are
// cached too. Past kMaxEntries a family's map starts over.
class CommittedCache {
 public:
  static constexpr std::size_t kMaxEntries = 1 << 17;
  using Map = std::unordered_map<std::string, std::optional<std::string>>;

  void Cache(rocksdb::ColumnFamilyHandle* cf) { maps_.emplace(cf->GetID(), Map{}); }
  // The map of a cached family, or null.
  Map* For(std::uint32_t cf_id) {
    auto it = maps_.find(cf_id);
    return it == maps_.end() ? nullptr : &it->second;
  }
  void Fill(Map& map, std::string_view key, std::optional<std::string> value);
  // After `batch` committed: its writes to cached families become the values.
  void Committed(rocksdb::WriteBatch* batch);

 private:
  std::unordered_map<std::uint32_t, Map> maps_;
};

// A job's view of the database: committed data plus earlier jobs' writes in
// the current batch.
class WriteTxn {
 public:
  WriteTxn(rocksdb::DB* db, rocksdb::WriteBatchWithIndex* batch, CommittedCache* cache = nullptr)
      : db_(db), batch_(batch), cache_(cache) {}

  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* cf, std::string_view key);
  Status Put(rocksdb::ColumnFamilyHandle* cf, std::string_view key, std::string_view value);
  Status Delete(rocksdb::ColumnFamilyHandle* cf, std::string_view key);
  // Calls visit(key, value) for each key starting with `prefix`, in key
  // order, until it returns false.
  Status ScanPrefix(rocksdb::ColumnFamilyHandle* cf, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& visit);
  // A forward iterator over the database plus the batch. `ro` (and the bounds
  // it points to) must outlive it; callers check the bounds themselves too.
  std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf,
                                                 const rocksdb::ReadOptions& ro);

  // Rolls the current job's writes back although it succeeds.
  void Discard() { discard_ = true; }
  bool discarded() const { return discard_; }
  void ResetForNextJob() { discard_ = false; }

 private:
  // Whether this batch wrote (or deleted) the key.
  bool InBatch(rocksdb::ColumnFamilyHandle* cf, std::string_view key);
  // A committed value: the cache, else the database (then cached).
  Result<std::optional<std::string>> CachedGet(rocksdb::ColumnFamilyHandle* cf,
                                               CommittedCache::Map& map, std::string_view key);

  rocksdb::DB* db_;
  rocksdb::WriteBatchWithIndex* batch_;
  CommittedCache* cache_;
  bool discard_ = false;
};

class WriteJob {
 public:
  explicit WriteJob(std::string_view op) : op_(op), submitted_(MonoSeconds()) {}
  virtual ~WriteJob() = default;

  // Runs inside the batch; false means "roll my writes back".
  virtual bool Apply(WriteTxn& txn) = 0;
  // After the commit: delivers the job's result, or `commit`'s error.
  virtual void Finish(const Status& commit) = 0;

  std::string_view op() const { return op_; }
  double submitted() const { return submitted_; }

 private:
  std::string_view op_;  // a literal
  double submitted_;
};

// A job made of a body `Result<T>(WriteTxn&)` and the caller's callback.
template <class T, class F>
class FnJob final : public WriteJob {
 public:
  FnJob(std::string_view op, F body, Callback<T> done)
      : WriteJob(op), body_(std::move(body)), done_(std::move(done)) {}

  bool Apply(WriteTxn& txn) override {
    // A body that throws fails its own job only (rolled back, kInternal).
    try {
      result_.emplace(body_(txn));
    } catch (const std::exception& e) {
      result_.emplace(Fail(Errc::kInternal, std::string("write threw: ") + e.what()));
    } catch (...) {
      result_.emplace(Fail(Errc::kInternal, "write threw"));
    }
    return result_->has_value() && !txn.discarded();
  }

  void Finish(const Status& commit) override {
    if (!done_) return;
    if (!commit) {
      done_(std::unexpected(commit.error()));
    } else if (!result_) {
      done_(Fail(Errc::kInternal, "write was not run"));
    } else {
      done_(std::move(*result_));
    }
  }

 private:
  F body_;
  Callback<T> done_;
  std::optional<Result<T>> result_;
};

class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // After each job: kept, or rolled back (its effects must vanish).
  virtual void JobDone(bool kept) = 0;
  // After the commit (or its failure, or a batch that was abandoned), before
  // the callbacks.
  virtual void BatchDone(bool committed) = 0;
};

// Several observers behind the writer's one slot, told in order.
class BatchObservers final : public BatchObserver {
 public:
  explicit BatchObservers(std::vector<BatchObserver*> all) : all_(std::move(all)) {}
  void JobDone(bool kept) override {
    for (auto* o : all_) o->JobDone(kept);
  }
  void BatchDone(bool committed) override {
    for (auto* o : all_) o->BatchDone(committed);
  }

 private:
  std::vector<BatchObserver*> all_;
};

template <class T, class F>
std::unique_ptr<WriteJob> MakeJob(std::string_view op, F body, Callback<T> done) {
  return std::make_unique<FnJob<T, F>>(op, std::move(body), std::move(done));
}

class GroupWriter {
 public:
  // `batches` (optional) must outlive the writer. `priority`: nice steps the
  // writer thread takes ahead of the process's other threads while writes
  // queue up behind it (0: never; a negative value puts it behind them
  // instead). Every write waits for this one thread, so on a busy machine it
  // is the queue; when the process may not raise a thread's priority, the
  // writer stays at the default and says so once.
  GroupWriter(rocksdb::DB* db, bool sync, StoreObserver observer, BatchObserver* batches = nullptr,
              int priority = 0);
  ~GroupWriter();
  GroupWriter(const GroupWriter&) = delete;
  GroupWriter& operator=(const GroupWriter&) = delete;

  // Point reads of `cf` go through the writer's CommittedCache. Call before
  // the first Submit.
  void CacheFamily(rocksdb::ColumnFamilyHandle* cf) { cache_.Cache(cf); }

  // Queues the job. After Close, or with the queue full, finishes it at once
  // with kUnavailable on the calling thread.
  void Submit(std::unique_ptr<WriteJob> job);

  // Runs what is queued, delivers its callbacks and stops the thread.
  // Idempotent. Called from a callback it cannot wait for itself, so it only
  // stops intake and lets the destructor join.
  void Close();

 private:
  // While at least kAheadFromJobs writes wait at the start of a batch the
  // writer runs `priority` steps ahead; once fewer than kBehindBelowJobs do,
  // at the default again. Ahead all the time it would preempt each thread
  // that queues a write and commit nearly every write on its own: a connect
  // storm, whose writes never queue up, ran 19% slower that way.
  static constexpr std::size_t kAheadFromJobs = 128;
  static constexpr std::size_t kBehindBelowJobs = 32;
  void Prioritize(std::size_t queued);
  void Run();
  void RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs);
  void Observe(std::string_view op, double seconds) const;

  rocksdb::DB* db_;
  int priority_;
  // Writer thread only.
  int inherited_nice_ = 0;
  bool ahead_ = false;
  bool priority_failed_ = false;
  rocksdb::WriteOptions write_options_;
  StoreObserver observer_;
  BatchObserver* batches_;
  rocksdb::WriteBatchWithIndex batch_;  // writer thread only
  CommittedCache cache_;                // writer thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WriteJob>> queue_;
  bool closed_ = false;

  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace parley::store::rocks
