// Group commit for the PostgreSQL store (private to src/store/postgres/).
//
// Like the RocksDB writer: every write is a job queued to one writer thread,
// which takes what is queued (at most batch_cap_, see below), runs the jobs
// in order inside ONE transaction, commits it, and only then runs the jobs'
// callbacks in order. `ok` means committed.
//
// Round trips: the writer's connection is in libpq pipeline mode for the
// batch. Statements whose answer nothing waits for (BEGIN, a job's writes,
// the head rows' insert, the heads' update, COMMIT) are sent without
// waiting; a read waits for everything sent before it. The hot rows of a
// batch (messages, mailbox rows, idempotency keys, peers, cursors, delivered
// receipts) are not sent per job at all but gathered (pg_bulk.hpp) and sent
// as one set-based statement per kind, before the next statement that could
// see them (Tx::Read; a job's plain writes) or with the COMMIT. The
// idempotency keys of the batch's sends, and what its acks read (their
// devices and cursors, the incoming rows they receipt), are read once the
// hinted heads are locked, one statement each in one round trip
// (Tx::Prefetch); an ack the prefetch cannot answer for reads for itself,
// without flushing unless a mailbox row it reads is still buffered. A
// batch of 1:1 sends and acks is then about 3 round trips, and a handful
// of statements per kind of row, whatever its size.
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
// overlay) until the commit writes the new heads back in one statement.
// Because the lock is held until commit, seq N+1 is assigned only once N is
// committed: readers never see a gap.
//
// No deadlock between nodes: the locks a batch takes follow one global
// order, group rows (by group id) before head rows (by user id), and a
// transaction waits for a lock only when it is above every lock it holds in
// that order. A cycle of waits would then need a lock above itself. The
// groups and users a batch will touch are known up front for most jobs
// (their hints) and locked at BEGIN, groups then heads, each ascending.
// Users found while a job runs (group members, contacts, receipt senders)
// above the highest head held are locked as found (waiting is in order);
// those below it, and a group row not in the hints while anything is held,
// are only tried (FOR UPDATE SKIP LOCKED). If one is taken by another
// transaction the job is deferred: it changes nothing, the batch commits
// the jobs before it, and the job and those after it go back to the front
// of the queue, the job's hint now holding what it found, so that the next
// batch locks it all up front in order. A job deferred kMaxDeferrals times
// (its membership keeps changing under it) runs with waits allowed
// anywhere; PostgreSQL's deadlock detector is then the last resort (the
// batch fails with kInternal).
//
// Other rows a job writes (mailbox rows, cursors, receipts, read marks,
// peers, idempotency keys) belong to a user whose head the job holds, or to
// a group whose row it holds, so no two transactions wait on them without
// first waiting on that head or group row. Rows locked outside this scheme
// (users, devices, tokens, one-time codes, keys, media, media_usage) are
// listed in docs/architecture.md with why each cannot close a cycle or
// what is left.
//
// A batch that loses a lock wait (lock_timeout, 55P03: another node's batch
// held a head longer; or a deadlock, 40P01, in the waits-anywhere case) is
// rolled back, so nothing of it was committed, and every job of it goes back
// to the front of the queue in order and runs again (jobs already run again
// when deferred, so their bodies are written to be re-run); a job whose
// batches lost kMaxLockRetries waits fails with kInternal. Before this, one
// lock timeout failed a whole batch of up to kMaxJobsPerCommit jobs (the
// scale run's seven nodes answered most sends `internal`).
// Any other failed statement (lost connection, statement timeout,
// constraint) aborts the transaction: every job of the batch fails with
// kInternal and nothing is retried; the next batch reconnects. (With the
// pipeline a failed write shows at the next read or at COMMIT, still
// failing the whole batch, as a failed write always did.)
//
// Heads held by another node are not waited for at BEGIN. Every batch
// holds its head locks until its COMMIT, so when the nodes' batches meet on
// heads, a batch that waited for one held by a batch that itself waits for
// another (a convoy) took the whole chain's time, with every lock it held
// meanwhile blocking more batches: on a 7-node run with 10,000 users a
// batch of 34 jobs locks about 70 heads, about 5% of all users were locked
// at any moment, so nearly every batch met one (batches of ~75 ms, sends
// answered after 1-3 s). Now BEGIN tries every hinted head at once (SKIP
// LOCKED) and a job one of whose heads is taken goes to the next batch
// (deferred, as above) instead of holding up the batch; so does every later
// job of the batch that names a user of a job sent on, so that one user's
// jobs keep their order. A job deferred kMaxDeferrals times takes its
// heads at BEGIN as before, waiting, in ascending order, before any other
// head is tried (so it never waits out of order), and so no job is sent on
// for ever. On one node nothing else holds heads: nothing changes.
//
// Batch size under contention: a batch holds its head locks until COMMIT,
// so when several nodes' batches meet on the same heads the waits chain
// (a convoy). The writer caps its batches at batch_cap_: a quarter after a
// batch lost a lock wait, half after one whose BEGIN (its lock waits) took
// more than kSlowBegin or whose jobs were deferred, doubling back to
// kMaxJobsPerCommit after each batch that met nobody.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
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
#include "common/metrics.hpp"
#include "common/result.hpp"
#include "store/postgres/pg_bulk.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/store.hpp"

