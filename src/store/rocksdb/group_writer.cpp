#include "store/rocksdb/group_writer.hpp"

#include <pthread.h>
#include <rocksdb/iterator.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.hpp"
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/schema.hpp"

namespace parley::store::rocks {

namespace {

// Delivers a job's result; a callback that throws is the caller's bug, and
// it must not take the writer (and every later write) down with it.
void FinishJob(WriteJob& job, const Status& commit) {
  try {
    job.Finish(commit);
  } catch (const std::exception& e) {
    PLOG_ERROR("store callback threw", "op={} error={}", job.op(), LogQuote(e.what()));
  } catch (...) {
    PLOG_ERROR("store callback threw", "op={} error=unknown", job.op());
  }
}

// Runs a job's body; a WriteJob other than FnJob may still throw.
bool ApplyJob(WriteJob& job, WriteTxn& txn) {
  try {
    return job.Apply(txn);
  } catch (const std::exception& e) {
    PLOG_ERROR("store job threw", "op={} error={}", job.op(), LogQuote(e.what()));
  } catch (...) {
    PLOG_ERROR("store job threw", "op={} error=unknown", job.op());
  }
  return false;
}

}  // namespace

void CommittedCache::Fill(Map& map, std::string_view key, std::optional<std::string> value) {
  if (map.size() >= kMaxEntries) map.clear();
  map.insert_or_assign(std::string(key), std::move(value));
}

void CommittedCache::Committed(rocksdb::WriteBatch* batch) {
  struct Apply final : rocksdb::WriteBatch::Handler {
    CommittedCache* self;
    explicit Apply(CommittedCache* c) : self(c) {}
    rocksdb::Status PutCF(std::uint32_t cf, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      if (auto* map = self->For(cf)) self->Fill(*map, key.ToStringView(), value.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(std::uint32_t cf, const rocksdb::Slice& key) override {
      if (auto* map = self->For(cf)) self->Fill(*map, key.ToStringView(), std::nullopt);
      return rocksdb::Status::OK();
    }
  } apply(this);
  if (maps_.empty()) return;
  // Any other kind of record (the store writes none) fails the iteration,
  // and forgetting everything is always correct.
  if (!batch->Iterate(&apply).ok()) {
    for (auto& [id, map] : maps_) map.clear();
  }
}

bool WriteTxn::InBatch(rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
  std::unique_ptr<rocksdb::WBWIIterator> it(batch_->NewIterator(cf));
  it->Seek(key);
  return it->Valid() && it->Entry().key.ToStringView() == key;
}

Result<std::optional<std::string>> WriteTxn::CachedGet(rocksdb::ColumnFamilyHandle* cf,
                                                       CommittedCache::Map& map,
                                                       std::string_view key) {
  if (auto hit = map.find(std::string(key)); hit != map.end()) return hit->second;
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf, key, &value);
  std::optional<std::string> found;
  if (s.ok()) {
    found = std::move(value);
  } else if (!s.IsNotFound()) {
    return std::unexpected(FromRocks(s, "read"));
  }
  cache_->Fill(map, key, found);
  return found;
}

Result<std::optional<std::string>> WriteTxn::Get(rocksdb::ColumnFamilyHandle* cf,
                                                 std::string_view key) {
  // A cached family's key this batch has not written: the cache, or the
  // database through it. Everything else: the batch over the database.
  if (cache_ != nullptr) {
    if (auto* map = cache_->For(cf->GetID()); map != nullptr && !InBatch(cf, key)) {
      return CachedGet(cf, *map, key);
    }
  }
  std::string value;
  auto s = batch_->GetFromBatchAndDB(db_, rocksdb::ReadOptions(), cf, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return std::unexpected(FromRocks(s, "read"));
  return std::optional<std::string>(std::move(value));
}

Status WriteTxn::Put(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                     std::string_view value) {
  auto s = batch_->Put(cf, key, value);
  if (!s.ok()) return std::unexpected(FromRocks(s, "put"));
  return Ok();
}

Status WriteTxn::Delete(rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
  auto s = batch_->Delete(cf, key);
  if (!s.ok()) return std::unexpected(FromRocks(s, "delete"));
  return Ok();
}

Status WriteTxn::ScanPrefix(rocksdb::ColumnFamilyHandle* cf, std::string_view prefix,
                            const std::function<bool(std::string_view, std::string_view)>& visit) {
  // Declared before the iterator, which keeps a pointer to it.
  const std::string upper = PrefixUpperBound(prefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(
      batch_->NewIteratorWithBase(cf, db_->NewIterator(ro, cf), &ro));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    auto key = it->key().ToStringView();
    if (!key.starts_with(prefix)) break;
    if (!visit(key, it->value().ToStringView())) break;
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "scan"));
  return Ok();
}

std::unique_ptr<rocksdb::Iterator> WriteTxn::NewIterator(rocksdb::ColumnFamilyHandle* cf,
                                                         const rocksdb::ReadOptions& ro) {
  return std::unique_ptr<rocksdb::Iterator>(
      batch_->NewIteratorWithBase(cf, db_->NewIterator(ro, cf), &ro));
}

GroupWriter::GroupWriter(rocksdb::DB* db, bool sync, StoreObserver observer, BatchObserver* batches,
                         int priority)
    : db_(db),
      priority_(priority),
      observer_(std::move(observer)),
      batches_(batches),
      // overwrite_key: one index entry per key, which iterators over the
      // batch (ScanPrefix) require.
      batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {
  write_options_.sync = sync;
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "store-writer");
}

GroupWriter::~GroupWriter() {
  Close();
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) {
    // Only reachable when Close ran on the writer thread itself and the owner
    // is destroyed there too; joining would deadlock.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
}

void GroupWriter::Submit(std::unique_ptr<WriteJob> job) {
  const char* refusal = nullptr;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      refusal = "store is closed";
    } else if (queue_.size() >= kMaxQueuedJobs) {
      refusal = "store write queue is full";
    } else {
      queue_.push_back(std::move(job));
    }
  }
  if (refusal != nullptr) {
    FinishJob(*job, Fail(Errc::kUnavailable, refusal));
    return;
  }
  cv_.notify_one();
}

