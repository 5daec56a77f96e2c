// The local SQLite store (store.hpp). Plain C API, one connection, WAL.
#include "parley/store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "wire.hpp"

namespace parley::sdk {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  local_id INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_id TEXT UNIQUE,
  ord INTEGER,
  client_msg_id TEXT NOT NULL,
  conv TEXT NOT NULL,
  from_user TEXT NOT NULL,
  from_device TEXT NOT NULL,
  outgoing INTEGER NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  media_id TEXT NOT NULL DEFAULT '',
  ts_ms INTEGER NOT NULL,
  seq INTEGER NOT NULL DEFAULT 0,
  encrypted INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_sender_cmid ON messages(from_user, client_msg_id);
CREATE INDEX IF NOT EXISTS messages_by_conv ON messages(conv, ord);
CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL,
  k TEXT NOT NULL,
  v BLOB NOT NULL,
  PRIMARY KEY (ns, k)
) WITHOUT ROWID;
)sql";

// Stored status numbers: outgoing ones advance 0 -> 3; failed and received
// stand apart.
int StatusNumber(MessageStatus s) {
  switch (s) {
    case MessageStatus::kPending:
      return 0;
    case MessageStatus::kSent:
      return 1;
    case MessageStatus::kDelivered:
      return 2;
    case MessageStatus::kRead:
      return 3;
    case MessageStatus::kFailed:
      return 4;
    case MessageStatus::kReceived:
      return 5;
  }
  return 5;
}

MessageStatus StatusFromNumber(int n) {
  switch (n) {
    case 0:
      return MessageStatus::kPending;
    case 1:
      return MessageStatus::kSent;
    case 2:
      return MessageStatus::kDelivered;
    case 3:
      return MessageStatus::kRead;
    case 4:
      return MessageStatus::kFailed;
    default:
      return MessageStatus::kReceived;
  }
}

// msg_ids are time-ordered 64-bit integers: their numeric order is their
// time order.
std::int64_t Ord(const std::string& msg_id) {
  std::uint64_t v = 0;
  std::from_chars(msg_id.data(), msg_id.data() + msg_id.size(), v);
  return static_cast<std::int64_t>(v);
}

constexpr const char* kMessageColumns =
    "msg_id, client_msg_id, conv, from_user, from_device, outgoing, kind, body, media_id, "
    "ts_ms, seq, encrypted, status";

}  // namespace

// A prepared statement; errors are remembered and reported by Step.
class Store::Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v) {
    if (ok())
      rc_ = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, std::string_view v) {
    if (ok())
      rc_ = sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, std::int64_t v) {
    if (ok()) rc_ = sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& BindNull(int i) {
    if (ok()) rc_ = sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW or SQLITE_DONE, or an error code.
  int Step() {
    if (!ok()) return rc_;
    rc_ = sqlite3_step(stmt_);
    return rc_;
  }
  Status Run() {
    int rc = Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Failure();
    return {};
  }
  std::unexpected<Error> Failure() const {
    return Fail("storage", std::string(sqlite3_errstr(rc_)) + ": " + sqlite3_errmsg(db_));
  }
  bool failed() const { return rc_ != SQLITE_ROW && rc_ != SQLITE_DONE && rc_ != SQLITE_OK; }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
  }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p == nullptr
               ? std::string()
               : std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
  }
  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  bool ok() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW || rc_ == SQLITE_DONE; }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

Store::Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

Store::~Store() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Fail("storage", "cannot open " + path + ": " + why);
  }
  std::unique_ptr<Store> store(new Store(db, path));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // WAL: readers never block the writer, and a commit is one append. With
  // synchronous=NORMAL a commit survives a crash of the process (not of the
  // machine); tokens are written with FULL (SaveTokens).
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"}) {
    if (auto s = store->Exec(sql); !s) return std::unexpected(s.error());
  }
  Stmt version(db, "PRAGMA user_version");
  if (version.Step() != SQLITE_ROW) return version.Failure();
  const auto found = version.Int(0);
  if (found > kSchemaVersion) {
    return Fail("storage",
                path + " was written by a newer SDK (schema " + std::to_string(found) + ")");
  }
  if (auto s = store->Exec(kSchema); !s) return std::unexpected(s.error());
  if (auto s = store->Exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str()); !s)
    return std::unexpected(s.error());
  return store;
}

Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return Fail("storage", why);
  }
  return {};
}

Store::Stmt Store::Prepare(const char* sql) { return Stmt(db_, sql); }

Status Store::Transaction(const std::function<Status()>& body) {
  if (tx_depth_ > 0) {
    ++tx_depth_;
    auto s = body();
    --tx_depth_;
    return s;
  }
  if (auto s = Exec("BEGIN IMMEDIATE"); !s) return s;
  tx_depth_ = 1;
  auto s = body();
  tx_depth_ = 0;
  if (!s) {
    (void)Exec("ROLLBACK");
    return s;
  }
  if (auto c = Exec("COMMIT"); !c) {
    (void)Exec("ROLLBACK");
    return c;
  }
  return {};
}

