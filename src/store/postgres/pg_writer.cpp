#include "store/postgres/pg_writer.hpp"

#include <algorithm>
#include <unordered_set>

namespace parley::store::pg {

// ---- Tx ------------------------------------------------------------------------

namespace {
// Head rows locked one by one in the array's order (the callers sort it
// ascending: the lock order), each through the primary key. A plain
// `user_id = ANY($1) ORDER BY user_id FOR UPDATE` left the plan to the
// planner, and a prepared statement's generic plan made while the table
// was small scans it whole (seen: 2.5 million rows read by 2,580 locks of
// a 1,000-user run); the LATERAL sub-select cannot be flattened.
constexpr const char* kLockHeads =
    "SELECT h.user_id, h.head, h.delivered_wm FROM unnest($1::int8[]) WITH ORDINALITY AS "
    "u(id, n) CROSS JOIN LATERAL (SELECT user_id, head, delivered_wm FROM mailbox_head WHERE "
    "user_id = u.id FOR UPDATE) h ORDER BY u.n";
constexpr const char* kTryLockHeads =
    "SELECT h.user_id, h.head, h.delivered_wm FROM unnest($1::int8[]) WITH ORDINALITY AS "
    "u(id, n) CROSS JOIN LATERAL (SELECT user_id, head, delivered_wm FROM mailbox_head WHERE "
    "user_id = u.id FOR UPDATE SKIP LOCKED) h ORDER BY u.n";
}  // namespace

Result<Rows> Tx::Read(const char* sql, const Params& params) {
  if (auto s = SendBuffered(); !s) return std::unexpected(s.error());
  return ReadPast(sql, params);
}

Result<Rows> Tx::ReadPast(const char* sql, const Params& params) {
  if (auto s = Pipe(sql, params); !s) return std::unexpected(s.error());
  auto rows = conn_.Sync();
  if (!rows) {
    broken_ = rows.error();
    return std::unexpected(rows.error());
  }
  if (rows->empty()) {
    broken_ = Error{Errc::kInternal, "postgresql: a read had no answer"};
    return std::unexpected(*broken_);
  }
  return std::move(rows->back());
}

Result<std::pair<Rows, Rows>> Tx::ReadPastBoth(const char* sql1, const Params& params1,
                                               const char* sql2, const Params& params2) {
  if (auto s = Pipe(sql1, params1); !s) return std::unexpected(s.error());
  if (auto s = Pipe(sql2, params2); !s) return std::unexpected(s.error());
  auto rows = conn_.Sync();
  if (!rows) {
    broken_ = rows.error();
    return std::unexpected(rows.error());
  }
  if (rows->size() < 2) {
    broken_ = Error{Errc::kInternal, "postgresql: a read had no answer"};
    return std::unexpected(*broken_);
  }
  const std::size_t n = rows->size();
  return std::pair<Rows, Rows>(std::move((*rows)[n - 2]), std::move((*rows)[n - 1]));
}

Status Tx::Pipe(const char* sql, const Params& params) {
  if (broken_) return std::unexpected(*broken_);
  if (auto s = conn_.Send(sql, params); !s) {
    broken_ = s.error();
    return s;
  }
  if (conn_.pending() > kMaxPipelined) {
    // Read the answers so far, so that neither side's buffers fill.
    if (auto r = conn_.Sync(); !r) {
      broken_ = r.error();
      return std::unexpected(r.error());
    }
  }
  return Ok();
}

Status Tx::SendBuffered() {
  if (broken_) return std::unexpected(*broken_);
  if (batch_bulk_.empty()) return Ok();
  if (auto s = batch_bulk_.SendTo(conn_); !s) {
    broken_ = s.error();
    return s;
  }
  return Ok();
}

std::optional<std::optional<IdemHit>> Tx::KnownIdem(UserId sender,
                                                    const std::string& client_msg_id) const {
  if (auto hit = batch_bulk_.FindIdem(sender, client_msg_id)) {
    return std::optional<IdemHit>(*hit);
  }
  auto it = idem_known_.find(BulkRows::IdemKey(sender, client_msg_id));
  if (it == idem_known_.end()) return std::nullopt;
  return it->second;
}

Status Tx::Prefetch(const std::vector<std::pair<UserId, std::string>>& keys,
                    const std::vector<AckHint>& acks) {
  // Each statement is piped; one Sync answers them all, in this order.
  int statements = 0;
  if (!keys.empty()) {
    std::vector<std::uint64_t> senders;
    std::vector<std::string> ids;
    for (const auto& [sender, id] : keys) {
      senders.push_back(sender);
      ids.push_back(id);
      idem_known_.emplace(BulkRows::IdemKey(sender, id), std::nullopt);
    }
    if (auto s = Pipe("SELECT k.s, k.c, i.msg_id, i.seq, i.ts_ms FROM unnest($1::int8[], "
                      "$2::bytea[]) AS k(s, c) CROSS JOIN LATERAL (SELECT msg_id, seq, ts_ms FROM "
                      "idem WHERE sender = k.s AND client_msg_id = k.c OFFSET 0) i",
                      Params().U64Array(senders).BytesArray(ids));
        !s) {
      return s;
    }
    ++statements;
  }
  std::vector<std::uint64_t> dev_users, dev_ids, in_users, in_after, in_up_to;
  if (!acks.empty()) {
    for (const auto& a : acks) {
      const auto head = heads_.find(a.user);
      if (head == heads_.end()) continue;  // not locked at BEGIN: the ack reads for itself
      if (ack_devices_.try_emplace({a.user, a.device}).second) {
        dev_users.push_back(a.user);
        dev_ids.push_back(a.device);
      }
      // One range per user: from its delivered watermark to the highest ack
      // (at most the head: an ack beyond it fails).
      const Seq up_to = std::min(a.up_to, head->second.head);
      auto [range, fresh] = incoming_.try_emplace(a.user);
      if (fresh) range->second.after = head->second.delivered;
      range->second.up_to = std::max({range->second.up_to, range->second.after, up_to});
    }
    for (const auto& [user, range] : incoming_) {
      if (range.up_to <= range.after) continue;
      in_users.push_back(user);
      in_after.push_back(range.after);
      in_up_to.push_back(range.up_to);
    }
    // Each array element probes its rows through the primary key: LATERAL
    // with OFFSET 0 keeps the planner from turning these into hash joins
    // over whole tables (a prepared statement's generic plan is made once,
    // often while the tables are small; seen: the idempotency prefetch as
    // a sequential scan of `idem` per batch, and the mailbox rows through
    // a partial index of every message of the user). `kind` and
    // `outgoing` are tested outside, so that the (user_id, seq) range is
    // what the index answers.
    if (auto s = Pipe("SELECT k.u, k.d, (SELECT c.seq FROM cursors c WHERE c.user_id = k.u AND "
                      "c.device_id = k.d) FROM unnest($1::int8[], $2::int8[]) AS k(u, d) CROSS "
                      "JOIN LATERAL (SELECT 1 FROM devices d WHERE d.user_id = k.u AND "
                      "d.device_id = k.d OFFSET 0) dv",
                      Params().U64Array(dev_users).U64Array(dev_ids));
        !s) {
      return s;
    }
    if (auto s = Pipe(
            "SELECT q.u, b.seq, b.msg_id, b.sender, b.conv_kind, b.conv_id, "
            "COALESCE(r.delivered_ts, 0) > 0 FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS "
            "q(u, lo, hi) CROSS JOIN LATERAL (SELECT m.user_id, m.seq, m.kind, m.outgoing, "
            "m.msg_id, m.sender, m.conv_kind, m.conv_id FROM mailbox m WHERE m.user_id = q.u AND "
            "m.seq > q.lo AND m.seq <= q.hi OFFSET 0) b LEFT JOIN receipts r ON r.msg_id = "
            "b.msg_id AND r.user_id = b.user_id WHERE b.kind = 1 AND NOT b.outgoing ORDER BY "
            "q.u, b.seq",
            Params().U64Array(in_users).U64Array(in_after).U64Array(in_up_to));
        !s) {
      return s;
    }
    statements += 2;
  }
  if (statements == 0) return Ok();
  auto rows = conn_.Sync();
  if (!rows) {
    broken_ = rows.error();
    return std::unexpected(rows.error());
  }
  if (rows->size() < static_cast<std::size_t>(statements)) {
    broken_ = Error{Errc::kInternal, "postgresql: a read had no answer"};
    return std::unexpected(*broken_);
  }
  std::size_t next = rows->size() - static_cast<std::size_t>(statements);
  if (!keys.empty()) {
    const Rows& idem = (*rows)[next++];
    for (int i = 0; i < idem.size(); ++i) {
      idem_known_[BulkRows::IdemKey(idem.U64(i, 0), idem.Bytes(i, 1))] =
          IdemHit{.msg_id = idem.U64(i, 2), .seq = idem.U64(i, 3), .ts_ms = idem.I64(i, 4)};
    }
  }
  if (!acks.empty()) {
    const Rows& devices = (*rows)[next++];
    for (int i = 0; i < devices.size(); ++i) {
      ack_devices_[{devices.U64(i, 0), devices.U64(i, 1)}] =
          AckDevice{.exists = true, .cursor = devices.IsNull(i, 2) ? 0 : devices.U64(i, 2)};
    }
    const Rows& incoming = (*rows)[next++];
    for (int i = 0; i < incoming.size(); ++i) {
      incoming_[incoming.U64(i, 0)].rows.push_back(IncomingRow{.seq = incoming.U64(i, 1),
                                                               .msg_id = incoming.U64(i, 2),
                                                               .sender = incoming.U64(i, 3),
                                                               .conv_kind = incoming.I16(i, 4),
                                                               .conv_id = incoming.U64(i, 5),
                                                               .delivered = incoming.Bool(i, 6)});
    }
    prefetch_valid_ = true;
  }
  return Ok();
}

std::optional<AckDevice> Tx::PrefetchedDevice(UserId user, DeviceId device) const {
  if (!prefetch_valid_) return std::nullopt;
  const auto it = ack_devices_.find({user, device});
  if (it == ack_devices_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::vector<IncomingRow>> Tx::PrefetchedIncoming(UserId user, Seq after,
                                                               Seq up_to) const {
  if (!prefetch_valid_) return std::nullopt;
  const auto it = incoming_.find(user);
  if (it == incoming_.end() || after < it->second.after || up_to > it->second.up_to) {
    return std::nullopt;
  }
  std::vector<IncomingRow> out;
  for (const auto& row : it->second.rows) {
    if (row.seq > after && row.seq <= up_to) out.push_back(row);
  }
  return out;
}

Status Tx::Defer(std::string_view what) {
  deferred_ = true;
  return Fail(Errc::kUnavailable, "deferred: " + std::string(what) + " is locked by another node");
}

Status Tx::LockRows(const char* lock, const std::vector<UserId>& users, bool make_missing) {
  Params p;
  p.U64Array(users);
  if (make_missing) {
    // Only rows this snapshot does not see: ON CONFLICT on an existing row
    // waits for another node's uncommitted UPDATE of it (docs/architecture.md,
    // "Making a missing head does not wait for another node's batch").
    if (auto s = Pipe("INSERT INTO mailbox_head (user_id) SELECT u FROM unnest($1::int8[]) AS u "
                      "WHERE NOT EXISTS (SELECT 1 FROM mailbox_head e WHERE e.user_id = u "
                      "OFFSET 0) ORDER BY u ON CONFLICT DO NOTHING",
                      p);
        !s) {
      return s;
    }
  }
  // In the array's (ascending) order, one primary-key probe each (see
  // kLockHeads).
  auto rows = ReadPast(lock, p);
  if (!rows) return std::unexpected(rows.error());
  for (int i = 0; i < rows->size(); ++i) {
    const UserId user = rows->U64(i, 0);
    heads_[user] = HeadRow{.head = rows->U64(i, 1), .delivered = rows->U64(i, 2)};
    max_head_ = std::max(max_head_, user);
  }
  return Ok();
}

Status Tx::WaitLock(const std::vector<UserId>& users) {
  if (users.empty()) return Ok();
  if (auto s = LockRows(kLockHeads, users, true); !s) return s;
  for (UserId u : users) {
    if (!heads_.contains(u)) return Fail(Errc::kInternal, "mailbox head row missing after insert");
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
    if (auto s = LockRows(kTryLockHeads, below, false); !s) return s;
    // Missing: taken by another transaction, or a head row not made yet
    // (making it could wait on another node's insert). Either way the job
    // runs again with these users locked at BEGIN.
    for (UserId u : below) {
      if (!heads_.contains(u)) return Defer("a mailbox head");
    }
  }
  return WaitLock(std::vector<UserId>(above, users.end()));
}

Status Tx::TryLockHeads(std::vector<UserId> users) {
  std::erase_if(users, [&](UserId u) { return heads_.contains(u); });
  if (users.empty()) return Ok();
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  // Making a missing row can wait (on another node inserting it), which is
  // safe only while nothing is held; otherwise the job goes to the next
  // batch like any whose head is taken.
  return LockRows(kTryLockHeads, users, heads_.empty());
}

Result<std::unordered_map<UserId, std::vector<UserId>>> Tx::ReceiptSenders(
    const std::vector<AckHint>& acks) {
  std::unordered_map<UserId, Seq> up_to;
  for (const auto& a : acks) up_to[a.user] = std::max(up_to[a.user], a.up_to);
  std::vector<std::uint64_t> users, highs;
  for (const auto& [user, high] : up_to) {
    users.push_back(user);
    highs.push_back(high);
  }
  // Primary-key probes per element, as in Prefetch.
  auto rows = ReadPast(
      "SELECT DISTINCT q.u, b.sender FROM unnest($1::int8[], $2::int8[]) AS q(u, hi) CROSS JOIN "
      "LATERAL (SELECT delivered_wm FROM mailbox_head WHERE user_id = q.u OFFSET 0) h CROSS JOIN "
      "LATERAL (SELECT m.sender, m.kind, m.outgoing FROM mailbox m WHERE m.user_id = q.u AND "
      "m.seq > h.delivered_wm AND m.seq <= q.hi OFFSET 0) b WHERE b.kind = 1 AND NOT b.outgoing",
      Params().U64Array(users).U64Array(highs));
  if (!rows) return std::unexpected(rows.error());
  std::unordered_map<UserId, std::vector<UserId>> out;
  for (int i = 0; i < rows->size(); ++i) out[rows->U64(i, 0)].push_back(rows->U64(i, 1));
  return out;
}

Status Tx::LockGroups(std::vector<GroupId> groups) {
  if (groups.empty()) return Ok();
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  auto rows = ReadPast(
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
    auto r = ReadPast("SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE", p);
    if (!r) return std::unexpected(r.error());
    groups_[group] = !r->empty();
    return !r->empty();
  }
  auto r = ReadPast("SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE SKIP LOCKED", p);
  if (!r) return std::unexpected(r.error());
  if (!r->empty()) {
    groups_[group] = true;
    return true;
  }
  auto exists = ReadPast("SELECT 1 FROM groups WHERE group_id = $1", p);
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
    job_bulk_.Clear();
    if (broken_) return std::unexpected(*broken_);
    return Ok();
  }
  undo_.clear();
  if (!writes_.empty()) {
    // What the acks' prefetch read may no longer hold (a device added or
    // removed, rows deleted): later acks read for themselves.
    prefetch_valid_ = false;
    // Plain writes keep their place after every earlier job's rows.
    if (auto s = SendBuffered(); !s) {
      writes_.clear();
      return s;
    }
    for (const auto& w : writes_) {
      if (auto s = Pipe(w.sql, w.params); !s) {
        writes_.clear();
        return s;
      }
    }
    writes_.clear();
  }
  batch_bulk_.Merge(std::move(job_bulk_));
  job_bulk_.Clear();
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
  // A probe and the ctid per head: a plain join scanned the whole table for
  // 30 or more heads (docs/architecture.md, "Plans"). The ctid is safe: every
  // head in heads_ is held FOR UPDATE by this transaction (LockRows).
  return Pipe(
      "UPDATE mailbox_head AS h SET head = v.head, delivered_wm = v.delivered "
      "FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(user_id, head, delivered) "
      "CROSS JOIN LATERAL (SELECT ctid AS t FROM mailbox_head WHERE user_id = v.user_id "
      "OFFSET 0) r WHERE h.ctid = r.t",
      p);
}

Status Tx::Commit() {
  if (auto s = SendBuffered(); !s) return s;
  if (auto s = FlushHeads(); !s) return s;
  if (auto s = Pipe("COMMIT"); !s) return s;
  auto r = conn_.Sync();
  if (!r) {
    broken_ = r.error();
    return std::unexpected(r.error());
  }
  return Ok();
}

void Tx::Reset() {
  heads_.clear();
  groups_.clear();
  max_head_ = 0;
  undo_.clear();
  writes_.clear();
  job_bulk_.Clear();
  batch_bulk_.Clear();
  idem_known_.clear();
  ack_devices_.clear();
  incoming_.clear();
  prefetch_valid_ = false;
  broken_.reset();
}

// ---- Writer --------------------------------------------------------------------

WriterMetrics::WriterMetrics(Registry& r)
    : deferred(r.GetCounter("parley_pg_writer_deferred_total",
                            "PostgreSQL write batches that sent jobs on to the next batch (a head "
                            "another node's transaction held)")),
      retried(r.GetCounter("parley_pg_writer_lock_retries_total",
                           "PostgreSQL write batches rolled back after losing a lock wait, whose "
                           "jobs ran again")),
      batch_cap(r.GetGauge("parley_pg_writer_batch_cap",
                           "Jobs the PostgreSQL writer takes per batch now (shrinks under lock "
                           "contention)")),
      connected(r.GetGauge("parley_pg_writer_connected",
                           "1 while the PostgreSQL writer's connection is up (/ready needs it)")) {}

Writer::Writer(std::unique_ptr<Conn> conn, StoreObserver observer, Registry* metrics)
    : conn_(std::move(conn)), observer_(std::move(observer)) {
  if (metrics != nullptr) {
    metrics_.emplace(*metrics);
    metrics_->batch_cap.Set(static_cast<double>(kMaxJobsPerCommit));
    metrics_->connected.Set(1);
  }
  thread_ = std::thread([this] { Run(); });
}

void Writer::SetHealthy(bool up) {
  healthy_.store(up);
  if (metrics_) metrics_->connected.Set(up ? 1 : 0);
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
      const auto ready = [this] { return !queue_.empty() || closed_; };
      // While the connection is down the writer reconnects on its own, idle
      // or not, so that /ready (which asks it) says 200 only once a write
      // can go through, not at the first write after the server is back.
      while (!healthy_.load() && !ready()) {
        if (cv_.wait_for(lock, kReconnectPoll, ready)) break;
        lock.unlock();
        SetHealthy(conn_->EnsureConnected());
        lock.lock();
      }
      cv_.wait(lock, ready);
      if (queue_.empty()) return;
      const std::size_t cap = batch_cap_.load(std::memory_order_relaxed);
      if (queue_.size() <= cap) {
        jobs.swap(queue_);
      } else {
        for (std::size_t i = 0; i < cap; ++i) {
          jobs.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    RunBatch(jobs);
    jobs.clear();
  }
}

Status Writer::Begin(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx,
                     std::deque<std::unique_ptr<WriteJob>>& later) {
  if (!conn_->EnsureConnected()) {
    return Fail(Errc::kInternal, "postgresql unavailable");
  }
  auto s = BeginOnce(jobs, tx, later);
  // A connection the server dropped meanwhile (a restart) only shows now;
  // nothing was committed, so reconnecting and beginning again is safe.
  if (!s && !conn_->healthy() && conn_->EnsureConnected()) {
    tx.Reset();
    s = BeginOnce(jobs, tx, later);
  }
  return s;
}

Status Writer::BeginOnce(std::deque<std::unique_ptr<WriteJob>>& jobs, Tx& tx,
                         std::deque<std::unique_ptr<WriteJob>>& later) {
  if (auto s = conn_->EnterPipeline(); !s) return s;
  if (auto s = tx.Pipe("BEGIN"); !s) return s;
  // The lock order: group rows, then heads, each ascending (see pg_writer.hpp).
  std::vector<GroupId> groups;
  std::vector<UserId> users;
  for (const auto& job : jobs) {
    groups.insert(groups.end(), job->group_hint().begin(), job->group_hint().end());
    users.insert(users.end(), job->hint().begin(), job->hint().end());
  }
  if (auto s = tx.LockGroups(std::move(groups)); !s) return s;
  // An ack's receipts lock their senders' heads: known now, they are tried
  // with the rest instead of being locked one round trip per ack while the
  // batch runs (and the ack deferred, cutting the batch, when another
  // node's batch holds one).
  std::vector<AckHint> ack_hints;
  for (const auto& job : jobs) {
    if (job->ack_hint()) ack_hints.push_back(*job->ack_hint());
  }
  if (!ack_hints.empty()) {
    auto senders = tx.ReceiptSenders(ack_hints);
    if (!senders) return std::unexpected(senders.error());
    for (auto& job : jobs) {
      if (!job->ack_hint()) continue;
      const auto it = senders->find(job->ack_hint()->user);
      if (it == senders->end()) continue;
      job->AddHint(it->second);
      users.insert(users.end(), it->second.begin(), it->second.end());
    }
  }
  // A job sent on kMaxDeferrals times takes its heads now, waiting, in
  // ascending order while nothing else is held (the old, safe way), so that
  // it never waits out of order later (which could deadlock, and costs
  // PostgreSQL's deadlock_timeout to find).
  std::vector<UserId> must_wait;
  for (const auto& job : jobs) {
    if (job->deferrals() >= kMaxDeferrals) {
      must_wait.insert(must_wait.end(), job->hint().begin(), job->hint().end());
    }
  }
  if (auto s = tx.Lock(std::move(must_wait)); !s) return s;
  // The other heads are tried, never waited for, here: a job whose head
  // another transaction holds goes to the next batch, and so does every
  // later job naming a user of one sent on (their order), even one that
  // took its heads above (see pg_writer.hpp).
  if (auto s = tx.TryLockHeads(std::move(users)); !s) return s;
  std::unordered_set<UserId> sent_on;
  std::deque<std::unique_ptr<WriteJob>> kept;
  std::vector<std::pair<UserId, std::string>> idem;
  std::vector<AckHint> acks;
  for (auto& job : jobs) {
    const auto& hint = job->hint();
    const bool after_one_sent_on =
        std::any_of(hint.begin(), hint.end(), [&](UserId u) { return sent_on.contains(u); });
    const bool holds_all =
        std::all_of(hint.begin(), hint.end(), [&](UserId u) { return tx.HoldsHead(u); });
    if (after_one_sent_on || (!holds_all && job->deferrals() < kMaxDeferrals)) {
      sent_on.insert(hint.begin(), hint.end());
      job->Deferred({}, {});
      later.push_back(std::move(job));
      continue;
    }
    // What a job reads is prefetched only when its heads are held (a job
    // kept without them reads for itself once it has them).
    if (holds_all && job->idem_key()) idem.push_back(*job->idem_key());
    if (holds_all && job->ack_hint()) acks.push_back(*job->ack_hint());
    kept.push_back(std::move(job));
  }
  jobs.swap(kept);
  // After the heads: no other node can add these keys, or append to or
  // receipt these mailboxes, meanwhile.
  return tx.Prefetch(idem, acks);
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
  if (metrics_) metrics_->retried.Inc();
  Requeue(std::move(again));
}

void Writer::Adapt(bool lost_lock_wait, bool deferred, double begin_seconds) {
  std::size_t cap = batch_cap_.load(std::memory_order_relaxed);
  if (lost_lock_wait) {
    cap /= 4;
  } else if (deferred || begin_seconds > kSlowBegin) {
    cap /= 2;
  } else {
    cap *= 2;
  }
  cap = std::clamp(cap, kMinJobsPerCommit, kMaxJobsPerCommit);
  batch_cap_.store(cap, std::memory_order_relaxed);
  if (metrics_) metrics_->batch_cap.Set(static_cast<double>(cap));
}

void Writer::Requeue(std::deque<std::unique_ptr<WriteJob>> jobs) {
  if (jobs.empty()) return;
  std::lock_guard lock(mu_);
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) queue_.push_front(std::move(*it));
}

void Writer::RunBatch(std::deque<std::unique_ptr<WriteJob>>& jobs) {
  Tx tx(*conn_);
  const double begin_start = MonoSeconds();
  // Each job's place in the batch: what goes back to the queue goes back in
  // this order, whether sent on at BEGIN or deferred in the job phase.
  std::unordered_map<const WriteJob*, std::size_t> order;
  for (std::size_t i = 0; i < jobs.size(); ++i) order[jobs[i].get()] = i;
  std::deque<std::unique_ptr<WriteJob>> later;
  Status commit = Begin(jobs, tx, later);
  const double begin_seconds = MonoSeconds() - begin_start;
  Observe("begin", begin_seconds);
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
  const bool deferred = ran < jobs.size() || !later.empty();
  if (deferred) {
    deferred_.fetch_add(1);
    if (metrics_) metrics_->deferred.Inc();
    for (std::size_t i = ran; i < jobs.size(); ++i) later.push_back(std::move(jobs[i]));
    jobs.resize(ran);
    std::sort(later.begin(), later.end(),
              [&](const auto& a, const auto& b) { return order[a.get()] < order[b.get()]; });
    Requeue(std::move(later));
  }
  if (commit) {
    const double start = MonoSeconds();
    commit = tx.Commit();
    Observe("commit", MonoSeconds() - start);
  }
  bool lost = false;
  if (!commit) {
    commit.error().code = Errc::kInternal;
    if (conn_->healthy()) {
      // Answers still pending are read (and dropped) with the ROLLBACK's.
      if (conn_->Send("ROLLBACK")) (void)conn_->Sync();
    }
    lost = LostALockWait(commit.error()) && conn_->healthy();
    if (lost) Retry(jobs);
  }
  conn_->ExitPipeline();
  Adapt(lost, deferred, begin_seconds);
  SetHealthy(conn_->healthy());
  for (auto& job : jobs) {
    Observe(job->op(), MonoSeconds() - job->submitted());
    job->Finish(commit);
  }
}

}  // namespace parley::store::pg
