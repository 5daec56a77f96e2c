#include "store/rocksdb/schema.hpp"

#include <rocksdb/write_batch.h>

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>

#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/write_health.hpp"

namespace parley::store::rocks {
namespace {

constexpr std::size_t kBlockCacheBytes = 64 << 20;
// All memtables together; a single write-heavy family may use most of it.
constexpr std::size_t kMemtableBytesTotal = 256 << 20;
// Each family's share, in OptimizeLevelStyleCompaction's terms.
constexpr std::uint64_t kMemtableBudgetPerCf = 64 << 20;
// Rarely written families (meta, otp) would otherwise keep old WAL files alive.
constexpr std::uint64_t kMaxWalBytes = 512 << 20;
// The process has 20k descriptors and most belong to sockets.
constexpr int kMaxOpenFiles = 512;

rocksdb::DBOptions MakeDbOptions(bool read_only) {
  rocksdb::DBOptions o;
  o.IncreaseParallelism(2);
  o.create_if_missing = !read_only;
  o.create_missing_column_families = !read_only;
  o.max_open_files = kMaxOpenFiles;
  // Open's table loading starts this many threads per column family when
  // more than one (16 by default: about 400 threads created and joined at
  // every start, 100+ ms of a restart here); one loads them in the caller.
  o.max_file_opening_threads = 1;
  o.db_write_buffer_size = kMemtableBytesTotal;
  o.max_total_wal_size = kMaxWalBytes;
  o.bytes_per_sync = 1 << 20;
  o.keep_log_file_num = 4;
  o.max_log_file_size = 16 << 20;
  return o;
}

rocksdb::ColumnFamilyOptions MakeCfOptions(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.OptimizeLevelStyleCompaction(kMemtableBudgetPerCf);
  // Most writes append under a key prefix that was just written (a mailbox's
  // next seq, a message's receipts): an insert starts from the previous one's
  // place in the skip list instead of from its head.
  o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(8));
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Nearly every read is a point lookup (user, token, code, device).
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

// Upgrades a database from format version `from` to from + 1. One case per
// version; each step must be safe to run twice, since a crash between it and
// the new version stamp runs it again.
// Version 2 adds user_groups and peers, the indexes that tell whom a
// keys_changed event reaches: fill them from group_members and conv_index.
Status UpgradeV1ToV2(Database& d) {
  rocksdb::WriteBatch batch;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        d.db()->NewIterator(rocksdb::ReadOptions(), d.cf(Cf::kGroupMembers)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto ids = ParseU64PairKey(it->key().ToStringView());
      if (!ids) return Fail(Errc::kCorruption, "malformed group member key");
      batch.Put(d.cf(Cf::kUserGroups), U64PairKey(ids->second, ids->first), "");
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "upgrade to v2"));
  }
  {
    // conv_index: owner (8) + kind (1) + conv id (8) + msg_id (8). One seek
    // per conversation, not one step per message.
    std::unique_ptr<rocksdb::Iterator> it(
        d.db()->NewIterator(rocksdb::ReadOptions(), d.cf(Cf::kConvIndex)));
    for (it->SeekToFirst(); it->Valid();) {
      const std::string_view key = it->key().ToStringView();
      if (key.size() != 25) return Fail(Errc::kCorruption, "malformed conversation index key");
      const std::string conv_prefix(key.substr(0, 17));
      if (static_cast<std::uint8_t>(key[8]) ==
          static_cast<std::uint8_t>(Conversation::Kind::kUser)) {
        auto owner = ParseU64Key(key.substr(0, 8));
        auto peer = ParseU64Key(key.substr(9, 8));
        if (!owner || !peer) return Fail(Errc::kCorruption, "malformed conversation index key");
        batch.Put(d.cf(Cf::kPeers), U64PairKey(*owner, *peer), "");
        batch.Put(d.cf(Cf::kPeers), U64PairKey(*peer, *owner), "");
      }
      const std::string next = PrefixUpperBound(conv_prefix);
      if (next.empty()) break;
      it->Seek(next);
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "upgrade to v2"));
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = d.db()->Write(wo, &batch);
  if (!s.ok()) return std::unexpected(FromRocks(s, "upgrade to v2"));
  return Ok();
}