namespace parley::store::pg {

inline constexpr std::size_t kMaxJobsPerCommit = 1024;
// The smallest batch cap contention brings a writer down to.
inline constexpr std::size_t kMinJobsPerCommit = 16;
// A BEGIN (lock waits included) slower than this counts as contention.
inline constexpr double kSlowBegin = 0.02;
// Statements the pipeline holds unanswered before the writer reads their answers.
inline constexpr std::size_t kMaxPipelined = 256;
inline constexpr std::size_t kMaxQueuedJobs = 1 << 16;
inline constexpr int kMaxDeferrals = 3;
// Times a job's batch may lose a lock wait before the job fails (kInternal).
inline constexpr int kMaxLockRetries = 4;

// What an ack will read, known when it is queued (Tx::Prefetch).
struct AckHint {
  UserId user = 0;
  DeviceId device = 0;
  Seq up_to = 0;
};

// An incoming message row of a mailbox (kind 1, not outgoing): what an ack
// sends delivered receipts for.
struct IncomingRow {
  Seq seq = 0;
  MsgId msg_id = 0;
  UserId sender = 0;
  std::int16_t conv_kind = 0;
  std::uint64_t conv_id = 0;
  bool delivered = false;  // a delivered receipt is stored already
};

// An ack's device as read at BEGIN: whether it exists, and its stored cursor.
struct AckDevice {
  bool exists = false;
  Seq cursor = 0;
};

// A job's view of the batch's transaction.
class Tx {
 public:
  explicit Tx(Conn& conn) : conn_(conn) {}

  // A statement run now, inside the transaction. Buffered rows of earlier
  // jobs are sent first, so it sees everything the batch did before.
  Result<Rows> Read(const char* sql, const Params& params = {});
  // The same without sending the buffered rows: only for tables they never
  // hold (heads, groups, devices, ...) or when the caller checked that they
  // hold none of the rows it reads (Buffered, BufferedCursor, KnownIdem).
  Result<Rows> ReadPast(const char* sql, const Params& params = {});
  // Two such reads in one round trip (both answered, in order).
  Result<std::pair<Rows, Rows>> ReadPastBoth(const char* sql1, const Params& params1,
                                             const char* sql2, const Params& params2);
  // Sends the rows earlier jobs buffered (before a ReadPast that must see them).
  Status SendBuffered();
  // A statement sent once the job has succeeded (dropped if it fails).
  void Write(const char* sql, Params params) { writes_.push_back({sql, std::move(params)}); }
  // Rows written set-based (pg_bulk.hpp), kept once the job succeeds.
  BulkRows& bulk() { return job_bulk_; }
  // Whether a mailbox row of `user` at or below `up_to` is still buffered.
  bool Buffered(UserId user, Seq up_to) const { return batch_bulk_.HasMailboxRow(user, up_to); }
  // A cursor an earlier job of the batch buffered.
  std::optional<Seq> BufferedCursor(UserId user, DeviceId device) const {
    return batch_bulk_.FindCursor(user, device);
  }
  // An idempotency key's first send when known without a read (buffered by
  // an earlier job, or read at BEGIN): the outer optional is empty when not known.
  std::optional<std::optional<IdemHit>> KnownIdem(UserId sender,
                                                  const std::string& client_msg_id) const;

