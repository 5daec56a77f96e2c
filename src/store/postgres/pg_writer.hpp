// Group commit for the PostgreSQL store (private to src/store/postgres/).
//
// Like the RocksDB writer: every write is a job queued to one writer thread,
// which takes what is queued (at most kMaxJobsPerCommit), runs the jobs in
// order inside ONE transaction, commits it, and only then runs the jobs'
// callbacks in order. `ok` means committed.
//
// No savepoints (a subtransaction per job would stall the server past 64 of
// them). Instead a job is written in two halves: it reads and checks its
// preconditions first (Tx::Read, inside the transaction, so it sees earlier
// jobs of the batch), and every write it wants goes into a buffer
// (Tx::Write). When the job succeeds the buffer is sent; when it fails the
// buffer is dropped, so a failed job changes nothing while its neighbours
// commit. A job never reads back its own buffered writes (the few that need
// their own effect compute it in memory).
//
// Dense seqs: each user's mailbox_head row is locked (SELECT ... FOR UPDATE)
// the first time the batch touches the user, and kept in memory (the head
// overlay) until the commit writes the new heads back in one statement. The
// users a batch will touch are known up front for most jobs (their hints) and
// locked together in ascending user order, so that two nodes' batches do not
// deadlock; users found while a job runs (group members, contacts, receipt
// senders) are locked then. Because the lock is held until commit, seq N+1 is
// assigned only once N is committed: readers never see a gap.
//
// A statement that fails (lost connection, timeout, constraint) aborts the
// transaction: every job of the batch fails with kInternal and nothing is
// retried; the next batch reconnects.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
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
#include "store/postgres/pg_conn.hpp"
#include "store/store.hpp"

namespace parley::store::pg {

inline constexpr std::size_t kMaxJobsPerCommit = 1024;
inline constexpr std::size_t kMaxQueuedJobs = 1 << 16;

// A job's view of the batch's transaction.
class Tx {
 public:
  explicit Tx(Conn& conn) : conn_(conn) {}

  // A statement run now, inside the transaction.
  Result<Rows> Read(const char* sql, const Params& params = {});
  // A statement sent once the job has succeeded (dropped if it fails).
  void Write(const char* sql, Params params) { writes_.push_back({sql, std::move(params)}); }

  // Locks the head rows of `users` that this batch has not locked yet, in
  // ascending order.
  Status Lock(std::vector<UserId> users);
  // The user's head as this job sees it (locks it first).
  Result<Seq> Head(UserId user);
  // The next seq of the user's mailbox.
  Result<Seq> Allocate(UserId user);
  // The highest seq whose delivered receipts went out.
  Result<Seq> Delivered(UserId user);
  Status SetDelivered(UserId user, Seq seq);

  // ---- Writer only ----------------------------------------------------------
  void BeginJob();
  // Sends the job's writes (keep) or drops them and undoes its head changes.
  Status EndJob(bool keep);
  // Writes the changed heads; before COMMIT.
  Status FlushHeads();
  void Reset();
  // The first failure of a statement: the transaction is aborted.
  const std::optional<Error>& broken() const { return broken_; }

 private:
  struct HeadRow {
    Seq head = 0;
    Seq delivered = 0;
    bool dirty = false;
  };
  struct PendingWrite {
    const char* sql;
    Params params;
  };
  Result<HeadRow*> Locked(UserId user);

  Conn& conn_;
  std::unordered_map<UserId, HeadRow> heads_;
  std::vector<std::pair<UserId, HeadRow>> undo_;  // values before this job touched them
  std::vector<PendingWrite> writes_;
  std::optional<Error> broken_;
};

class WriteJob {
 public:
  WriteJob(std::string_view op, std::vector<UserId> hint)
      : op_(op), hint_(std::move(hint)), submitted_(MonoSeconds()) {}
  virtual ~WriteJob() = default;
  // Runs inside the batch; false means "drop my writes".
  virtual bool Apply(Tx& tx) = 0;
  virtual void Finish(const Status& commit) = 0;
  std::string_view op() const { return op_; }
  double submitted() const { return submitted_; }
  const std::vector<UserId>& hint() const { return hint_; }

 private:
  std::string_view op_;
  std::vector<UserId> hint_;  // users whose heads the job will lock
  double submitted_;
};

template <class T, class F>
class FnJob final : public WriteJob {
 public:
  FnJob(std::string_view op, std::vector<UserId> hint, F body, Callback<T> done)
      : WriteJob(op, std::move(hint)), body_(std::move(body)), done_(std::move(done)) {}
  bool Apply(Tx& tx) override {
    result_.emplace(body_(tx));
    return result_->has_value();
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

template <class T, class F>
std::unique_ptr<WriteJob> MakeJob(std::string_view op, std::vector<UserId> hint, F body,
                                  Callback<T> done) {
  return std::make_unique<FnJob<T, F>>(op, std::move(hint), std::move(body), std::move(done));
}

class Writer {
 public:
  Writer(std::unique_ptr<Conn> conn, StoreObserver observer);
  ~Writer();
  void Submit(std::unique_ptr<WriteJob> job);
  void Close();
  // Whether the last batch reached the database (for readiness).
  bool healthy() const { return healthy_.load(); }

 private:
  void Run();
  void RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs);
  Status Begin(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx);
  void Observe(std::string_view op, double seconds) const {
    if (observer_) observer_(op, seconds);
  }

  std::unique_ptr<Conn> conn_;
  StoreObserver observer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WriteJob>> queue_;
  bool closed_ = false;
  std::atomic<bool> healthy_{true};
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace parley::store::pg
