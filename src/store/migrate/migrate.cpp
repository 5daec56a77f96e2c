// RocksDB -> PostgreSQL, family by family (migrate.hpp). Each RocksDB column
// family becomes rows of the PostgreSQL table with the same meaning
// (src/store/postgres/pg_schema.cpp); families that are indexes of other
// data in RocksDB (phone_index, conv_index, user_groups) have no table of
// their own in PostgreSQL, whose indexes are built from the rows. What
// PostgreSQL keeps in a column rather than a family (users.phone_hash,
// media.ref_ms, mailbox_head) is loaded into a temporary table and joined
// in at the end.
#include "store/migrate/migrate.hpp"

#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "store/postgres/pg_store_impl.hpp"
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/schema.hpp"

namespace parley::store {
namespace {

namespace fs = std::filesystem;
using rocks::Cf;

// Bytes of COPY data sent per chunk.
constexpr std::size_t kChunkBytes = 1 << 20;

// The loading connection: no statement or idle timeout (a large store takes
// a while), a bounded wait for the schema lock.
constexpr std::string_view kLoadSettings =
    "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
    "SET lock_timeout = '30s'; SET synchronous_commit = on; SET client_min_messages = warning";

// Every table migrate writes, checked empty before it starts.
constexpr const char* kTables[] = {
    "users",       "devices",  "refresh_tokens", "otp",           "mailbox_head",
    "mailbox",     "messages", "idem",           "cursors",       "read_marks",
    "receipts",    "peers",    "groups",         "group_members", "group_former",
    "device_keys", "prekeys",  "media",          "media_access",  "media_usage"};

Error Corrupt(std::string_view family, std::string_view what) {
  return Error{Errc::kCorruption,
               "rocksdb " + std::string(family) + ": " + std::string(what) + " does not decode"};
}

// One COPY into one table, streamed in chunks.
class TableCopy {
 public:
  TableCopy(pg::Conn& conn, std::string table, std::string columns)
      : conn_(conn), table_(std::move(table)), columns_(std::move(columns)) {}

  Status Begin() {
    return conn_.CopyBegin("COPY " + table_ + " (" + columns_ + ") FROM STDIN (FORMAT binary)");
  }
  pg::CopyRows& rows() { return rows_; }
  // Sends what is buffered once it is a chunk's worth.
  Status Flush(bool force = false) {
    if (!force && rows_.size() < kChunkBytes) return Ok();
    return conn_.CopyPut(rows_.Take());
  }
  // Ends the COPY; the server must have stored every row sent.
  Result<MigratedTable> End() {
    if (auto s = Flush(true); !s) return std::unexpected(s.error());
    auto stored = conn_.CopyEnd();
    if (!stored) return std::unexpected(stored.error());
    if (*stored != rows_.rows()) {
      return Fail(Errc::kInternal, "postgresql stored " + std::to_string(*stored) + " rows of " +
                                       table_ + ", " + std::to_string(rows_.rows()) + " were sent");
    }
    return MigratedTable{table_, rows_.rows()};
  }

 private:
  pg::Conn& conn_;
  std::string table_;
  std::string columns_;
  pg::CopyRows rows_;
};

class Migration {
 public:
  Migration(rocks::Database& db, pg::Conn& conn, const MigrateOptions& options)
      : db_(db), conn_(conn), options_(options) {}

  Status Run();
  MigrateReport& report() { return report_; }

 private:
  // Calls row(key, value) for every entry of the family, in key order.
  template <class F>
  Status Scan(Cf family, F row) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_.db()->NewIterator(ro, db_.cf(family)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (auto s = row(it->key().ToStringView(), it->value().ToStringView()); !s) return s;
    }
    if (!it->status().ok()) {
      return std::unexpected(rocks::FromRocks(it->status(), "reading the store"));
    }
    return Ok();
  }

