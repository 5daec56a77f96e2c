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

Status Tx::Lock(std::vector<UserId> users) {
  std::erase_if(users, [&](UserId u) { return heads_.contains(u); });
  if (users.empty()) return Ok();
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
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
  }
  return Ok();
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
  std::vector<UserId> users;
  for (const auto& job : jobs) users.insert(users.end(), job->hint().begin(), job->hint().end());
  return tx.Lock(std::move(users));
}

void Writer::RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs) {
  Tx tx(*conn_);
  Status commit = Begin(jobs, tx);
  if (commit) {
    for (auto& job : jobs) {
      tx.BeginJob();
      const bool keep = job->Apply(tx);
      if (auto s = tx.EndJob(keep); !s) {
        commit = std::unexpected(Error{Errc::kInternal, s.error().message});
        break;
      }
    }
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
  }
  healthy_.store(conn_->healthy());
  for (auto& job : jobs) {
    Observe(job->op(), MonoSeconds() - job->submitted());
    job->Finish(commit);
  }
}

}  // namespace parley::store::pg
