// The backend-neutral rule of Store::PutMediaWithin (store.hpp): whether a
// media record keeps its owner within a MediaQuota. Each backend reads the
// owner's usage and the record it replaces inside its write, asks
// JudgeMediaQuota, and writes only on kWithin.
#pragma once

#include <cstdint>
#include <optional>

#include "store/records.hpp"

namespace parley::store {

// What a stored record counts in its owner's MediaUsage.
struct CountedMedia {
  UserId owner = 0;
  std::uint64_t size = 0;
  bool uploading = false;
};

// The verdict on writing `after` over `before` (nullopt: a new record) for
// an owner whose usage is `usage` now. A limit only stops a record that adds
// to what it counts: more bytes than the record it replaces, a new record on
// its UTC day, a new upload in progress.
MediaQuotaVerdict JudgeMediaQuota(const MediaUsage& usage,
                                  const std::optional<CountedMedia>& before, const Media& after,
                                  const MediaQuota& quota);

// The UTC day of a time in milliseconds (MediaUsage::day).
std::int64_t MediaDayOf(std::int64_t ms);

}  // namespace parley::store