  // Locks the head rows of `users` that this batch has not locked yet, in
  // ascending order; fails (and defers the job) when one below the highest
  // held is taken by another transaction.
  Status Lock(std::vector<UserId> users);
  // Locks the groups' rows (ascending); at BEGIN only, before any head.
  Status LockGroups(std::vector<GroupId> groups);
  // Locks those head rows of `users` that no other transaction holds
  // (SKIP LOCKED: never waits; missing rows are made first), in one
  // statement; at BEGIN only.
  Status TryLockHeads(std::vector<UserId> users);
  // Whether the batch holds the user's head row.
  bool HoldsHead(UserId user) const { return heads_.contains(user); }
  // For each acking user, the senders of the incoming rows above its
  // delivered watermark up to the highest of its acks: whose heads the
  // acks' receipts will lock. Read before any head is locked, so it may
  // name a sender too many (never too few for rows committed before the
  // ack, which are the only ones an ack can cover).
  Result<std::unordered_map<UserId, std::vector<UserId>>> ReceiptSenders(
      const std::vector<AckHint>& acks);
  // Locks one group's row if it exists (answers whether it does). Defers
  // the job when the transaction holds locks and the row is taken.
  Result<bool> LockGroup(GroupId group);
  // The job could not take a lock without risking a deadlock (see above).
  bool deferred() const { return deferred_; }
  // Users and groups the job locked or tried to, for its hints when it runs again.
  const std::vector<UserId>& job_users() const { return job_users_; }
  const std::vector<GroupId>& job_groups() const { return job_groups_; }
  // Waits allowed for every lock (a job deferred too often).
  void AllowWaits() { allow_waits_ = true; }
  // The user's head as this job sees it (locks it first).
  Result<Seq> Head(UserId user);
  // The next seq of the user's mailbox.
  Result<Seq> Allocate(UserId user);
  // The highest seq whose delivered receipts went out.
  Result<Seq> Delivered(UserId user);
  Status SetDelivered(UserId user, Seq seq);

  // ---- Writer only ----------------------------------------------------------
  // Sends a statement without waiting for its answer (BEGIN, ROLLBACK).
  Status Pipe(const char* sql, const Params& params = {});
  // In one round trip, once the hinted heads are locked: the first sends
  // of these idempotency keys, and what these acks read (their devices
  // with their cursors, and the incoming rows each may receipt).
  Status Prefetch(const std::vector<std::pair<UserId, std::string>>& keys,
                  const std::vector<AckHint>& acks);
  // An ack's reads as prefetched at BEGIN, while still what a read now
  // would answer; nullopt when not prefetched or no longer sure (an
  // earlier job of the batch ran a plain write: it may have added or
  // removed a device or rows), and then the ack reads for itself.
  std::optional<AckDevice> PrefetchedDevice(UserId user, DeviceId device) const;
  // The incoming rows of `user` with after < seq <= up_to.
  std::optional<std::vector<IncomingRow>> PrefetchedIncoming(UserId user, Seq after,
                                                             Seq up_to) const;
  // The buffered rows, the changed heads and COMMIT, in one round trip.
  Status Commit();
  void BeginJob();
  // Sends the job's writes (keep) or drops them and undoes its head changes.
  Status EndJob(bool keep);
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
  // Makes the missing head rows of `users` (ascending) when asked, then
  // runs `lock` (kLockHeads or kTryLockHeads) over them and keeps the rows
  // it returns.
  Status LockRows(const char* lock, const std::vector<UserId>& users, bool make_missing);
  Status FlushHeads();

  Status Defer(std::string_view what);
  Status WaitLock(const std::vector<UserId>& users);
  bool holds_locks() const { return !heads_.empty() || !groups_.empty(); }

