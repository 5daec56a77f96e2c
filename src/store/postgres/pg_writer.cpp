#include "store/postgres/pg_writer.hpp"

#include <algorithm>

namespace parley::store::pg {

// ---- Tx ------------------------------------------------------------------------

Result<Rows> Tx::Read(const char* sql, const Params& params) {
  if (broken_) return std::unexpected(*broken_);
  auto rows = conn_.Exec(sql, params);
  if (!rows) broken_ = rows.error();
  return rows;
}

Status Tx::Defer(std::string_view what) {
  deferred_ = true;
  return Fail(Errc::kUnavailable, "deferred: " + std::string(what) + " is locked by another node");
}

Status Tx::WaitLock(const std::vector<UserId>& users) {
  if (users.empty()) return Ok();
  Params p;
  p.U64Array(users);
  if (auto r = Read("INSERT INTO mailbox_head (user_id) SELECT u FROM unnest($1::int8[]) AS u "
                    "ORDER BY u ON CONFLICT DO NOTHING",
                    p);
      !r) {
    return std::unexpected(r.error());
  }
  auto rows = Read(
      "SELECT user_id, head, delivered_wm FROM mailbox_head WHERE user_id = ANY($1::int8[]) "
      "ORDER BY user_id FOR UPDATE",
      p);
  if (!rows) return std::unexpected(rows.error());
  for (int i = 0; i < rows->size(); ++i) {
    heads_[rows->U64(i, 0)] = HeadRow{.head = rows->U64(i, 1), .delivered = rows->U64(i, 2)};
  }
  for (UserId u : users) {
    if (!heads_.contains(u)) return Fail(Errc::kInternal, "mailbox head row missing after insert");
    max_head_ = std::max(max_head_, u);
  }
  return Ok();
}

Status Tx::Lock(std::vector<UserId> users) {
  job_users_.insert(job_users_.end(), users.begin(), users.end());
  std::erase_if(users, [&](UserId u) { return heads_.contains(u); });
  if (users.empty()) return Ok();
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  // Heads above every one held come after everything held in the lock
  // order: waiting for them is safe. Those below are only tried.
  const auto above =
      allow_waits_ ? users.begin() : std::upper_bound(users.begin(), users.end(), max_head_);
  if (above != users.begin()) {
    std::vector<UserId> below(users.begin(), above);
    auto rows = Read(
        "SELECT user_id, head, delivered_wm FROM mailbox_head WHERE user_id = ANY($1::int8[]) "
        "ORDER BY user_id FOR UPDATE SKIP LOCKED",
        Params().U64Array(below));
    if (!rows) return std::unexpected(rows.error());
    for (int i = 0; i < rows->size(); ++i) {
      heads_[rows->U64(i, 0)] = HeadRow{.head = rows->U64(i, 1), .delivered = rows->U64(i, 2)};
    }
    // Missing: taken by another transaction, or a head row not made yet
    // (making it could wait on another node's insert). Either way the job
    // runs again with these users locked at BEGIN.
    for (UserId u : below) {
      if (!heads_.contains(u)) return Defer("a mailbox head");
    }
  }
  return WaitLock(std::vector<UserId>(above, users.end()));
}

Status Tx::LockGroups(std::vector<GroupId> groups) {
  if (groups.empty()) return Ok();
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  auto rows = Read(
      "SELECT group_id FROM groups WHERE group_id = ANY($1::int8[]) ORDER BY group_id FOR UPDATE",
      Params().U64Array(groups));
  if (!rows) return std::unexpected(rows.error());
  for (GroupId g : groups) groups_[g] = false;
  for (int i = 0; i < rows->size(); ++i) groups_[rows->U64(i, 0)] = true;
  return Ok();
}

Result<bool> Tx::LockGroup(GroupId group) {
  job_groups_.push_back(group);
  if (auto it = groups_.find(group); it != groups_.end() && it->second) return true;
  const Params p = Params().U64(group);
  if (allow_waits_ || !holds_locks()) {
    auto r = Read("SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE", p);
    if (!r) return std::unexpected(r.error());
    groups_[group] = !r->empty();
    return !r->empty();
  }
  auto r = Read("SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE SKIP LOCKED", p);
  if (!r) return std::unexpected(r.error());
  if (!r->empty()) {
    groups_[group] = true;
    return true;
  }
  auto exists = Read("SELECT 1 FROM groups WHERE group_id = $1", p);
  if (!exists) return std::unexpected(exists.error());
  if (!exists->empty()) return std::unexpected(Defer("a group row").error());
  return false;
}

Result<Tx::HeadRow*> Tx::Locked(UserId user) {
  auto it = heads_.find(user);
  if (it == heads_.end()) {
    if (auto s = Lock({user}); !s) return std::unexpected(s.error());
    it = heads_.find(user);
  }
  return &it->second;
}

Result<Seq> Tx::Head(UserId user) {
  auto h = Locked(user);
  if (!h) return std::unexpected(h.error());
  return (*h)->head;
}

Result<Seq> Tx::Allocate(UserId user) {
  auto h = Locked(user);
  if (!h) return std::unexpected(h.error());
  undo_.emplace_back(user, **h);
  (*h)->dirty = true;
  return ++(*h)->head;
}

Result<Seq> Tx::Delivered(UserId user) {
  auto h = Locked(user);
  if (!h) return std::unexpected(h.error());
  return (*h)->delivered;
}

Status Tx::SetDelivered(UserId user, Seq seq) {
  auto h = Locked(user);
  if (!h) return std::unexpected(h.error());
  undo_.emplace_back(user, **h);
  (*h)->delivered = seq;
  (*h)->dirty = true;
  return Ok();
}

void Tx::BeginJob() {
  undo_.clear();
  writes_.clear();
  job_users_.clear();
  job_groups_.clear();
  deferred_ = false;
  allow_waits_ = false;
}

Status Tx::EndJob(bool keep) {
  if (!keep || broken_) {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) heads_[it->first] = it->second;
    undo_.clear();
    writes_.clear();
    if (broken_) return std::unexpected(*broken_);
    return Ok();
  }
  undo_.clear();
  for (const auto& w : writes_) {
    if (auto r = Read(w.sql, w.params); !r) {
      writes_.clear();
      return std::unexpected(r.error());
    }
  }
  writes_.clear();
  return Ok();
}

