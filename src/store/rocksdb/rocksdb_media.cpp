// Media records and read grants (store.hpp, "Media").
#include <algorithm>

#include "common/ids.hpp"
#include "store/common/media_quota.hpp"
#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {

Result<std::optional<Media>> RocksStore::GetMedia(MediaId id) {
  ReadTimer timer(observer_, "get_media");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kMedia, IdKey(id));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<Media>();
  auto media = DecodeMedia(id, **value);
  if (!media) return std::unexpected(media.error());
  return std::optional<Media>(std::move(*media));
}

Result<bool> RocksStore::MediaGranted(MediaId id, UserId user) {
  ReadTimer timer(observer_, "media_granted");
  const rocksdb::ReadOptions ro;
  for (UserId who : {user, UserId{0}}) {
    auto value = ReadValue(ro, Cf::kMediaAccess, Pair64Key(id, who));
    if (!value) return std::unexpected(value.error());
    if (*value) return true;
  }
  return false;
}

Result<std::vector<Media>> RocksStore::StaleUploads(std::int64_t cutoff_ms, MediaId after,
                                                    std::size_t max) {
  ReadTimer timer(observer_, "stale_uploads");
  // Ids are time-ordered: everything created before the cutoff sorts below
  // this bound, so the scan stops there however many blobs are newer.
  const std::string upper = U64Key(IdFloorForTime(cutoff_ms));
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kMedia)));
  std::vector<Media> out;
  for (it->Seek(U64Key(after + 1)); it->Valid() && out.size() < max; it->Next()) {
    auto id = ParseU64Key(it->key().ToStringView());
    if (!id) return Fail(Errc::kCorruption, "media key");
    auto media = DecodeMedia(*id, it->value().ToStringView());
    if (!media) return std::unexpected(media.error());
    if (media->status == MediaStatus::kUploading && media->created_ms < cutoff_ms) {
      out.push_back(std::move(*media));
    }
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "stale_uploads"));
  return out;
}

namespace {

constexpr std::int64_t kDayMs = 86400000;

Result<std::optional<Media>> TxnMedia(WriteTxn& txn, rocksdb::ColumnFamilyHandle* family,
                                      MediaId id) {
  auto value = txn.Get(family, IdKey(id));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<Media>();
  auto media = DecodeMedia(id, **value);
  if (!media) return std::unexpected(media.error());
  return std::optional<Media>(std::move(*media));
}

std::int64_t DayOf(std::int64_t ms) { return ms >= 0 ? ms / kDayMs : (ms - kDayMs + 1) / kDayMs; }

Result<MediaUsage> TxnUsage(WriteTxn& txn, rocksdb::ColumnFamilyHandle* family, UserId owner) {
  auto value = txn.Get(family, MediaUsageKey(owner));
  if (!value) return std::unexpected(value.error());
  if (!*value) return MediaUsage{};
  return DecodeMediaUsage(**value);
}

}  // namespace

Status RocksStore::AdjustUsage(WriteTxn& txn, const std::optional<Media>& before,
                               const Media* after) {
  auto change = [&](UserId owner, auto edit) -> Status {
    const std::string key = MediaUsageKey(owner);
    auto value = txn.Get(cf(Cf::kMediaIndex), key);
    if (!value) return std::unexpected(value.error());
    MediaUsage usage;
    if (*value) {
      auto decoded = DecodeMediaUsage(**value);
      if (!decoded) return std::unexpected(decoded.error());
      usage = *decoded;
    }
    edit(usage);
    return txn.Put(cf(Cf::kMediaIndex), key, EncodeMediaUsage(usage));
  };
  if (before) {
    if (auto s = change(before->owner,
                        [&](MediaUsage& u) {
                          u.stored_bytes -= std::min(u.stored_bytes, before->size);
                          if (before->status == MediaStatus::kUploading && u.uploading > 0) {
                            --u.uploading;
                          }
                        });
        !s) {
      return s;
    }
  }
  if (after != nullptr) {
    return change(after->owner, [&](MediaUsage& u) {
      u.stored_bytes += after->size;
      if (after->status == MediaStatus::kUploading) ++u.uploading;
      if (!before) {
        const std::int64_t day = DayOf(after->created_ms);
        if (u.day != day) {
          u.day = day;
          u.day_bytes = 0;
        }
        u.day_bytes += after->size;
      }
    });
  }
  return Ok();
}

void RocksStore::PutMedia(Media media, Callback<void> done) {
  Submit<void>("put_media", std::move(done),
               [this, media = std::move(media)](WriteTxn& txn) -> Status {
                 auto before = TxnMedia(txn, cf(Cf::kMedia), media.id);
                 if (!before) return std::unexpected(before.error());
                 if (auto s = AdjustUsage(txn, *before, &media); !s) return s;
                 return txn.Put(cf(Cf::kMedia), IdKey(media.id), EncodeMedia(media));
               });
}