// ---- Meta, account, tokens, cursor -------------------------------------------

Result<std::optional<std::string>> Store::GetMeta(std::string_view key) {
  auto st = Prepare("SELECT v FROM meta WHERE k = ?");
  st.Bind(1, key);
  int rc = st.Step();
  if (rc == SQLITE_ROW) return st.Text(0);
  if (rc == SQLITE_DONE) return std::nullopt;
  return st.Failure();
}

Status Store::SetMeta(std::string_view key, std::string_view value) {
  auto st =
      Prepare("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v");
  st.Bind(1, key).Bind(2, value);
  return st.Run();
}

Result<std::optional<Account>> Store::GetAccount() {
  auto user = GetMeta("user_id");
  if (!user) return std::unexpected(user.error());
  if (!*user) return std::nullopt;
  Account a;
  a.user_id = **user;
  for (auto [key, field] : {std::pair{"device_id", &a.device_id}, std::pair{"phone", &a.phone},
                            std::pair{"server_url", &a.server_url}}) {
    auto v = GetMeta(key);
    if (!v) return std::unexpected(v.error());
    *field = v->value_or("");
  }
  return a;
}

Result<std::optional<Tokens>> Store::GetTokens() {
  auto access = GetMeta("access_token");
  if (!access) return std::unexpected(access.error());
  if (!*access) return std::nullopt;
  Tokens t;
  t.access_token = **access;
  auto refresh = GetMeta("refresh_token");
  auto access_exp = GetMeta("access_expires_ms");
  auto refresh_exp = GetMeta("refresh_expires_ms");
  if (!refresh || !access_exp || !refresh_exp) return Fail("storage", "reading tokens failed");
  t.refresh_token = refresh->value_or("");
  t.access_expires_ms = std::stoll(access_exp->value_or("0"));
  t.refresh_expires_ms = std::stoll(refresh_exp->value_or("0"));
  return t;
}

Status Store::SaveLogin(const Account& account, const Tokens& tokens) {
  auto s = Transaction([&]() -> Status {
    for (const char* sql : {"DELETE FROM meta", "DELETE FROM messages", "DELETE FROM kv"}) {
      if (auto r = Exec(sql); !r) return r;
    }
    for (auto [k, v] : {std::pair<const char*, std::string>{"user_id", account.user_id},
                        {"device_id", account.device_id},
                        {"phone", account.phone},
                        {"server_url", account.server_url},
                        {"access_token", tokens.access_token},
                        {"access_expires_ms", std::to_string(tokens.access_expires_ms)},
                        {"refresh_token", tokens.refresh_token},
                        {"refresh_expires_ms", std::to_string(tokens.refresh_expires_ms)}}) {
      if (auto r = SetMeta(k, v); !r) return r;
    }
    return {};
  });
  return s;
}

Status Store::SaveTokens(const Tokens& tokens) {
  if (auto s = Exec("PRAGMA synchronous=FULL"); !s) return s;
  auto s = Transaction([&]() -> Status {
    for (auto [k, v] : {std::pair<const char*, std::string>{"access_token", tokens.access_token},
                        {"access_expires_ms", std::to_string(tokens.access_expires_ms)},
                        {"refresh_token", tokens.refresh_token},
                        {"refresh_expires_ms", std::to_string(tokens.refresh_expires_ms)}}) {
      if (auto r = SetMeta(k, v); !r) return r;
    }
    return {};
  });
  (void)Exec("PRAGMA synchronous=NORMAL");
  return s;
}

Status Store::ClearTokens() {
  return Exec(
      "DELETE FROM meta WHERE k IN ('access_token', 'access_expires_ms', 'refresh_token', "
      "'refresh_expires_ms')");
}

Result<std::uint64_t> Store::GetCursor() {
  auto v = GetMeta("cursor");
  if (!v) return std::unexpected(v.error());
  return *v ? std::stoull(**v) : 0;
}

Status Store::SetCursor(std::uint64_t seq) { return SetMeta("cursor", std::to_string(seq)); }

// ---- Messages ------------------------------------------------------------------

