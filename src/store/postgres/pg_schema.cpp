// The schema, its format version, shared secrets, and opening the store.
//
// Every table is keyed by the user its rows belong to where there is one
// (mailbox, heads, devices, cursors, peers, keys, read marks), so that a
// later step can shard by user. All strings are bytea: the store keeps
// bytes as given and never depends on the database's encoding.
#include <algorithm>
#include <string>
#include <utility>

#include "store/postgres/pg_store_impl.hpp"

namespace parley::store {
namespace pg {
namespace {

// The schema this build writes. A database with a higher format was written
// by a newer build: refused. Lower ones are upgraded step by step.
constexpr int kFormat = 1;
constexpr int kMailboxPartitions = 8;

std::string SchemaV1() {
  std::string ddl = R"sql(
CREATE TABLE users (
  user_id int8 PRIMARY KEY, phone bytea NOT NULL UNIQUE, phone_hash bytea,
  created_ms int8 NOT NULL, name bytea NOT NULL, status_text bytea NOT NULL,
  avatar_media_id bytea NOT NULL, last_seen_visibility bytea NOT NULL, last_seen_ms int8 NOT NULL);
CREATE INDEX users_phone_hash ON users (phone_hash);
CREATE TABLE devices (
  user_id int8 NOT NULL, device_id int8 NOT NULL, name bytea NOT NULL, platform bytea NOT NULL,
  created_ms int8 NOT NULL, last_active_ms int8 NOT NULL, token_gen int8 NOT NULL,
  PRIMARY KEY (user_id, device_id));
CREATE TABLE refresh_tokens (
  hash bytea PRIMARY KEY, user_id int8 NOT NULL, device_id int8 NOT NULL,
  token_gen int8 NOT NULL, expires_ms int8 NOT NULL, used bool NOT NULL);
CREATE TABLE otp (
  phone bytea PRIMARY KEY, code_hash bytea NOT NULL, expires_ms int8 NOT NULL,
  attempts int8 NOT NULL);
CREATE TABLE mailbox_head (
  user_id int8 PRIMARY KEY, head int8 NOT NULL DEFAULT 0, delivered_wm int8 NOT NULL DEFAULT 0)
  WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01);
CREATE TABLE mailbox (
  user_id int8 NOT NULL, seq int8 NOT NULL, kind int2 NOT NULL, ts_ms int8 NOT NULL,
  msg_id int8, outgoing bool NOT NULL DEFAULT false, sender int8 NOT NULL DEFAULT 0,
  conv_kind int2 NOT NULL DEFAULT 0, conv_id int8 NOT NULL DEFAULT 0,
  by_user int8 NOT NULL DEFAULT 0, status int2 NOT NULL DEFAULT 0, msg_ids bytea, payload bytea,
  PRIMARY KEY (user_id, seq)) PARTITION BY HASH (user_id);
CREATE UNIQUE INDEX mailbox_conv ON mailbox (user_id, conv_kind, conv_id, msg_id) WHERE kind = 1;
CREATE INDEX mailbox_ts ON mailbox USING brin (ts_ms);
CREATE TABLE messages (
  msg_id int8 PRIMARY KEY, sender int8 NOT NULL, sender_device int8 NOT NULL,
  conv_kind int2 NOT NULL, conv_id int8 NOT NULL, client_msg_id bytea NOT NULL, kind bytea NOT NULL,
  body bytea NOT NULL, media_id bytea NOT NULL, ts_ms int8 NOT NULL, recipients int8 NOT NULL);
CREATE TABLE idem (
  sender int8 NOT NULL, client_msg_id bytea NOT NULL, msg_id int8 NOT NULL, seq int8 NOT NULL,
  ts_ms int8 NOT NULL, PRIMARY KEY (sender, client_msg_id));
CREATE TABLE cursors (
  user_id int8 NOT NULL, device_id int8 NOT NULL, seq int8 NOT NULL,
  PRIMARY KEY (user_id, device_id));
CREATE TABLE read_marks (
  user_id int8 NOT NULL, conv_kind int2 NOT NULL, conv_id int8 NOT NULL, msg_id int8 NOT NULL,
  PRIMARY KEY (user_id, conv_kind, conv_id));
CREATE TABLE receipts (
  msg_id int8 NOT NULL, user_id int8 NOT NULL, delivered_ts int8 NOT NULL, read_ts int8 NOT NULL,
  PRIMARY KEY (msg_id, user_id));
CREATE TABLE peers (
  user_id int8 NOT NULL, peer_id int8 NOT NULL, wrote bool NOT NULL DEFAULT false,
  PRIMARY KEY (user_id, peer_id));
CREATE TABLE groups (
  group_id int8 PRIMARY KEY, name bytea NOT NULL, avatar_media_id bytea NOT NULL,
  created_by int8 NOT NULL, created_ms int8 NOT NULL, next_join_order int8 NOT NULL);
CREATE TABLE group_members (
  group_id int8 NOT NULL, user_id int8 NOT NULL, role int2 NOT NULL, joined_ms int8 NOT NULL,
  join_order int8 NOT NULL, PRIMARY KEY (group_id, user_id));
CREATE INDEX group_members_user ON group_members (user_id);
CREATE TABLE group_former (
  group_id int8 NOT NULL, user_id int8 NOT NULL, left_ms int8 NOT NULL,
  PRIMARY KEY (group_id, user_id));
CREATE TABLE device_keys (
  user_id int8 NOT NULL, device_id int8 NOT NULL, identity_key bytea NOT NULL,
  registration_id int8, spk_id int8 NOT NULL, spk_key bytea NOT NULL, spk_signature bytea NOT NULL,
  one_time_prekeys int8 NOT NULL, PRIMARY KEY (user_id, device_id));
CREATE TABLE prekeys (
  user_id int8 NOT NULL, device_id int8 NOT NULL, prekey_id int8 NOT NULL, key bytea NOT NULL,
  PRIMARY KEY (user_id, device_id, prekey_id));
CREATE TABLE media (
  media_id int8 PRIMARY KEY, owner int8 NOT NULL, content_type bytea NOT NULL,
  filename bytea NOT NULL, size int8 NOT NULL, sha256 bytea NOT NULL, status int2 NOT NULL,
  reason bytea NOT NULL, width int8 NOT NULL, height int8 NOT NULL, duration_ms int8 NOT NULL,
  thumbnail bool NOT NULL, created_ms int8 NOT NULL, ref_ms int8);
CREATE TABLE media_access (
  media_id int8 NOT NULL, user_id int8 NOT NULL, PRIMARY KEY (media_id, user_id));
CREATE TABLE media_usage (
  owner int8 PRIMARY KEY, stored_bytes int8 NOT NULL, uploading int8 NOT NULL, day int8 NOT NULL,
  day_bytes int8 NOT NULL);
)sql";
  for (int i = 0; i < kMailboxPartitions; ++i) {
    ddl += "CREATE TABLE mailbox_" + std::to_string(i) +
           " PARTITION OF mailbox FOR VALUES WITH (MODULUS " + std::to_string(kMailboxPartitions) +
           ", REMAINDER " + std::to_string(i) + ");\n";
  }
  return ddl;
}

}  // namespace