  // Copies one family into `table`: fill(copy, key, value) adds the row(s).
  template <class F>
  Status Copy(Cf family, const char* table, const char* columns, F fill) {
    TableCopy copy(conn_, table, columns);
    if (auto s = copy.Begin(); !s) return s;
    auto scanned = Scan(family, [&](std::string_view key, std::string_view value) -> Status {
      if (auto s = fill(copy.rows(), key, value); !s) return s;
      return copy.Flush();
    });
    if (!scanned) {
      (void)copy.End();  // ends the COPY; the transaction is rolled back by the caller
      return scanned;
    }
    auto done = copy.End();
    if (!done) return std::unexpected(done.error());
    if (options_.progress) {
      options_.progress(done->name + ": " + std::to_string(done->rows) + " rows");
    }
    // Temporary tables are not reported as tables of the store.
    if (!done->name.starts_with("migrate_")) report_.tables.push_back(std::move(*done));
    return Ok();
  }

  Status Accounts();
  Status Messaging();
  Status Groups();
  Status Keys();
  Status Media();
  Status Derived();

  rocks::Database& db_;
  pg::Conn& conn_;
  const MigrateOptions& options_;
  MigrateReport report_;
};

Status Migration::Accounts() {
  auto s = Copy(Cf::kUsers, "users",
                "user_id, phone, created_ms, name, status_text, avatar_media_id, "
                "last_seen_visibility, last_seen_ms",
                [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                  auto id = rocks::ParseU64Key(key);
                  if (!id) return std::unexpected(Corrupt("users", "a key"));
                  auto u = rocks::DecodeUser(*id, value);
                  if (!u) return std::unexpected(u.error());
                  out.Row(8)
                      .U64(u->id)
                      .Bytes(u->phone)
                      .I64(u->created_ms)
                      .Bytes(u->name)
                      .Bytes(u->status_text)
                      .Bytes(u->avatar_media_id)
                      .Bytes(u->last_seen_visibility)
                      .I64(u->last_seen_ms);
                  return Ok();
                });
  if (!s) return s;
  s = Copy(Cf::kPhoneHashIndex, "migrate_phone_hash", "user_id, hash",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto user = rocks::DecodeUserIdValue(value);
             if (!user) return std::unexpected(user.error());
             out.Row(2).U64(*user).Bytes(key);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kDevices, "devices",
           "user_id, device_id, name, platform, created_ms, last_active_ms, token_gen",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             if (!ids) return std::unexpected(Corrupt("devices", "a key"));
             auto d = rocks::DecodeDevice(ids->first, ids->second, value);
             if (!d) return std::unexpected(d.error());
             out.Row(7)
                 .U64(d->user_id)
                 .U64(d->id)
                 .Bytes(d->name)
                 .Bytes(d->platform)
                 .I64(d->created_ms)
                 .I64(d->last_active_ms)
                 .I64(d->token_gen);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kRefreshTokens, "refresh_tokens",
           "hash, user_id, device_id, token_gen, expires_ms, used",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto t = rocks::DecodeRefreshToken(key, value);
             if (!t) return std::unexpected(t.error());
             out.Row(6)
                 .Bytes(t->hash)
                 .U64(t->user_id)
                 .U64(t->device_id)
                 .I64(t->token_gen)
                 .I64(t->expires_ms)
                 .Bool(t->used);
             return Ok();
           });
  if (!s) return s;
  return Copy(Cf::kOtp, "otp", "phone, code_hash, expires_ms, attempts",
              [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                auto c = rocks::DecodeOtp(key, value);
                if (!c) return std::unexpected(c.error());
                out.Row(4).Bytes(c->phone).Bytes(c->code_hash).I64(c->expires_ms).I64(c->attempts);
                return Ok();
              });
}

