// Media records and read grants (store.hpp, "Media").
#include <algorithm>
#include <utility>

#include "common/ids.hpp"
#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {
namespace {

#define PG_MEDIA_SELECT(where)                                                                    \
  "SELECT media_id, owner, content_type, filename, size, sha256, status, reason, width, height, " \
  "duration_ms, thumbnail, created_ms FROM media " where

Media MediaAt(const Rows& r, int i) {
  return Media{.id = r.U64(i, 0),
               .owner = r.U64(i, 1),
               .content_type = r.Bytes(i, 2),
               .filename = r.Bytes(i, 3),
               .size = r.U64(i, 4),
               .sha256 = r.Bytes(i, 5),
               .status = static_cast<MediaStatus>(r.I16(i, 6)),
               .reason = r.Bytes(i, 7),
               .width = static_cast<std::uint32_t>(r.I64(i, 8)),
               .height = static_cast<std::uint32_t>(r.I64(i, 9)),
               .duration_ms = r.I64(i, 10),
               .thumbnail = r.Bool(i, 11),
               .created_ms = r.I64(i, 12)};
}

}  // namespace

Result<std::optional<Media>> PgStore::GetMedia(MediaId id) {
  ReadTimer timer(observer_, "get_media");
  auto r = reads_->Exec(PG_MEDIA_SELECT("WHERE media_id = $1"), Params().U64(id));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<Media>();
  return std::optional<Media>(MediaAt(*r, 0));
}

Result<bool> PgStore::MediaGranted(MediaId id, UserId user) {
  ReadTimer timer(observer_, "media_granted");
  auto r =
      reads_->Exec("SELECT 1 FROM media_access WHERE media_id = $1 AND user_id IN ($2, 0) LIMIT 1",
                   Params().U64(id).U64(user));
  if (!r) return Failed(r);
  return !r->empty();
}

Result<std::vector<Media>> PgStore::StaleUploads(std::int64_t cutoff_ms, std::size_t max) {
  ReadTimer timer(observer_, "stale_uploads");
  // Ids are time-ordered: everything created before the cutoff is below this id.
  auto r = reads_->Exec(
      PG_MEDIA_SELECT("WHERE media_id < $1 AND status = 1 AND created_ms < $2 ORDER BY media_id "
                      "LIMIT $3"),
      Params()
          .U64(IdFloorForTime(cutoff_ms))
          .I64(cutoff_ms)
          .I64(static_cast<std::int64_t>(std::min<std::size_t>(max, 1 << 30))));
  if (!r) return Failed(r);
  std::vector<Media> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(MediaAt(*r, i));
  return out;
}

void PgStore::PutMedia(Media media, Callback<void> done) {
  Submit<void>("put_media", {}, std::move(done), [media = std::move(media)](Tx& tx) -> Status {
    tx.Write(
        "INSERT INTO media (media_id, owner, content_type, filename, size, sha256, status, "
        "reason, width, height, duration_ms, thumbnail, created_ms) VALUES ($1, $2, $3, $4, $5, "
        "$6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (media_id) DO UPDATE SET owner = "
        "excluded.owner, content_type = excluded.content_type, filename = excluded.filename, "
        "size = excluded.size, sha256 = excluded.sha256, status = excluded.status, reason = "
        "excluded.reason, width = excluded.width, height = excluded.height, duration_ms = "
        "excluded.duration_ms, thumbnail = excluded.thumbnail, created_ms = excluded.created_ms",
        Params()
            .U64(media.id)
            .U64(media.owner)
            .Bytes(media.content_type)
            .Bytes(media.filename)
            .U64(media.size)
            .Bytes(media.sha256)
            .I16(static_cast<std::int16_t>(media.status))
            .Bytes(media.reason)
            .I64(media.width)
            .I64(media.height)
            .I64(media.duration_ms)
            .Bool(media.thumbnail)
            .I64(media.created_ms));
    return Ok();
  });
}

void PgStore::DeleteMedia(MediaId id, Callback<void> done) {
  Submit<void>("delete_media", {}, std::move(done), [id](Tx& tx) -> Status {
    tx.Write("DELETE FROM media_access WHERE media_id = $1", Params().U64(id));
    tx.Write("DELETE FROM media WHERE media_id = $1", Params().U64(id));
    return Ok();
  });
}

}  // namespace parley::store::pg