Status CreateOrUpgrade(Conn& conn) {
  if (auto s = conn.Run("BEGIN"); !s) return s;
  auto run = [&]() -> Status {
    if (auto r = conn.Exec("SELECT pg_advisory_xact_lock($1)", Params().I64(kSchemaLockKey)); !r) {
      return std::unexpected(r.error());
    }
    if (auto s = conn.Run("CREATE TABLE IF NOT EXISTS parley_meta "
                          "(name text PRIMARY KEY, value bytea NOT NULL)");
        !s) {
      return s;
    }
    auto found = conn.Exec("SELECT value FROM parley_meta WHERE name = 'format'");
    if (!found) return std::unexpected(found.error());
    int format = 0;
    if (!found->empty()) format = std::stoi(found->Bytes(0, 0));
    if (format > kFormat) {
      return Fail(Errc::kInvalid, "postgresql store has format " + std::to_string(format) +
                                      ", newer than this build knows (" + std::to_string(kFormat) +
                                      "): upgrade parleyd");
    }
    if (format < 1) {
      if (auto s = conn.Run(SchemaV1()); !s) return s;
    }
    // Later formats: `if (format < 2) { ... }`.
    if (format < kFormat) {
      auto r = conn.Exec(
          "INSERT INTO parley_meta (name, value) VALUES ('format', $1) "
          "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
          Params().Bytes(std::to_string(kFormat)));
      if (!r) return std::unexpected(r.error());
    }
    return conn.Run("COMMIT");
  };
  auto s = run();
  if (!s) (void)conn.Run("ROLLBACK");
  return s;
}

