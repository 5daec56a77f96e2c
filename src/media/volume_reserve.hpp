// Free space on the media volume (issue 14, item 10): the media directory
// may be a filesystem of its own (--media-dir), so /ready looks at it as
// well as at the store's. Below the reserve the node is not ready
// ("reason":"storage_full"), the way the store's reserve (store_min_free_mib)
// makes it; uploads themselves still answer 507 only when a write fails.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "common/result.hpp"

namespace parley::media {

class VolumeReserve {
 public:
  // `min_free_bytes` 0: never low.
  VolumeReserve(std::string dir, std::uint64_t min_free_bytes);

  // Ok, or kNoSpace while the volume holding `dir` has less than the
  // reserve free. statvfs at most every 100 ms; thread-safe.
  Status Check() const;

 private:
  const std::string dir_;
  const std::uint64_t min_free_;
  mutable std::mutex mu_;
  mutable std::int64_t checked_ms_ = 0;
  mutable bool checked_ = false;
  mutable bool low_ = false;
  mutable std::uint64_t free_ = 0;
};

}  // namespace parley::media
