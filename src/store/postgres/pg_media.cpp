// Media records and read grants (store.hpp, "Media").
#include <algorithm>
#include <utility>

#include "common/ids.hpp"
#include "store/common/media_quota.hpp"
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

Result<std::vector<Media>> PgStore::StaleUploads(std::int64_t cutoff_ms, MediaId after,
                                                 std::size_t max) {
  ReadTimer timer(observer_, "stale_uploads");
  // Ids are time-ordered: everything created before the cutoff is below this id.
  auto r = reads_->Exec(
      PG_MEDIA_SELECT("WHERE media_id > $4 AND media_id < $1 AND status = 1 AND created_ms < $2 "
                      "ORDER BY media_id LIMIT $3"),
      Params()
          .U64(IdFloorForTime(cutoff_ms))
          .I64(cutoff_ms)
          .I64(static_cast<std::int64_t>(std::min<std::size_t>(max, 1 << 30)))
          .U64(after));
  if (!r) return Failed(r);
  std::vector<Media> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(MediaAt(*r, i));
  return out;
}

namespace {

constexpr std::int64_t kDayMs = 86400000;

std::int64_t DayOf(std::int64_t ms) { return ms >= 0 ? ms / kDayMs : (ms - kDayMs + 1) / kDayMs; }

// The parts of a stored record that its owner's MediaUsage counts.
struct Counted {
  UserId owner = 0;
  std::int64_t size = 0;
  bool uploading = false;
};

Result<std::optional<Counted>> TxnCounted(Tx& tx, MediaId id) {
  auto r = tx.Read("SELECT owner, size, status FROM media WHERE media_id = $1 FOR UPDATE",
                   Params().U64(id));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<Counted>();
  return std::optional<Counted>(
      Counted{.owner = r->U64(0, 0),
              .size = r->I64(0, 1),
              .uploading = static_cast<MediaStatus>(r->I16(0, 2)) == MediaStatus::kUploading});
}

// Adds deltas to the owner's usage in one upsert (relative, so that two
// nodes adjusting one owner at once both count). `new_day`: a new record
// created on that UTC day adds `day_add` to day_bytes (a new day starts at 0).
void AdjustUsage(Tx& tx, UserId owner, std::int64_t d_stored, std::int64_t d_uploading, bool is_new,
                 std::int64_t new_day, std::int64_t day_add) {
  tx.Write(
      "INSERT INTO media_usage (owner, stored_bytes, uploading, day, day_bytes) VALUES ($1, "
      "GREATEST($2::int8, 0), GREATEST($3::int8, 0), CASE WHEN $6 THEN $4::int8 ELSE 0 END, "
      "CASE WHEN $6 THEN $5::int8 ELSE 0 END) ON CONFLICT (owner) DO UPDATE SET stored_bytes = "
      "GREATEST(media_usage.stored_bytes + $2::int8, 0), uploading = "
      "GREATEST(media_usage.uploading + $3::int8, 0), day = CASE WHEN $6 THEN $4::int8 ELSE "
      "media_usage.day END, day_bytes = CASE WHEN NOT $6 THEN media_usage.day_bytes WHEN "
      "media_usage.day = $4::int8 THEN media_usage.day_bytes + $5::int8 ELSE $5::int8 END",
      Params()
          .U64(owner)
          .I64(d_stored)
          .I64(d_uploading)
          .I64(is_new ? new_day : 0)
          .I64(day_add)
          .Bool(is_new));
}

// Writes the record over `before` (what TxnCounted found) and adjusts the
// usage of its owner (and of a previous owner).
void WriteMedia(Tx& tx, const std::optional<Counted>& before, const Media& media) {
  const auto size = static_cast<std::int64_t>(media.size);
  const std::int64_t uploading = media.status == MediaStatus::kUploading ? 1 : 0;
  const bool is_new = !before.has_value();
  const std::int64_t day = DayOf(media.created_ms);
  if (before && before->owner == media.owner) {
    AdjustUsage(tx, media.owner, size - before->size, uploading - (before->uploading ? 1 : 0),
                is_new, day, size);
  } else {
    if (before) {
      AdjustUsage(tx, before->owner, -before->size, before->uploading ? -1 : 0, false, 0, 0);
    }
    AdjustUsage(tx, media.owner, size, uploading, is_new, day, size);
  }
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
}

}  // namespace