// The writer runs one job at a time, so the usage read here is the one the
// write below adjusts: no other upload of the owner comes in between.
void RocksStore::PutMediaWithin(Media media, MediaQuota quota, Callback<MediaQuotaVerdict> done) {
  Submit<MediaQuotaVerdict>(
      "put_media", std::move(done),
      [this, media = std::move(media), quota](WriteTxn& txn) -> Result<MediaQuotaVerdict> {
        auto before = TxnMedia(txn, cf(Cf::kMedia), media.id);
        if (!before) return std::unexpected(before.error());
        auto usage = TxnUsage(txn, cf(Cf::kMediaIndex), media.owner);
        if (!usage) return std::unexpected(usage.error());
        std::optional<CountedMedia> counted;
        if (*before) {
          counted = CountedMedia{.owner = (*before)->owner,
                                 .size = (*before)->size,
                                 .uploading = (*before)->status == MediaStatus::kUploading};
        }
        const auto verdict = JudgeMediaQuota(*usage, counted, media, quota);
        if (verdict != MediaQuotaVerdict::kWithin) return verdict;
        if (auto s = AdjustUsage(txn, *before, &media); !s) return std::unexpected(s.error());
        if (auto s = txn.Put(cf(Cf::kMedia), IdKey(media.id), EncodeMedia(media)); !s) {
          return std::unexpected(s.error());
        }
        return verdict;
      });
}

Result<MediaUsage> RocksStore::GetMediaUsage(UserId owner) {
  ReadTimer timer(observer_, "get_media_usage");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kMediaIndex, MediaUsageKey(owner));
  if (!value) return std::unexpected(value.error());
  if (!*value) return MediaUsage{};
  return DecodeMediaUsage(**value);
}

Result<std::vector<Media>> RocksStore::ExpiredMedia(std::int64_t cutoff_ms, MediaId after,
                                                    std::size_t max) {
  ReadTimer timer(observer_, "expired_media");
  // Ids are time-ordered: what was created before the cutoff sorts below this.
  const std::string upper = U64Key(IdFloorForTime(cutoff_ms));
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kMedia)));
  std::vector<Media> out;
  const rocksdb::ReadOptions point;
  for (it->Seek(U64Key(after + 1)); it->Valid() && out.size() < max; it->Next()) {
    auto id = ParseU64Key(it->key().ToStringView());
    if (!id) return Fail(Errc::kCorruption, "media key");
    auto media = DecodeMedia(*id, it->value().ToStringView());
    if (!media) return std::unexpected(media.error());
    if (media->status == MediaStatus::kUploading || media->created_ms >= cutoff_ms) continue;
    auto ref = ReadValue(point, Cf::kMediaIndex, MediaRefKey(*id));
    if (!ref) return std::unexpected(ref.error());
    if (*ref) {
      if ((*ref)->size() != 8) return Fail(Errc::kCorruption, "media reference");
      auto ref_ms = ParseU64Key(**ref);
      if (!ref_ms) return Fail(Errc::kCorruption, "media reference");
      if (static_cast<std::int64_t>(*ref_ms) >= cutoff_ms) continue;
    }
    auto avatar = ReadValue(point, Cf::kMediaAccess, Pair64Key(*id, 0));
    if (!avatar) return std::unexpected(avatar.error());
    if (*avatar) continue;
    out.push_back(std::move(*media));
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "expired_media"));
  return out;
}

void RocksStore::DeleteMedia(MediaId id, Callback<void> done) {
  Submit<void>("delete_media", std::move(done), [this, id](WriteTxn& txn) -> Status {
    std::vector<std::string> grants;
    auto s = txn.ScanPrefix(cf(Cf::kMediaAccess), U64Key(id),
                            [&](std::string_view key, std::string_view) {
                              grants.emplace_back(key);
                              return true;
                            });
    if (!s) return s;
    for (const auto& key : grants) {
      if (auto d = txn.Delete(cf(Cf::kMediaAccess), key); !d) return d;
    }
    auto before = TxnMedia(txn, cf(Cf::kMedia), id);
    if (!before) return std::unexpected(before.error());
    if (*before) {
      if (auto a = AdjustUsage(txn, *before, nullptr); !a) return a;
    }
    if (auto d = txn.Delete(cf(Cf::kMediaIndex), MediaRefKey(id)); !d) return d;
    return txn.Delete(cf(Cf::kMedia), IdKey(id));
  });
}

Status RocksStore::GrantMedia(WriteTxn& txn, std::string_view media_id, UserId user,
                              std::int64_t ref_ms) {
  auto id = ParseId(media_id);
  if (!id) return Ok();  // not a media id this store made: nothing to grant
  if (ref_ms >= 0) {
    if (auto s = txn.Put(cf(Cf::kMediaIndex), MediaRefKey(*id),
                         U64Key(static_cast<std::uint64_t>(ref_ms)));
        !s) {
      return s;
    }
  }
  return txn.Put(cf(Cf::kMediaAccess), Pair64Key(*id, user), "");
}

}  // namespace parley::store::rocks