void GroupWriter::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_one();
  if (std::this_thread::get_id() == thread_.get_id()) return;
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void GroupWriter::Prioritize(std::size_t queued) {
  if (priority_ == 0 || priority_failed_) return;
  const bool want = queued >= (ahead_ ? kBehindBelowJobs : kAheadFromJobs);
  if (want == ahead_) return;
  // On Linux a thread's nice value is its own (PRIO_PROCESS with a thread
  // id): this moves the writer only, relative to what it inherited.
  const int nice = std::clamp(inherited_nice_ - (want ? priority_ : 0), -20, 19);
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice) != 0) {
    priority_failed_ = true;
    PLOG_WARN("store writer priority not changed", "nice={} error={} hint={}", nice,
              LogQuote(std::strerror(errno)),
              LogQuote("run as root, grant CAP_SYS_NICE or raise RLIMIT_NICE (systemd: "
                       "LimitNICE=), or set store_writer_priority to 0"));
    return;
  }
  ahead_ = want;
}

void GroupWriter::Run() {
  errno = 0;
  inherited_nice_ = ::getpriority(PRIO_PROCESS, 0);
  if (errno != 0) priority_failed_ = true;
  std::deque<std::unique_ptr<WriteJob>> jobs;
  for (;;) {
    std::size_t queued = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;  // closed and drained
      queued = queue_.size();
      if (queue_.size() <= kMaxJobsPerCommit) {
        jobs.swap(queue_);
      } else {
        for (std::size_t i = 0; i < kMaxJobsPerCommit; ++i) {
          jobs.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    // Outside the lock: a submitter never waits for the system call.
    Prioritize(queued);
    RunBatch(jobs);
    jobs.clear();
  }
}

void GroupWriter::RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs) {
  batch_.Clear();
  WriteTxn txn(db_, &batch_, &cache_);
  Status commit = Ok();
  for (auto& job : jobs) {
    const auto before = batch_.GetWriteBatch()->Count();
    batch_.SetSavePoint();
    txn.ResetForNextJob();
    const bool keep = ApplyJob(*job, txn);
    if (batches_ != nullptr) batches_->JobDone(keep);
    // A rollback rebuilds the batch index, so skip it when the job wrote nothing.
    auto s = (keep || batch_.GetWriteBatch()->Count() == before) ? batch_.PopSavePoint()
                                                                 : batch_.RollbackToSavePoint();
    if (!s.ok()) {
      // The batch no longer matches what the jobs saw: commit none of it.
      Error error = FromRocks(s, "rolling back a failed write");
      error.code = Errc::kInternal;
      commit = std::unexpected(std::move(error));
      break;
    }
  }

  if (commit && batch_.GetWriteBatch()->Count() > 0) {
    const double start = MonoSeconds();
    auto s = db_->Write(write_options_, batch_.GetWriteBatch());
    Observe("commit", MonoSeconds() - start);
    if (!s.ok()) commit = std::unexpected(FromRocks(s, "commit"));
    if (s.ok()) cache_.Committed(batch_.GetWriteBatch());
  }
  batch_.Clear();
  if (batches_ != nullptr) batches_->BatchDone(commit.has_value());

  for (auto& job : jobs) {
    Observe(job->op(), MonoSeconds() - job->submitted());
    FinishJob(*job, commit);
  }
}

void GroupWriter::Observe(std::string_view op, double seconds) const {
  if (observer_) observer_(op, seconds);
}

}  // namespace parley::store::rocks
