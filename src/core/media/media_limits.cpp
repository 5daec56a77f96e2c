// What media may take (issue 14, item 7): per-user quotas on bytes stored,
// bytes per UTC day and unfinished uploads, and the sweeps that give space
// back: stale uploads, media past retention, and orphan files.
#include <future>
#include <unordered_map>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "core/http/http_api.hpp"
#include "core/media/media_api.hpp"
#include "core/media/media_http.hpp"
#include "core/media/media_stale_sweep.hpp"
#include "proto/errors.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {

constexpr std::int64_t kDayMs = 86400000;
constexpr std::size_t kSweepBatch = 256;
// A file younger than this is never an orphan: on a volume shared by
// several nodes, another one may be between writing it and its record.
constexpr std::int64_t kOrphanGraceMs = 10 * 60 * 1000;

std::string Mib(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Blocks the sweeper thread until the store has answered.
Status Await(const std::function<void(store::Callback<void>)>& start) {
  auto done = std::make_shared<std::promise<Status>>();
  auto result = done->get_future();
  start([done](Status s) { done->set_value(std::move(s)); });
  return result.get();
}

}  // namespace

std::optional<net::HttpResponse> MediaApi::QuotaRefusal(store::UserId owner, std::uint64_t bytes,
                                                        bool resumable, std::uint64_t* room) {
  const Config& cfg = core_.config;
  std::uint64_t left = UINT64_MAX;
  if (cfg.media_quota_mib == 0 && cfg.media_quota_mib_per_day == 0 &&
      (!resumable || cfg.media_uploads_in_progress == 0)) {
    if (room != nullptr) *room = left;
    return std::nullopt;
  }
  auto usage = core_.store.GetMediaUsage(owner);
  if (!usage) return media_http::Internal(usage.error(), "get_media_usage");
  if (resumable && cfg.media_uploads_in_progress != 0 &&
      usage->uploading >= cfg.media_uploads_in_progress) {
    return ErrorResponse(429, code::kTooManyUploads,
                         "at most " + std::to_string(cfg.media_uploads_in_progress) +
                             " unfinished uploads; finish or delete one first");
  }
  std::string which;
  if (cfg.media_quota_mib != 0) {
    const std::uint64_t limit = static_cast<std::uint64_t>(cfg.media_quota_mib) << 20;
    const std::uint64_t stored = usage->stored_bytes;
    left = stored >= limit ? 0 : limit - stored;
    which = "the media quota of " + Mib(limit);
  }
  if (cfg.media_quota_mib_per_day != 0) {
    const std::uint64_t limit = static_cast<std::uint64_t>(cfg.media_quota_mib_per_day) << 20;
    const std::uint64_t today = usage->day == NowMs() / kDayMs ? usage->day_bytes : 0;
    const std::uint64_t day_left = today >= limit ? 0 : limit - today;
    if (day_left < left) {
      left = day_left;
      which = "the daily upload quota of " + Mib(limit);
    }
  }
  if (room != nullptr) *room = left;
  if (bytes > left || left == 0) {
    return ErrorResponse(413, code::kQuotaExceeded,
                         "over " + which + " (" + std::to_string(left) + " bytes left)");
  }
  return std::nullopt;
}

store::MediaQuota MediaApi::Quota() const {
  const Config& cfg = core_.config;
  return store::MediaQuota{.stored_bytes = static_cast<std::uint64_t>(cfg.media_quota_mib) << 20,
                           .day_bytes = static_cast<std::uint64_t>(cfg.media_quota_mib_per_day)
                                        << 20,
                           .uploading = cfg.media_uploads_in_progress};
}

net::HttpResponse MediaApi::QuotaResponse(store::MediaQuotaVerdict verdict) const {
  const Config& cfg = core_.config;
  switch (verdict) {
    case store::MediaQuotaVerdict::kUploading:
      return ErrorResponse(429, code::kTooManyUploads,
                           "at most " + std::to_string(cfg.media_uploads_in_progress) +
                               " unfinished uploads; finish or delete one first");
    case store::MediaQuotaVerdict::kDayBytes:
      return ErrorResponse(413, code::kQuotaExceeded,
                           "over the daily upload quota of " +
                               Mib(static_cast<std::uint64_t>(cfg.media_quota_mib_per_day) << 20));
    case store::MediaQuotaVerdict::kStoredBytes:
    case store::MediaQuotaVerdict::kWithin:
      break;
  }
  return ErrorResponse(
      413, code::kQuotaExceeded,
      "over the media quota of " + Mib(static_cast<std::uint64_t>(cfg.media_quota_mib) << 20));
}