// Version 3 adds media_index: each owner's MediaUsage, summed from media
// (day_bytes starts at 0). Rewrites every row, so running it twice is safe.
Status UpgradeV2ToV3(Database& d) {
  std::map<UserId, MediaUsage> usage;
  std::unique_ptr<rocksdb::Iterator> it(
      d.db()->NewIterator(rocksdb::ReadOptions(), d.cf(Cf::kMedia)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto id = ParseU64Key(it->key().ToStringView());
    if (!id) return Fail(Errc::kCorruption, "malformed media key");
    auto media = DecodeMedia(*id, it->value().ToStringView());
    if (!media) return std::unexpected(media.error());
    MediaUsage& u = usage[media->owner];
    u.stored_bytes += media->size;
    if (media->status == MediaStatus::kUploading) ++u.uploading;
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "upgrade to v3"));
  rocksdb::WriteBatch batch;
  for (const auto& [owner, u] : usage) {
    batch.Put(d.cf(Cf::kMediaIndex), MediaUsageKey(owner), EncodeMediaUsage(u));
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = d.db()->Write(wo, &batch);
  if (!s.ok()) return std::unexpected(FromRocks(s, "upgrade to v3"));
  return Ok();
}

Status UpgradeFrom(Database& d, std::uint32_t from) {
  switch (from) {
    case 1:
      return UpgradeV1ToV2(d);
    case 2:
      return UpgradeV2ToV3(d);
    default:
      return Fail(Errc::kInternal,
                  "no upgrade step from database format version " + std::to_string(from));
  }
}

Status StampVersion(Database& d, std::uint32_t version) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = d.db()->Put(wo, d.cf(Cf::kMeta), kFormatVersionKey, std::to_string(version));
  if (!s.ok()) return std::unexpected(FromRocks(s, "writing the format version"));
  return Ok();
}

Result<bool> AllFamiliesEmpty(Database& d) {
  for (std::size_t i = 0; i < kCfNames.size(); ++i) {
    std::unique_ptr<rocksdb::Iterator> it(
        d.db()->NewIterator(rocksdb::ReadOptions(), d.cf(static_cast<Cf>(i))));
    it->SeekToFirst();
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "scanning"));
    if (it->Valid()) return false;
  }
  return true;
}

Status CheckFormat(Database& d, const std::string& path, bool fresh) {
  std::string value;
  auto s = d.db()->Get(rocksdb::ReadOptions(), d.cf(Cf::kMeta), kFormatVersionKey, &value);
  if (s.IsNotFound()) {
    // A crash right after creation leaves an empty, unstamped database.
    if (!fresh) {
      auto empty = AllFamiliesEmpty(d);
      if (!empty) return std::unexpected(empty.error());
      if (!*empty) {
        return Fail(Errc::kCorruption, "database at " + path + " has data but no format version");
      }
    }
    if (d.read_only()) {
      return Fail(Errc::kInvalid,
                  "database at " + path + " is not initialised; open it read-write once");
    }
    return StampVersion(d, kFormatVersion);
  }
  if (!s.ok()) return std::unexpected(FromRocks(s, "reading the format version"));

  std::uint32_t version = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), version);
  if (ec != std::errc() || end != value.data() + value.size() || version == 0) {
    return Fail(Errc::kCorruption, "database at " + path + " has an unreadable format version");
  }
  if (version > kFormatVersion) {
    return Fail(Errc::kInvalid, "database at " + path + " has format version " +
                                    std::to_string(version) + ", newer than this build supports (" +
                                    std::to_string(kFormatVersion) + "); run a newer parleyd");
  }
  if (version < kFormatVersion && d.read_only()) {
    return Fail(Errc::kInvalid, "database at " + path + " has the older format version " +
                                    std::to_string(version) +
                                    "; open it read-write once to upgrade it");
  }
  for (; version < kFormatVersion; ++version) {
    if (auto st = UpgradeFrom(d, version); !st) return st;
    if (auto st = StampVersion(d, version + 1); !st) return st;
  }
  return Ok();
}

}  // namespace