Status Migration::Messaging() {
  auto s = Copy(
      Cf::kMailbox, "mailbox",
      "user_id, seq, kind, ts_ms, msg_id, outgoing, sender, conv_kind, conv_id, by_user, status, "
      "msg_ids, payload",
      [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
        auto ids = rocks::ParseU64PairKey(key);
        if (!ids) return std::unexpected(Corrupt("mailbox", "a key"));
        auto header = rocks::DecodeRowHeader(value);
        if (!header) return std::unexpected(header.error());
        if (header->type == EventType::kMessage) {
          // As pg_messaging.cpp writes a send's rows.
          const auto& m = header->message;
          out.Row(13)
              .U64(ids->first)
              .U64(ids->second)
              .I16(static_cast<std::int16_t>(EventType::kMessage))
              .I64(m.ts_ms)
              .U64(m.msg_id)
              .Bool(m.outgoing)
              .U64(m.sender)
              .I16(static_cast<std::int16_t>(m.conv.kind))
              .U64(m.conv.id)
              .I64(0)
              .I16(0)
              .Null()
              .Null();
          return Ok();
        }
        // As AppendEventRow writes every other event.
        auto e = rocks::DecodeMailboxEvent(ids->second, value);
        if (!e) return std::unexpected(e.error());
        out.Row(13)
            .U64(ids->first)
            .U64(ids->second)
            .I16(static_cast<std::int16_t>(e->type))
            .I64(e->ts_ms)
            .Null()
            .Bool(false)
            .I64(0)
            .I16(static_cast<std::int16_t>(e->conv.kind))
            .U64(e->conv.id)
            .U64(e->by)
            .I16(static_cast<std::int16_t>(e->status))
            .Bytes(pg::PackIds(e->msg_ids))
            .Bytes(e->payload);
        return Ok();
      });
  if (!s) return s;
  s = Copy(Cf::kMessages, "messages",
           "msg_id, sender, sender_device, conv_kind, conv_id, client_msg_id, kind, body, "
           "media_id, ts_ms, recipients",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto id = rocks::ParseU64Key(key);
             if (!id) return std::unexpected(Corrupt("messages", "a key"));
             auto m = rocks::DecodeMessage(*id, value);
             if (!m) return std::unexpected(m.error());
             out.Row(11)
                 .U64(m->msg_id)
                 .U64(m->sender)
                 .U64(m->sender_device)
                 .I16(static_cast<std::int16_t>(m->to.kind))
                 .U64(m->to.id)
                 .Bytes(m->client_msg_id)
                 .Bytes(m->kind)
                 .Bytes(m->body)
                 .Bytes(m->media_id)
                 .I64(m->ts_ms)
                 .I64(m->recipients);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kIdem, "idem", "sender, client_msg_id, msg_id, seq, ts_ms",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             if (key.size() < 8) return std::unexpected(Corrupt("idem", "a key"));
             auto sender = rocks::ParseU64Key(key.substr(0, 8));
             auto e = rocks::DecodeIdem(value);
             if (!sender || !e) return std::unexpected(Corrupt("idem", "a row"));
             out.Row(5).U64(*sender).Bytes(key.substr(8)).U64(e->msg_id).U64(e->seq).I64(e->ts_ms);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kCursors, "cursors", "user_id, device_id, seq",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             auto seq = rocks::DecodeSeqValue(value);
             if (!ids || !seq) return std::unexpected(Corrupt("cursors", "a row"));
             out.Row(3).U64(ids->first).U64(ids->second).U64(*seq);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kReadMarks, "read_marks", "user_id, conv_kind, conv_id, msg_id",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto mark = rocks::DecodeReadMark(value);
             if (key.size() != 17 || !mark) return std::unexpected(Corrupt("read_marks", "a row"));
             auto owner = rocks::ParseU64Key(key.substr(0, 8));
             auto conv = rocks::ParseU64Key(key.substr(9, 8));
             const auto kind = static_cast<std::uint8_t>(key[8]);
             if (!owner || !conv || (kind != 1 && kind != 2)) {
               return std::unexpected(Corrupt("read_marks", "a key"));
             }
             out.Row(4).U64(*owner).I16(kind).U64(*conv).U64(*mark);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kReceipts, "receipts", "msg_id, user_id, delivered_ts, read_ts",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             auto t = rocks::DecodeReceiptTimes(value);
             if (!ids || !t) return std::unexpected(Corrupt("receipts", "a row"));
             out.Row(4).U64(ids->first).U64(ids->second).I64(t->delivered_ts).I64(t->read_ts);
             return Ok();
           });
  if (!s) return s;
  return Copy(Cf::kUserState, "migrate_user_state", "user_id, delivered, purged",
              [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                auto user = rocks::ParseU64Key(key);
                auto st = rocks::DecodeUserState(value);
                if (!user || !st) return std::unexpected(Corrupt("user_state", "a row"));
                out.Row(3).U64(*user).U64(st->delivered_seq).U64(st->purged_seq);
                return Ok();
              });
}

