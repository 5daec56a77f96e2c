// Media records and read grants (store.hpp, "Media").
#include "common/ids.hpp"
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

Result<std::vector<Media>> RocksStore::StaleUploads(std::int64_t cutoff_ms, std::size_t max) {
  ReadTimer timer(observer_, "stale_uploads");
  // Ids are time-ordered: everything created before the cutoff sorts below
  // this bound, so the scan stops there however many blobs are newer.
  const std::string upper = U64Key(IdFloorForTime(cutoff_ms));
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kMedia)));
  std::vector<Media> out;
  for (it->SeekToFirst(); it->Valid() && out.size() < max; it->Next()) {
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

void RocksStore::PutMedia(Media media, Callback<void> done) {
  Submit<void>("put_media", std::move(done), [this, media = std::move(media)](WriteTxn& txn) {
    return txn.Put(cf(Cf::kMedia), IdKey(media.id), EncodeMedia(media));
  });
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
    return txn.Delete(cf(Cf::kMedia), IdKey(id));
  });
}

Status RocksStore::GrantMedia(WriteTxn& txn, std::string_view media_id, UserId user) {
  auto id = ParseId(media_id);
  if (!id) return Ok();  // not a media id this store made: nothing to grant
  return txn.Put(cf(Cf::kMediaAccess), Pair64Key(*id, user), "");
}

}  // namespace parley::store::rocks
