#include "media/volume_reserve.hpp"

#include <sys/statvfs.h>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace parley::media {

namespace {
constexpr std::int64_t kCheckEveryMs = 100;
}  // namespace

VolumeReserve::VolumeReserve(std::string dir, std::uint64_t min_free_bytes)
    : dir_(std::move(dir)), min_free_(min_free_bytes) {}

Status VolumeReserve::Check() const {
  if (min_free_ == 0) return Ok();
  std::lock_guard lock(mu_);
  const std::int64_t now = NowMs();
  if (!checked_ || now - checked_ms_ >= kCheckEveryMs || now < checked_ms_) {
    checked_ = true;
    checked_ms_ = now;
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) == 0) {
      free_ = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
      const bool low = free_ < min_free_;
      if (low && !low_) {
        PLOG_ERROR("media volume nearly full: /ready answers 503", "free_bytes={} reserve_bytes={}",
                   free_, min_free_);
      } else if (!low && low_) {
        PLOG_INFO("media volume has room again", "free_bytes={}", free_);
      }
      low_ = low;
    }
  }
  if (!low_) return Ok();
  return Fail(Errc::kNoSpace, "the media volume has " + std::to_string(free_) +
                                  " bytes free, less than the reserve of " +
                                  std::to_string(min_free_));
}

}  // namespace parley::media