  Conn& conn_;
  std::unordered_map<UserId, HeadRow> heads_;
  UserId max_head_ = 0;                       // the highest user whose head is held
  std::unordered_map<GroupId, bool> groups_;  // group rows tried: exists (and is locked)
  bool deferred_ = false;                     // the current job must run again
  bool allow_waits_ = false;
  std::vector<UserId> job_users_;
  std::vector<GroupId> job_groups_;
  std::vector<std::pair<UserId, HeadRow>> undo_;  // values before this job touched them
  std::vector<PendingWrite> writes_;
  BulkRows job_bulk_;    // the current job's rows
  BulkRows batch_bulk_;  // earlier jobs' rows, not sent yet
  std::unordered_map<std::string, std::optional<IdemHit>> idem_known_;  // BulkRows::IdemKey
  // What the batch's acks read, prefetched at BEGIN (Prefetch).
  struct IncomingRange {
    Seq after = 0;  // rows with after < seq <= up_to were read
    Seq up_to = 0;
    std::vector<IncomingRow> rows;  // ascending seq
  };
  std::map<std::pair<UserId, DeviceId>, AckDevice> ack_devices_;
  std::unordered_map<UserId, IncomingRange> incoming_;
  bool prefetch_valid_ = false;
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
  // Groups whose rows the job will lock.
  const std::vector<GroupId>& group_hint() const { return group_hint_; }
  void set_group_hint(std::vector<GroupId> groups) { group_hint_ = std::move(groups); }
  // The job was deferred (see the note at the top): it runs again knowing these.
  void Deferred(const std::vector<UserId>& users, const std::vector<GroupId>& groups) {
    hint_.insert(hint_.end(), users.begin(), users.end());
    group_hint_.insert(group_hint_.end(), groups.begin(), groups.end());
    ++deferrals_;
  }
  int deferrals() const { return deferrals_; }
  // More users whose heads the job will lock (an ack's receipt senders).
  void AddHint(const std::vector<UserId>& users) {
    for (UserId u : users) {
      if (std::find(hint_.begin(), hint_.end(), u) == hint_.end()) hint_.push_back(u);
    }
  }
  // The job's batch lost a lock wait (lock_timeout, a deadlock) and was
  // rolled back: it runs again as it was.
  void Retried() { ++retries_; }
  int retries() const { return retries_; }
  // What an ack reads, read for the whole batch at BEGIN.
  const std::optional<AckHint>& ack_hint() const { return ack_hint_; }
  void set_ack_hint(AckHint hint) { ack_hint_ = hint; }
  // A send's idempotency key, read for the whole batch at BEGIN.
  const std::optional<std::pair<UserId, std::string>>& idem_key() const { return idem_key_; }
  void set_idem_key(UserId sender, std::string client_msg_id) {
    idem_key_.emplace(sender, std::move(client_msg_id));
  }

 private:
  std::string_view op_;
  std::vector<UserId> hint_;  // users whose heads the job will lock
  std::vector<GroupId> group_hint_;
  double submitted_;
  int deferrals_ = 0;
  int retries_ = 0;
  std::optional<std::pair<UserId, std::string>> idem_key_;
  std::optional<AckHint> ack_hint_;
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

// What the writer reports on /metrics when given a registry.
struct WriterMetrics {
  explicit WriterMetrics(Registry& r);
  Counter& deferred;
  Counter& retried;
  Gauge& batch_cap;
  Gauge& connected;
};

class Writer {
 public:
  Writer(std::unique_ptr<Conn> conn, StoreObserver observer, Registry* metrics = nullptr);
  ~Writer();
  void Submit(std::unique_ptr<WriteJob> job);
  void Close();
  // Whether the writer's connection is up: false from a batch that lost it
  // until the writer, idle or not, has connected again (for readiness).
  bool healthy() const { return healthy_.load(); }
  // How many times a job was deferred (see the note at the top).
  std::uint64_t deferred() const { return deferred_.load(); }
  // How many batches lost a lock wait and went again (see the note at the top).
  std::uint64_t retried() const { return retried_.load(); }
  // The current batch cap (see the note at the top).
  std::size_t batch_cap() const { return batch_cap_.load(); }

 private:
  void Run();
  void RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs);
  // Puts jobs back at the front of the queue, in their order.
  void Requeue(std::deque<std::unique_ptr<WriteJob>> jobs);
  static bool LostALockWait(const Error& e);
  // Requeues the jobs of a rolled-back batch at the front, in order; leaves
  // in `jobs` those out of retries (they fail).
  void Retry(std::deque<std::unique_ptr<WriteJob>>& jobs);
  // Takes the batch's locks and prefetches its reads; moves to `later` the
  // jobs whose heads another transaction holds (see the note at the top).
  Status Begin(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx,
               std::deque<std::unique_ptr<WriteJob>>& later);
  Status BeginOnce(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx,
                   std::deque<std::unique_ptr<WriteJob>>& later);
  // Adapts batch_cap_ after a batch (see the note at the top).
  void Adapt(bool lost_lock_wait, bool deferred, double begin_seconds);
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
  // How often an idle writer whose connection is down tries it again.
  static constexpr std::chrono::milliseconds kReconnectPoll{250};
  std::atomic<std::uint64_t> deferred_{0};
  std::atomic<std::uint64_t> retried_{0};
  std::atomic<std::size_t> batch_cap_{kMaxJobsPerCommit};
  std::optional<WriterMetrics> metrics_;
  // Sets healthy_ and the connected gauge.
  void SetHealthy(bool up);
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace parley::store::pg
