#include "store/rocksdb/rocksdb_store.hpp"

#include <utility>

#include "store/rocksdb/rocksdb_store_impl.hpp"
#include "store/rocksdb/write_health.hpp"

namespace parley::store {
namespace rocks {

RocksStore::RocksStore(std::unique_ptr<Database> db, const RocksOptions& options)
    : db_(std::move(db)),
      observer_(options.observer),
      heads_([this](UserId user) { return LoadHead(user); }) {
  if (!db_->read_only()) {
    if (db_->health() != nullptr) db_->health()->SetReserve(options.path, options.min_free_bytes);
    writer_ = std::make_unique<GroupWriter>(db_->db(), options.sync, options.observer, &batches_,
                                            options.writer_priority);
    // Read and rewritten by every ack.
    for (Cf family : {Cf::kDevices, Cf::kCursors, Cf::kUserState}) {
      writer_->CacheFamily(cf(family));
    }
  }
}

RocksStore::~RocksStore() {
  Close();
  writer_.reset();  // before db_, which it writes to, and the caches it tells
}

void RocksStore::Close() {
  if (writer_) writer_->Close();
}

Status RocksStore::CheckSpace() {
  return db_->health() != nullptr ? db_->health()->CheckSpace() : Ok();
}

Status RocksStore::Writable() {
  if (db_->health() == nullptr) return Fail(Errc::kUnavailable, "the store is read-only");
  return db_->health()->Check();
}

Result<std::optional<std::string>> RocksStore::ReadValue(const rocksdb::ReadOptions& ro, Cf which,
                                                         std::string_view key) {
  std::string value;
  auto s = db_->db()->Get(ro, cf(which), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return std::unexpected(FromRocks(s, "read"));
  return std::optional<std::string>(std::move(value));
}

Result<std::optional<User>> RocksStore::ReadUser(const rocksdb::ReadOptions& ro, UserId id) {
  auto value = ReadValue(ro, Cf::kUsers, U64Key(id));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<User>();
  auto user = DecodeUser(id, **value);
  if (!user) return std::unexpected(user.error());
  return std::optional<User>(std::move(*user));
}

}  // namespace rocks

Result<std::unique_ptr<Store>> OpenRocksStore(const RocksOptions& options) {
  auto db = rocks::Database::Open(options.path, options.read_only);
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<Store>(std::make_unique<rocks::RocksStore>(std::move(*db), options));
}

}  // namespace parley::store