namespace {
void BindMessage(auto& st, const Message& m, MessageStatus status) {
  if (m.msg_id.empty()) {
    st.BindNull(1).BindNull(2);
  } else {
    st.Bind(1, m.msg_id).Bind(2, Ord(m.msg_id));
  }
  st.Bind(3, m.client_msg_id)
      .Bind(4, m.conv.Key())
      .Bind(5, m.from.user)
      .Bind(6, m.from.device)
      .Bind(7, std::int64_t{m.outgoing ? 1 : 0})
      .Bind(8, m.kind)
      .Bind(9, m.body_json)
      .Bind(10, m.media_id)
      .Bind(11, m.ts_ms)
      .Bind(12, static_cast<std::int64_t>(m.seq))
      .Bind(13, std::int64_t{m.encrypted ? 1 : 0})
      .Bind(14, std::int64_t{StatusNumber(status)});
}

constexpr const char* kInsertMessage =
    "INSERT INTO messages (msg_id, ord, client_msg_id, conv, from_user, from_device, outgoing, "
    "kind, body, media_id, ts_ms, seq, encrypted, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
}  // namespace

Result<Store::Insert> Store::PutMessage(const Message& m) {
  {
    auto st = Prepare("SELECT 1 FROM messages WHERE msg_id = ?");
    st.Bind(1, m.msg_id);
    int rc = st.Step();
    if (rc == SQLITE_ROW) return Insert::kDuplicate;
    if (rc != SQLITE_DONE) return st.Failure();
  }
  {
    // The same sender and client_msg_id is the same message (the server's
    // idempotency key): this device's own send coming back in the mailbox.
    auto st = Prepare(
        "UPDATE messages SET msg_id = ?, ord = ?, ts_ms = ?, seq = ?, "
        "status = CASE WHEN status = 0 THEN 1 ELSE status END "
        "WHERE from_user = ? AND client_msg_id = ? AND msg_id IS NULL");
    st.Bind(1, m.msg_id).Bind(2, Ord(m.msg_id)).Bind(3, m.ts_ms);
    st.Bind(4, static_cast<std::int64_t>(m.seq)).Bind(5, m.from.user).Bind(6, m.client_msg_id);
    if (auto s = st.Run(); !s) return std::unexpected(s.error());
    if (sqlite3_changes(db_) > 0) return Insert::kOwnSend;
  }
  auto st = Prepare(kInsertMessage);
  BindMessage(st, m, m.status);
  int rc = st.Step();
  if (rc == SQLITE_CONSTRAINT) return Insert::kDuplicate;  // (sender, client_msg_id) known
  if (rc != SQLITE_DONE) return st.Failure();
  return Insert::kNew;
}

Status Store::AddPending(const Message& m) {
  auto st = Prepare(kInsertMessage);
  BindMessage(st, m, MessageStatus::kPending);
  int rc = st.Step();
  if (rc == SQLITE_CONSTRAINT) return Fail("invalid", "client_msg_id already used");
  if (rc != SQLITE_DONE) return st.Failure();
  return {};
}