Status Migration::Groups() {
  auto s = Copy(Cf::kGroups, "groups",
                "group_id, name, avatar_media_id, created_by, created_ms, next_join_order",
                [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                  auto id = rocks::ParseU64Key(key);
                  if (!id) return std::unexpected(Corrupt("groups", "a key"));
                  auto g = rocks::DecodeGroupRow(*id, value);
                  if (!g) return std::unexpected(g.error());
                  out.Row(6)
                      .U64(g->group.id)
                      .Bytes(g->group.name)
                      .Bytes(g->group.avatar_media_id)
                      .U64(g->group.created_by)
                      .I64(g->group.created_ms)
                      .U64(g->next_join_order);
                  return Ok();
                });
  if (!s) return s;
  s = Copy(Cf::kGroupMembers, "group_members", "group_id, user_id, role, joined_ms, join_order",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             if (!ids) return std::unexpected(Corrupt("group_members", "a key"));
             auto m = rocks::DecodeGroupMember(ids->second, value);
             if (!m) return std::unexpected(m.error());
             out.Row(5)
                 .U64(ids->first)
                 .U64(m->user)
                 .I16(static_cast<std::int16_t>(m->role))
                 .I64(m->joined_ms)
                 .U64(m->join_order);
             return Ok();
           });
  if (!s) return s;
  return Copy(Cf::kGroupFormer, "group_former", "group_id, user_id, left_ms",
              [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                auto ids = rocks::ParseU64PairKey(key);
                auto left = rocks::DecodeFormerMember(value);
                if (!ids || !left) return std::unexpected(Corrupt("group_former", "a row"));
                out.Row(3).U64(ids->first).U64(ids->second).I64(*left);
                return Ok();
              });
}

Status Migration::Keys() {
  auto s =
      Copy(Cf::kDeviceKeys, "device_keys",
           "user_id, device_id, identity_key, registration_id, spk_id, spk_key, spk_signature, "
           "one_time_prekeys",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             if (!ids) return std::unexpected(Corrupt("device_keys", "a key"));
             auto k = rocks::DecodeDeviceKeys(ids->first, ids->second, value);
             if (!k) return std::unexpected(k.error());
             out.Row(8).U64(k->user).U64(k->device).Bytes(k->identity_key);
             if (k->registration_id) {
               out.I64(*k->registration_id);
             } else {
               out.Null();
             }
             out.I64(k->signed_prekey.id)
                 .Bytes(k->signed_prekey.key)
                 .Bytes(k->signed_prekey.signature)
                 .I64(k->one_time_prekeys);
             return Ok();
           });
  if (!s) return s;
  s = Copy(Cf::kPrekeys, "prekeys", "user_id, device_id, prekey_id, key",
           [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
             auto id = rocks::ParsePrekeyId(key);
             auto ids = id ? rocks::ParseU64PairKey(key.substr(0, 16)) : std::nullopt;
             auto k = rocks::DecodePrekey(value);
             if (!ids || !k) return std::unexpected(Corrupt("prekeys", "a row"));
             out.Row(4).U64(ids->first).U64(ids->second).I64(*id).Bytes(*k);
             return Ok();
           });
  if (!s) return s;
  return Copy(Cf::kPeers, "peers", "user_id, peer_id, wrote",
              [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                auto ids = rocks::ParseU64PairKey(key);
                if (!ids || (!value.empty() && value != rocks::kPeerWrote)) {
                  return std::unexpected(Corrupt("peers", "a row"));
                }
                out.Row(3).U64(ids->first).U64(ids->second).Bool(value == rocks::kPeerWrote);
                return Ok();
              });
}