Status Tx::FlushHeads() {
  std::vector<std::uint64_t> users, heads, delivered;
  for (const auto& [user, h] : heads_) {
    if (!h.dirty) continue;
    users.push_back(user);
    heads.push_back(h.head);
    delivered.push_back(h.delivered);
  }
  if (users.empty()) return Ok();
  Params p;
  p.U64Array(users).U64Array(heads).U64Array(delivered);
  auto r = Read(
      "UPDATE mailbox_head AS h SET head = v.head, delivered_wm = v.delivered "
      "FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(user_id, head, delivered) "
      "WHERE h.user_id = v.user_id",
      p);
  if (!r) return std::unexpected(r.error());
  return Ok();
}

void Tx::Reset() {
  heads_.clear();
  groups_.clear();
  max_head_ = 0;
  undo_.clear();
  writes_.clear();
  broken_.reset();
}

// ---- Writer --------------------------------------------------------------------

Writer::Writer(std::unique_ptr<Conn> conn, StoreObserver observer)
    : conn_(std::move(conn)), observer_(std::move(observer)) {
  thread_ = std::thread([this] { Run(); });
}

Writer::~Writer() {
  Close();
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
}

void Writer::Submit(std::unique_ptr<WriteJob> job) {
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
    job->Finish(Fail(Errc::kUnavailable, refusal));
    return;
  }
  cv_.notify_one();
}