void MediaApi::SweepStaleUploads() {
  if (!sweeper_ || sweeping_.exchange(true)) return;  // one sweep at a time
  sweeper_->Post([this] {
    Sweep(!swept_orphans_);
    swept_orphans_ = true;
    sweeping_ = false;
  });
}

void MediaApi::Sweep(bool orphans) {
  if (orphans) SweepOrphans();
  SweepStale();
  SweepExpired();
}

void MediaApi::SweepStale() {
  const std::int64_t cutoff =
      NowMs() - static_cast<std::int64_t>(core_.config.media_upload_ttl_s) * 1000;
  // From where the last sweep left off (media_stale_sweep.hpp).
  const auto result =
      RunStaleSweep(core_.store, cutoff, stale_mark_, kSweepBatch, [&](const store::Media& upload) {
        if (!Lock(upload.id)) return false;  // being written right now: not stale after all
        const auto id = upload.id;
        auto st = Await([&](store::Callback<void> cb) { core_.store.DeleteMedia(id, cb); });
        if (st) {
          (void)blobs_.RemovePartial(id);
          (void)blobs_.Remove(id);  // published, but the record never said so
        } else {
          PLOG_ERROR("stale upload removal failed", "upload={} error={}", id,
                     LogQuote(st.error().message));
        }
        Unlock(id);
        return st.has_value();
      });
  stale_mark_ = result.mark;
  if (result.removed > 0) PLOG_INFO("stale uploads removed", "count={}", result.removed);
}

void MediaApi::SweepExpired() {
  const std::int64_t cutoff =
      NowMs() - static_cast<std::int64_t>(core_.config.retention_days) * kDayMs;
  std::size_t removed = 0;
  store::MediaId after = 0;
  for (;;) {
    auto expired = core_.store.ExpiredMedia(cutoff, after, kSweepBatch);
    if (!expired) {
      PLOG_ERROR("expired media sweep failed", "error={}", LogQuote(expired.error().message));
      return;
    }
    for (const auto& m : *expired) {
      after = m.id;
      const auto id = m.id;
      auto st = Await([&](store::Callback<void> cb) { core_.store.DeleteMedia(id, cb); });
      if (!st) {
        PLOG_ERROR("expired media removal failed", "media={} error={}", id,
                   LogQuote(st.error().message));
        continue;
      }
      if (auto s = blobs_.Remove(id); !s) {
        PLOG_ERROR("expired media blob removal failed", "media={} error={}", id,
                   LogQuote(s.error().message));
      }
      ++removed;
    }
    if (expired->size() < kSweepBatch) break;
  }
  if (removed > 0) PLOG_INFO("expired media removed", "count={}", removed);
}

void MediaApi::SweepOrphans() {
  auto files = blobs_.List();
  if (!files) {
    PLOG_ERROR("orphan sweep failed", "error={}", LogQuote(files.error().message));
    return;
  }
  const std::int64_t grace = NowMs() - kOrphanGraceMs;
  std::unordered_map<store::MediaId, std::optional<store::MediaStatus>> records;
  std::size_t removed = 0;
  for (const auto& f : *files) {
    if (f.modified_ms >= grace) continue;
    auto it = records.find(f.id);
    if (it == records.end()) {
      auto found = core_.store.GetMedia(f.id);
      if (!found) {
        PLOG_ERROR("orphan sweep failed", "error={}", LogQuote(found.error().message));
        return;
      }
      std::optional<store::MediaStatus> status;
      if (*found) status = (*found)->status;
      it = records.emplace(f.id, status).first;
    }
    const auto& status = it->second;
    const bool uploading = status && *status == store::MediaStatus::kUploading;
    // A partial file belongs to an upload; a blob or thumbnail to finished media.
    const bool orphan =
        f.kind == media::StoredBlob::Kind::kPartial ? !uploading : (!status || uploading);
    if (!orphan) continue;
    if (f.kind == media::StoredBlob::Kind::kPartial) {
      (void)blobs_.RemovePartial(f.id);
    } else if (!status) {
      (void)blobs_.Remove(f.id);
    } else {
      continue;  // an upload whose blob was published: the stale sweep ends it
    }
    ++removed;
    PLOG_INFO("orphan media file removed", "id={} kind={}", f.id, static_cast<int>(f.kind));
  }
  if (removed > 0) PLOG_INFO("orphan sweep done", "removed={}", removed);
}

}  // namespace parley::core