void PgStore::PutMedia(Media media, Callback<void> done) {
  Submit<void>("put_media", {}, std::move(done), [media = std::move(media)](Tx& tx) -> Status {
    auto before = TxnCounted(tx, media.id);
    if (!before) return std::unexpected(before.error());
    WriteMedia(tx, *before, media);
    return Ok();
  });
}

// The owner's usage row is created if missing and locked before it is read,
// so an upload of the same owner on another node waits until this one has
// committed and then sees it; within this node the writer runs one job at a
// time and a job sees the writes of the jobs before it.
void PgStore::PutMediaWithin(Media media, MediaQuota quota, Callback<MediaQuotaVerdict> done) {
  Submit<MediaQuotaVerdict>(
      "put_media", {}, std::move(done),
      [media = std::move(media), quota](Tx& tx) -> Result<MediaQuotaVerdict> {
        if (auto r = tx.Read(
                "INSERT INTO media_usage (owner, stored_bytes, uploading, day, day_bytes) VALUES "
                "($1, 0, 0, 0, 0) ON CONFLICT (owner) DO NOTHING",
                Params().U64(media.owner));
            !r) {
          return Failed(r);
        }
        auto u = tx.Read(
            "SELECT stored_bytes, uploading, day, day_bytes FROM media_usage WHERE owner = $1 "
            "FOR UPDATE",
            Params().U64(media.owner));
        if (!u) return Failed(u);
        MediaUsage usage;
        if (!u->empty()) {
          usage = MediaUsage{.stored_bytes = u->U64(0, 0),
                             .uploading = static_cast<std::uint32_t>(u->I64(0, 1)),
                             .day = u->I64(0, 2),
                             .day_bytes = u->U64(0, 3)};
        }
        auto before = TxnCounted(tx, media.id);
        if (!before) return std::unexpected(before.error());
        std::optional<CountedMedia> counted;
        if (*before) {
          counted = CountedMedia{.owner = (*before)->owner,
                                 .size = static_cast<std::uint64_t>((*before)->size),
                                 .uploading = (*before)->uploading};
        }
        const auto verdict = JudgeMediaQuota(usage, counted, media, quota);
        if (verdict == MediaQuotaVerdict::kWithin) WriteMedia(tx, *before, media);
        return verdict;
      });
}

void PgStore::DeleteMedia(MediaId id, Callback<void> done) {
  Submit<void>("delete_media", {}, std::move(done), [id](Tx& tx) -> Status {
    auto before = TxnCounted(tx, id);
    if (!before) return std::unexpected(before.error());
    if (*before) {
      AdjustUsage(tx, (*before)->owner, -(*before)->size, (*before)->uploading ? -1 : 0, false, 0,
                  0);
    }
    tx.Write("DELETE FROM media_access WHERE media_id = $1", Params().U64(id));
    tx.Write("DELETE FROM media WHERE media_id = $1", Params().U64(id));
    return Ok();
  });
}

Result<MediaUsage> PgStore::GetMediaUsage(UserId owner) {
  ReadTimer timer(observer_, "get_media_usage");
  auto r = reads_->Exec(
      "SELECT stored_bytes, uploading, day, day_bytes FROM media_usage WHERE owner = $1",
      Params().U64(owner));
  if (!r) return Failed(r);
  if (r->empty()) return MediaUsage{};
  return MediaUsage{.stored_bytes = r->U64(0, 0),
                    .uploading = static_cast<std::uint32_t>(r->I64(0, 1)),
                    .day = r->I64(0, 2),
                    .day_bytes = r->U64(0, 3)};
}

Result<std::vector<Media>> PgStore::ExpiredMedia(std::int64_t cutoff_ms, MediaId after,
                                                 std::size_t max) {
  ReadTimer timer(observer_, "expired_media");
  // Ids are time-ordered: what was created before the cutoff is below this id.
  auto r = reads_->Exec(
      PG_MEDIA_SELECT("m WHERE media_id > $1 AND media_id < $2 AND status <> 1 AND created_ms < "
                      "$3 AND (ref_ms IS NULL OR ref_ms < $3) AND NOT EXISTS (SELECT 1 FROM "
                      "media_access a WHERE a.media_id = m.media_id AND a.user_id = 0) ORDER BY "
                      "media_id LIMIT $4"),
      Params()
          .U64(after)
          .U64(IdFloorForTime(cutoff_ms))
          .I64(cutoff_ms)
          .I64(static_cast<std::int64_t>(std::min<std::size_t>(max, 1 << 30))));
  if (!r) return Failed(r);
  std::vector<Media> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(MediaAt(*r, i));
  return out;
}

}  // namespace parley::store::pg
