#include "core/media/media_stale_sweep.hpp"

#include <algorithm>

#include "common/ids.hpp"
#include "common/log.hpp"

namespace parley::core {
namespace {

// How far before the cutoff the mark may go (ids stamped before created_ms).
constexpr std::int64_t kMarkSlackMs = 60 * 1000;

}  // namespace

StaleSweepResult RunStaleSweep(store::Store& store, std::int64_t cutoff_ms, store::MediaId mark,
                               std::size_t batch,
                               const std::function<bool(const store::Media&)>& remove) {
  StaleSweepResult out;
  const store::MediaId floor = IdFloorForTime(cutoff_ms - kMarkSlackMs);
  // The highest id below which every stale upload was removed.
  store::MediaId reached = mark;
  store::MediaId after = mark;
  bool kept = false;  // something was left: `reached` stays below it
  for (;;) {
    auto stale = store.StaleUploads(cutoff_ms, after, batch);
    if (!stale) {
      PLOG_ERROR("stale upload sweep failed", "error={}", LogQuote(stale.error().message));
      out.failed = true;
      break;
    }
    for (const auto& upload : *stale) {
      after = upload.id;
      if (remove(upload)) {
        ++out.removed;
        if (!kept) reached = upload.id;
      } else if (!kept) {
        kept = true;
        reached = upload.id - 1;
      }
    }
    if (stale->size() < batch) {  // the end of the range
      if (!kept) reached = std::max(reached, floor > 0 ? floor - 1 : 0);
      break;
    }
  }
  // Never past the floor: what is above it may still become stale.
  out.mark = std::max(mark, std::min(reached, floor > 0 ? floor - 1 : 0));
  return out;
}

}  // namespace parley::core