Error FromRocks(const rocksdb::Status& status, std::string_view what) {
  Errc code = Errc::kInternal;
  if (status.IsNotFound()) {
    code = Errc::kNotFound;
  } else if (status.IsIOError() || status.IsBusy() || status.IsTimedOut() || status.IsTryAgain() ||
             status.IsShutdownInProgress() || status.IsAborted()) {
    code = Errc::kUnavailable;
  }
  if (status.IsNoSpace() || status.ToString().find("No space left") != std::string::npos) {
    code = Errc::kNoSpace;
  } else if (status.IsCorruption()) {
    code = Errc::kCorruption;
  }
  return Error{code, std::string(what) + ": " + status.ToString()};
}

Database::~Database() {
  if (health_) health_->Stop();
  if (db_ == nullptr) return;
  for (auto* h : handles_) {
    if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
  }
  for (auto* h : others_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
  delete db_;
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, bool read_only) {
  if (path.empty()) return Fail(Errc::kInvalid, "no database path given");
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool fresh = !fs::exists(fs::path(path) / "CURRENT", ec);
  if (fresh && read_only) return Fail(Errc::kNotFound, "no database at " + path);
  if (fresh && !fs::create_directories(path, ec) && ec) {
    return Fail(Errc::kUnavailable, "cannot create " + path + ": " + ec.message());
  }

  rocksdb::DBOptions db_options = MakeDbOptions(read_only);
  std::shared_ptr<WriteHealth> health;
  if (!read_only) {
    health = std::make_shared<WriteHealth>();
    db_options.listeners.push_back(health);
  }
  std::vector<std::string> existing;
  if (!fresh) {
    auto s = rocksdb::DB::ListColumnFamilies(db_options, path, &existing);
    if (!s.ok()) return std::unexpected(FromRocks(s, "opening " + path));
  }

  const auto cf_options = MakeCfOptions(rocksdb::NewLRUCache(kBlockCacheBytes));
  // Where a send's or an ack's point lookups usually miss (a new idempotency
  // key, a first receipt, a new pair of peers), a bloom filter in front of
  // each memtable answers without a skip-list walk. Only there: each filter
  // is zero-filled memory (about 330 KB per memtable).
  auto missing_lookups = cf_options;
  missing_lookups.memtable_prefix_bloom_size_ratio = 0.02;
  missing_lookups.memtable_whole_key_filtering = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (auto name : kCfNames) {
    if (read_only && std::find(existing.begin(), existing.end(), name) == existing.end()) {
      return Fail(Errc::kInvalid, "database at " + path + " has no column family " +
                                      std::string(name) + "; open it read-write once");
    }
    const bool misses = name == "idem" || name == "receipts" || name == "peers";
    descriptors.emplace_back(std::string(name), misses ? missing_lookups : cf_options);
  }
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (const auto& name : existing) {
    if (name != rocksdb::kDefaultColumnFamilyName &&
        std::find(kCfNames.begin(), kCfNames.end(), name) == kCfNames.end()) {
      descriptors.emplace_back(name, cf_options);
    }
  }

  std::unique_ptr<Database> d(new Database());
  d->read_only_ = read_only;
  d->health_ = health;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  auto s = read_only
               ? rocksdb::DB::OpenForReadOnly(db_options, path, descriptors, &handles, &d->db_)
               : rocksdb::DB::Open(db_options, path, descriptors, &handles, &d->db_);
  if (!s.ok()) return std::unexpected(FromRocks(s, "opening " + path));
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (i < d->handles_.size()) {
      d->handles_[i] = handles[i];
    } else {
      d->others_.push_back(handles[i]);
    }
  }
  if (auto st = CheckFormat(*d, path, fresh); !st) return std::unexpected(st.error());
  if (d->health_) d->health_->Attach(d->db_);
  return d;
}

}  // namespace parley::store::rocks
