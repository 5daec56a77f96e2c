#include "store/common/media_quota.hpp"

#include <algorithm>

namespace parley::store {

namespace {
constexpr std::int64_t kDayMs = 86400000;
}  // namespace

std::int64_t MediaDayOf(std::int64_t ms) {
  return ms >= 0 ? ms / kDayMs : (ms - kDayMs + 1) / kDayMs;
}

MediaQuotaVerdict JudgeMediaQuota(const MediaUsage& usage,
                                  const std::optional<CountedMedia>& before, const Media& after,
                                  const MediaQuota& quota) {
  // What the replaced record counts for this owner (a record of another
  // owner counts for that one).
  const bool mine = before && before->owner == after.owner;
  const std::uint64_t old_size = mine ? before->size : 0;
  const bool was_uploading = mine && before->uploading;
  if (quota.stored_bytes != 0 && after.size > old_size) {
    const std::uint64_t others = usage.stored_bytes - std::min(usage.stored_bytes, old_size);
    if (after.size > quota.stored_bytes || others > quota.stored_bytes - after.size) {
      return MediaQuotaVerdict::kStoredBytes;
    }
  }
  // Replacing never adds to day_bytes (PutMedia).
  if (quota.day_bytes != 0 && !before) {
    const std::uint64_t today = usage.day == MediaDayOf(after.created_ms) ? usage.day_bytes : 0;
    if (after.size > quota.day_bytes || today > quota.day_bytes - after.size) {
      return MediaQuotaVerdict::kDayBytes;
    }
  }
  if (quota.uploading != 0 && after.status == MediaStatus::kUploading && !was_uploading &&
      usage.uploading >= quota.uploading) {
    return MediaQuotaVerdict::kUploading;
  }
  return MediaQuotaVerdict::kWithin;
}

}  // namespace parley::store