Result<std::vector<Message>> Store::QueryMessages(Stmt& st) {
  std::vector<Message> out;
  for (;;) {
    int rc = st.Step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return st.Failure();
    Message m;
    m.msg_id = st.Text(0);
    m.client_msg_id = st.Text(1);
    m.conv = Conv::FromKey(st.Text(2)).value_or(Conv{});
    m.from = {st.Text(3), st.Text(4)};
    m.outgoing = st.Int(5) != 0;
    m.kind = st.Text(6);
    m.body_json = st.Text(7);
    m.text = detail::TextOf(m.body_json);
    m.media_id = st.Text(8);
    m.ts_ms = st.Int(9);
    m.seq = static_cast<std::uint64_t>(st.Int(10));
    m.encrypted = st.Int(11) != 0;
    m.status = StatusFromNumber(static_cast<int>(st.Int(12)));
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<Message>> Store::Pending() {
  auto sql = std::string("SELECT ") + kMessageColumns +
             " FROM messages WHERE status = 0 ORDER BY local_id";
  auto st = Prepare(sql.c_str());
  return QueryMessages(st);
}

Result<bool> Store::MarkSent(const std::string& client_msg_id, const SentMessage& sent) {
  auto st = Prepare(
      "UPDATE messages SET msg_id = ?, ord = ?, ts_ms = ?, seq = ?, status = 1 "
      "WHERE client_msg_id = ? AND status = 0 AND outgoing = 1 AND "
      "from_user = (SELECT v FROM meta WHERE k = 'user_id')");
  st.Bind(1, sent.msg_id).Bind(2, Ord(sent.msg_id)).Bind(3, sent.ts_ms);
  st.Bind(4, static_cast<std::int64_t>(sent.seq)).Bind(5, client_msg_id);
  if (auto s = st.Run(); !s) return std::unexpected(s.error());
  return sqlite3_changes(db_) > 0;
}

Status Store::MarkFailed(const std::string& client_msg_id) {
  auto st = Prepare(
      "UPDATE messages SET status = 4 WHERE client_msg_id = ? AND status = 0 AND outgoing = 1");
  st.Bind(1, client_msg_id);
  return st.Run();
}

Result<std::vector<std::string>> Store::AdvanceStatus(const std::vector<std::string>& msg_ids,
                                                      MessageStatus status) {
  std::vector<std::string> changed;
  const int to = StatusNumber(status);
  for (const auto& id : msg_ids) {
    auto st = Prepare(
        "UPDATE messages SET status = ? WHERE msg_id = ? AND outgoing = 1 AND status < ? AND "
        "status <= 3");
    st.Bind(1, std::int64_t{to}).Bind(2, id).Bind(3, std::int64_t{to});
    if (auto s = st.Run(); !s) return std::unexpected(s.error());
    if (sqlite3_changes(db_) > 0) changed.push_back(id);
  }
  return changed;
}

Status Store::MarkReadUpTo(const Conv& conv, const std::string& msg_id) {
  auto st = Prepare(
      "UPDATE messages SET status = 3 WHERE conv = ? AND outgoing = 0 AND status = 5 AND "
      "ord <= ?");
  st.Bind(1, conv.Key()).Bind(2, Ord(msg_id));
  return st.Run();
}

Result<std::optional<Message>> Store::GetMessage(const std::string& msg_id) {
  auto sql = std::string("SELECT ") + kMessageColumns + " FROM messages WHERE msg_id = ?";
  auto st = Prepare(sql.c_str());
  st.Bind(1, msg_id);
  auto rows = QueryMessages(st);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::nullopt;
  return std::move(rows->front());
}

Result<std::optional<Message>> Store::GetByClientMsgId(const std::string& client_msg_id) {
  auto sql = std::string("SELECT ") + kMessageColumns +
             " FROM messages WHERE client_msg_id = ? AND "
             "from_user = (SELECT v FROM meta WHERE k = 'user_id')";
  auto st = Prepare(sql.c_str());
  st.Bind(1, client_msg_id);
  auto rows = QueryMessages(st);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::nullopt;
  return std::move(rows->front());
}

Result<std::vector<Message>> Store::Messages(const Conv& conv, int limit,
                                             const std::string& before_msg_id) {
  // Pending messages (no ord yet) are the newest.
  auto sql = std::string("SELECT ") + kMessageColumns +
             " FROM messages WHERE conv = ? AND (? = 0 OR (ord IS NOT NULL AND ord < ?)) "
             "ORDER BY ord IS NULL DESC, ord DESC, local_id DESC LIMIT ?";
  auto st = Prepare(sql.c_str());
  const std::int64_t before = before_msg_id.empty() ? 0 : Ord(before_msg_id);
  st.Bind(1, conv.Key()).Bind(2, before).Bind(3, before).Bind(4, std::int64_t{limit});
  return QueryMessages(st);
}

// ---- Key-value ---------------------------------------------------------------------

Result<std::optional<std::string>> Store::Get(std::string_view ns, std::string_view key) {
  auto st = Prepare("SELECT v FROM kv WHERE ns = ? AND k = ?");
  st.Bind(1, ns).Bind(2, key);
  int rc = st.Step();
  if (rc == SQLITE_ROW) return st.Blob(0);
  if (rc == SQLITE_DONE) return std::nullopt;
  return st.Failure();
}

Status Store::Put(std::string_view ns, std::string_view key, std::string_view value) {
  auto st = Prepare(
      "INSERT INTO kv (ns, k, v) VALUES (?, ?, ?) ON CONFLICT(ns, k) DO UPDATE SET v = excluded.v");
  st.Bind(1, ns).Bind(2, key).BindBlob(3, value);
  return st.Run();
}

Status Store::Delete(std::string_view ns, std::string_view key) {
  auto st = Prepare("DELETE FROM kv WHERE ns = ? AND k = ?");
  st.Bind(1, ns).Bind(2, key);
  return st.Run();
}

Result<std::vector<std::string>> Store::Keys(std::string_view ns, std::string_view prefix) {
  // substr() rather than LIKE: keys may contain % and _.
  auto st = Prepare("SELECT k FROM kv WHERE ns = ? AND substr(k, 1, ?) = ? ORDER BY k");
  st.Bind(1, ns).Bind(2, static_cast<std::int64_t>(prefix.size())).Bind(3, prefix);
  std::vector<std::string> keys;
  for (;;) {
    int rc = st.Step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return st.Failure();
    keys.push_back(st.Text(0));
  }
  return keys;
}

// ---- RefreshLock ------------------------------------------------------------------

std::optional<RefreshLock> RefreshLock::TryAcquire(const std::string& store_path) {
  const std::string lock_path = store_path + ".refresh-lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  // A read-only or odd directory: refresh without the lock rather than never.
  if (fd < 0) return RefreshLock(-1);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  return RefreshLock(fd);
}

RefreshLock::~RefreshLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace parley::sdk