Status Migration::Media() {
  auto s = Copy(Cf::kMedia, "media",
                "media_id, owner, content_type, filename, size, sha256, status, reason, width, "
                "height, duration_ms, thumbnail, created_ms",
                [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                  auto id = rocks::ParseU64Key(key);
                  if (!id) return std::unexpected(Corrupt("media", "a key"));
                  auto m = rocks::DecodeMedia(*id, value);
                  if (!m) return std::unexpected(m.error());
                  out.Row(13)
                      .U64(m->id)
                      .U64(m->owner)
                      .Bytes(m->content_type)
                      .Bytes(m->filename)
                      .U64(m->size)
                      .Bytes(m->sha256)
                      .I16(static_cast<std::int16_t>(m->status))
                      .Bytes(m->reason)
                      .I64(m->width)
                      .I64(m->height)
                      .I64(m->duration_ms)
                      .Bool(m->thumbnail)
                      .I64(m->created_ms);
                  return Ok();
                });
  if (!s) return s;
  s = Copy(Cf::kMediaAccess, "media_access", "media_id, user_id",
           [](pg::CopyRows& out, std::string_view key, std::string_view) -> Status {
             auto ids = rocks::ParseU64PairKey(key);
             if (!ids) return std::unexpected(Corrupt("media_access", "a key"));
             out.Row(2).U64(ids->first).U64(ids->second);
             return Ok();
           });
  if (!s) return s;
  // media_index holds two kinds of rows: 'u' usage, 'r' last reference.
  s = Copy(
      Cf::kMediaIndex, "media_usage", "owner, stored_bytes, uploading, day, day_bytes",
      [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
        if (key.size() != 9) return std::unexpected(Corrupt("media_index", "a key"));
        if (key[0] != 'u') return Ok();
        auto owner = rocks::ParseU64Key(key.substr(1));
        auto u = rocks::DecodeMediaUsage(value);
        if (!owner || !u) return std::unexpected(Corrupt("media_index", "a usage row"));
        out.Row(5).U64(*owner).U64(u->stored_bytes).I64(u->uploading).I64(u->day).U64(u->day_bytes);
        return Ok();
      });
  if (!s) return s;
  return Copy(Cf::kMediaIndex, "migrate_media_ref", "media_id, ref_ms",
              [](pg::CopyRows& out, std::string_view key, std::string_view value) -> Status {
                if (key.size() != 9 || key[0] != 'r') return Ok();
                auto id = rocks::ParseU64Key(key.substr(1));
                auto ref = rocks::ParseU64Key(value);
                if (!id || !ref) return std::unexpected(Corrupt("media_index", "a reference"));
                out.Row(2).U64(*id).U64(*ref);
                return Ok();
              });
}

// The columns PostgreSQL keeps where RocksDB has a family of its own, and
// each mailbox's head: its newest seq, or the seq retention left behind
// when it emptied the mailbox (user_state.purged_seq), whichever is higher.
Status Migration::Derived() {
  auto s = conn_.Run(
      "UPDATE users u SET phone_hash = h.hash FROM migrate_phone_hash h "
      "WHERE u.user_id = h.user_id");
  if (!s) return s;
  s = conn_.Run(
      "UPDATE media m SET ref_ms = r.ref_ms FROM migrate_media_ref r WHERE m.media_id = "
      "r.media_id");
  if (!s) return s;
  auto heads = conn_.Exec(
      "INSERT INTO mailbox_head (user_id, head, delivered_wm) "
      "SELECT COALESCE(b.user_id, s.user_id), GREATEST(COALESCE(b.head, 0), COALESCE(s.purged, "
      "0)), COALESCE(s.delivered, 0) FROM (SELECT user_id, max(seq) AS head FROM mailbox GROUP "
      "BY user_id) b FULL JOIN migrate_user_state s ON s.user_id = b.user_id");
  if (!heads) return std::unexpected(heads.error());
  report_.tables.push_back({"mailbox_head", heads->affected()});
  if (options_.progress) {
    options_.progress("mailbox_head: " + std::to_string(heads->affected()) + " rows");
  }
  return Ok();
}

Status Migration::Run() {
  auto s = conn_.Run(
      "CREATE TEMPORARY TABLE migrate_phone_hash (user_id int8, hash bytea) ON COMMIT DROP; "
      "CREATE TEMPORARY TABLE migrate_user_state (user_id int8 PRIMARY KEY, delivered int8, "
      "purged int8) ON COMMIT DROP; "
      "CREATE TEMPORARY TABLE migrate_media_ref (media_id int8, ref_ms int8) ON COMMIT DROP");
  if (!s) return s;
  if (s = Accounts(); !s) return s;
  if (s = Messaging(); !s) return s;
  if (s = Groups(); !s) return s;
  if (s = Keys(); !s) return s;
  if (s = Media(); !s) return s;
  return Derived();
}

