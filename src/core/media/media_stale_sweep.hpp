// The stale-upload sweep (issue 14, item 7): removes unfinished uploads older
// than media_upload_ttl_s, with no cap per run, and without reading again on
// every run the media it has already looked at.
//
// Media ids are time-ordered (common/ids.hpp), and Store::StaleUploads scans
// the id range (after, IdFloorForTime(cutoff)). Once a sweep has gone
// through that whole range and removed what was stale, nothing below its
// floor can become stale later (an upload that finishes never goes back to
// uploading, and a new upload gets a new, higher id), so the next sweep
// starts at the floor: its mark. Two exceptions keep the mark lower: an
// upload the sweep had to leave (being written at that moment, or whose
// removal failed) holds the mark just below it, so the next sweep sees it
// again; and a sweep cut short by a store error keeps the mark where it got.
// The floor is taken a minute before the cutoff, so an id stamped slightly
// before its record's created_ms is never passed over. The mark lives in
// memory: after a restart the first sweep reads from the start once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "store/store.hpp"

namespace parley::core {

struct StaleSweepResult {
  std::size_t removed = 0;
  store::MediaId mark = 0;  // where the next sweep starts (its `after`)
  bool failed = false;      // a store read failed: the sweep stopped early
};

// One sweep from `mark`: asks the store for stale uploads in batches of
// `batch` and calls `remove` for each, which answers whether the upload is
// gone (false: busy or failed, to be tried again by a later sweep).
StaleSweepResult RunStaleSweep(store::Store& store, std::int64_t cutoff_ms, store::MediaId mark,
                               std::size_t batch,
                               const std::function<bool(const store::Media&)>& remove);

}  // namespace parley::core