void Writer::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_one();
  if (std::this_thread::get_id() == thread_.get_id()) return;
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void Writer::Run() {
  std::deque<std::unique_ptr<WriteJob>> jobs;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;
      if (queue_.size() <= kMaxJobsPerCommit) {
        jobs.swap(queue_);
      } else {
        for (std::size_t i = 0; i < kMaxJobsPerCommit; ++i) {
          jobs.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    RunBatch(jobs);
    jobs.clear();
  }
}

Status Writer::Begin(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx) {
  if (!conn_->EnsureConnected()) {
    return Fail(Errc::kInternal, "postgresql unavailable");
  }
  if (auto s = conn_->Run("BEGIN"); !s) {
    // A connection the server dropped meanwhile (a restart) only shows now;
    // nothing ran yet, so reconnecting and beginning again is safe.
    if (conn_->healthy() || !conn_->EnsureConnected()) return s;
    if (auto again = conn_->Run("BEGIN"); !again) return again;
  }
  // The lock order: group rows, then heads, each ascending (see pg_writer.hpp).
  std::vector<GroupId> groups;
  std::vector<UserId> users;
  for (const auto& job : jobs) {
    groups.insert(groups.end(), job->group_hint().begin(), job->group_hint().end());
    users.insert(users.end(), job->hint().begin(), job->hint().end());
  }
  if (auto s = tx.LockGroups(std::move(groups)); !s) return s;
  return tx.Lock(std::move(users));
}

bool Writer::LostALockWait(const Error& e) {
  // Conn::ErrorOf puts the SQLSTATE in brackets.
  return e.message.find("[55P03]") != std::string::npos ||
         e.message.find("[40P01]") != std::string::npos;
}

void Writer::Retry(std::deque<std::unique_ptr<WriteJob>>& jobs) {
  std::deque<std::unique_ptr<WriteJob>> again;
  std::deque<std::unique_ptr<WriteJob>> failed;
  for (auto& job : jobs) {
    if (job->retries() >= kMaxLockRetries) {
      failed.push_back(std::move(job));
    } else {
      job->Retried();
      again.push_back(std::move(job));
    }
  }
  jobs.swap(failed);
  if (again.empty()) return;
  retried_.fetch_add(1);
  std::lock_guard lock(mu_);
  for (auto it = again.rbegin(); it != again.rend(); ++it) queue_.push_front(std::move(*it));
}

void Writer::RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs) {
  Tx tx(*conn_);
  Status commit = Begin(jobs, tx);
  std::size_t ran = jobs.size();
  if (commit) {
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      auto& job = jobs[i];
      tx.BeginJob();
      if (job->deferrals() >= kMaxDeferrals) tx.AllowWaits();
      const bool keep = job->Apply(tx);
      if (tx.deferred() && !tx.broken()) {
        // It changed nothing; it and the jobs after it go again, in order,
        // in the next batch (see the note at the top of pg_writer.hpp).
        (void)tx.EndJob(false);
        job->Deferred(tx.job_users(), tx.job_groups());
        ran = i;
        break;
      }
      if (auto s = tx.EndJob(keep); !s) {
        commit = std::unexpected(Error{Errc::kInternal, s.error().message});
        break;
      }
    }
  }
  if (ran < jobs.size()) {
    deferred_.fetch_add(1);
    std::lock_guard lock(mu_);
    for (std::size_t i = jobs.size(); i > ran; --i) queue_.push_front(std::move(jobs[i - 1]));
    jobs.resize(ran);
  }
  if (commit) commit = tx.FlushHeads();
  if (commit) {
    const double start = MonoSeconds();
    commit = conn_->Run("COMMIT");
    Observe("commit", MonoSeconds() - start);
  }
  if (!commit) {
    commit.error().code = Errc::kInternal;
    if (conn_->healthy() && conn_->in_transaction()) (void)conn_->Run("ROLLBACK");
    if (LostALockWait(commit.error()) && conn_->healthy()) Retry(jobs);
  }
  healthy_.store(conn_->healthy());
  for (auto& job : jobs) {
    Observe(job->op(), MonoSeconds() - job->submitted());
    job->Finish(commit);
  }
}

}  // namespace parley::store::pg