std::string PackIds(std::span<const std::uint64_t> ids) {
  std::string out(ids.size() * 8, '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::uint64_t v = ids[i];
    for (int b = 7; b >= 0; --b) {
      out[i * 8 + static_cast<std::size_t>(b)] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
  }
  return out;
}

std::vector<std::uint64_t> UnpackIds(std::string_view bytes) {
  std::vector<std::uint64_t> out(bytes.size() / 8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v = (v << 8) | static_cast<unsigned char>(bytes[i * 8 + b]);
    out[i] = v;
  }
  return out;
}

// ---- ReadPool ---------------------------------------------------------------------

ReadPool::ReadPool(std::string url, std::vector<std::unique_ptr<Conn>> conns)
    : url_(std::move(url)), free_(std::move(conns)) {}

std::unique_ptr<Conn> ReadPool::Take() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty(); });
  auto conn = std::move(free_.back());
  free_.pop_back();
  return conn;
}

void ReadPool::Give(std::unique_ptr<Conn> conn) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

Result<Rows> ReadPool::Exec(const char* sql, const Params& params) {
  auto conn = Take();
  Result<Rows> rows = Fail(Errc::kUnavailable, "postgresql unavailable");
  if (conn->EnsureConnected()) {
    rows = conn->Exec(sql, params);
    // A read is safe to repeat once on a connection the server dropped meanwhile.
    if (!rows && !conn->healthy() && conn->EnsureConnected()) rows = conn->Exec(sql, params);
  }
  Give(std::move(conn));
  return rows;
}

bool ReadPool::Ping() { return Exec("SELECT 1").has_value(); }

// ---- PgStore ----------------------------------------------------------------------

PgStore::PgStore(std::unique_ptr<ReadPool> reads, std::unique_ptr<Conn> writer,
                 StoreObserver observer, Registry* metrics)
    : reads_(std::move(reads)),
      observer_(std::move(observer)),
      writer_(std::make_unique<Writer>(std::move(writer), observer_, metrics)) {}

PgStore::~PgStore() {
  Close();
  writer_.reset();
}

void PgStore::Close() { writer_->Close(); }

// The writer reconnects on its own after losing the server, so /ready (which
// asks this and a read) says 200 only once a write can go through again.
Status PgStore::Writable() {
  if (!writer_->healthy())
    return Fail(Errc::kUnavailable, "postgresql: the writer is not connected");
  return Ok();
}

// Both ways to the database: the writer is connected and a read answers now.
bool PgStore::Reachable() { return Writable().has_value() && reads_->Ping(); }

}  // namespace pg

bool IsPostgresUrl(std::string_view url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

Result<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options) {
  auto writer = pg::Conn::Open(options.url, std::string(pg::kSessionSettings));
  if (!writer) return std::unexpected(writer.error());
  if (auto s = pg::CreateOrUpgrade(**writer); !s) return std::unexpected(s.error());
  std::vector<std::unique_ptr<pg::Conn>> readers;
  for (std::size_t i = 0; i < std::max<std::size_t>(options.readers, 1); ++i) {
    auto conn = pg::Conn::Open(options.url, std::string(pg::kSessionSettings));
    if (!conn) return std::unexpected(conn.error());
    readers.push_back(std::move(*conn));
  }
  auto pool = std::make_unique<pg::ReadPool>(options.url, std::move(readers));
  return std::unique_ptr<Store>(std::make_unique<pg::PgStore>(std::move(pool), std::move(*writer),
                                                              options.observer, options.metrics));
}

Result<std::string> PostgresSharedSecret(const std::string& url, std::string_view name,
                                         std::string_view fresh) {
  auto conn = pg::Conn::Open(url, std::string(pg::kSessionSettings));
  if (!conn) return std::unexpected(conn.error());
  if (auto s = pg::CreateOrUpgrade(**conn); !s) return std::unexpected(s.error());
  const std::string key = "secret:" + std::string(name);
  auto inserted = (*conn)->Exec(
      "INSERT INTO parley_meta (name, value) VALUES ($1, $2) "
      "ON CONFLICT (name) DO NOTHING",
      pg::Params().Text(key).Bytes(fresh));
  if (!inserted) return std::unexpected(inserted.error());
  auto rows =
      (*conn)->Exec("SELECT value FROM parley_meta WHERE name = $1", pg::Params().Text(key));
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return Fail(Errc::kInternal, "shared secret vanished");
  return rows->Bytes(0, 0);
}

bool PostgresStoreReachable(Store& store) {
  auto* pg = dynamic_cast<pg::PgStore*>(&store);
  return pg == nullptr || pg->Reachable();
}

}  // namespace parley::store