// Anything of Parley's in the database but its schema and format.
Result<bool> DatabaseEmpty(pg::Conn& conn) {
  std::string sql = "SELECT EXISTS (SELECT 1 FROM parley_meta WHERE name <> 'format')";
  for (const char* table : kTables) {
    sql += std::string(" OR EXISTS (SELECT 1 FROM ") + table + ")";
  }
  auto r = conn.Exec(sql.c_str());
  if (!r) return std::unexpected(r.error());
  return !r->Bool(0, 0);
}

// The node's token-signing key (core::LoadOrCreateSecret's file), as
// PostgresSharedSecret keeps it for every node: tokens issued before the
// move stay valid, and so do one-time codes (their hashing key derives from
// it). Empty when the node had none (it was configured with jwt_secret).
Result<std::string> NodeSecret(const std::string& data_dir) {
  const fs::path path = fs::path(data_dir) / "jwt.key";
  std::ifstream in(path);
  if (!in) return std::string();
  std::string hex;
  std::getline(in, hex);
  if (hex.size() < 64) return Fail(Errc::kCorruption, path.string() + " is damaged");
  return hex;
}

}  // namespace

Result<MigrateReport> MigrateRocksToPostgres(const MigrateOptions& options) {
  const fs::path db_path = fs::path(options.data_dir) / "db";
  std::error_code ec;
  if (!fs::exists(db_path / "CURRENT", ec)) {
    return Fail(Errc::kNotFound, "no RocksDB store in " + options.data_dir + " (no db/CURRENT)");
  }
  auto secret = NodeSecret(options.data_dir);
  if (!secret) return std::unexpected(secret.error());
  // Read-write, so that RocksDB takes its LOCK: a running node holds it.
  auto db = rocks::Database::Open(db_path.string(), /*read_only=*/false);
  if (!db) {
    if (db.error().message.find("lock") != std::string::npos ||
        db.error().message.find("LOCK") != std::string::npos) {
      return Fail(Errc::kConflict, "the store in " + options.data_dir +
                                       " is in use (RocksDB's LOCK is held): stop the node first");
    }
    return std::unexpected(db.error());
  }

  auto conn = pg::Conn::Open(options.url, std::string(kLoadSettings));
  if (!conn) return std::unexpected(conn.error());
  pg::Conn& c = **conn;
  if (auto s = pg::CreateOrUpgrade(c); !s) return std::unexpected(s.error());
  if (auto s = c.Run("BEGIN"); !s) return std::unexpected(s.error());
  auto run = [&]() -> Result<MigrateReport> {
    auto locked = c.Exec("SELECT pg_advisory_xact_lock($1)", pg::Params().I64(pg::kSchemaLockKey));
    if (!locked) return std::unexpected(locked.error());
    auto empty = DatabaseEmpty(c);
    if (!empty) return std::unexpected(empty.error());
    if (!*empty) {
      return Fail(Errc::kConflict,
                  "the postgresql database is not empty (it has accounts, messages or a "
                  "node's secrets): migrate only into a new database");
    }
    Migration migration(**db, c, options);
    if (auto s = migration.Run(); !s) return std::unexpected(s.error());
    MigrateReport report = std::move(migration.report());
    if (!secret->empty()) {
      auto put = c.Exec("INSERT INTO parley_meta (name, value) VALUES ('secret:jwt', $1)",
                        pg::Params().Bytes(*secret));
      if (!put) return std::unexpected(put.error());
      report.secret_copied = true;
    }
    auto marked = c.Exec("INSERT INTO parley_meta (name, value) VALUES ('migrated_from', $1)",
                         pg::Params().Bytes(fs::absolute(options.data_dir).string()));
    if (!marked) return std::unexpected(marked.error());
    if (auto s = c.Run("COMMIT"); !s) return std::unexpected(s.error());
    return report;
  };
  auto report = run();
  if (!report && c.healthy()) (void)c.Run("ROLLBACK");
  return report;
}

}  // namespace parley::store
