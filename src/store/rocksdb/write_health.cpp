#include "store/rocksdb/write_health.hpp"

#include <pthread.h>
#include <sys/statvfs.h>

#include <chrono>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace parley::store::rocks {

namespace {

constexpr auto kResumeEvery = std::chrono::seconds(1);
constexpr std::int64_t kSpaceCheckMs = 100;

bool IsNoSpace(const rocksdb::Status& s) {
  return s.IsNoSpace() || s.ToString().find("No space left") != std::string::npos;
}

}  // namespace

WriteHealth::WriteHealth() {
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "store-health");
}

WriteHealth::~WriteHealth() { Stop(); }

void WriteHealth::Attach(rocksdb::DB* db) {
  {
    std::lock_guard lock(mu_);
    db_ = db;
  }
  cv_.notify_all();
}

void WriteHealth::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    db_ = nullptr;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WriteHealth::SetReserve(std::string path, std::uint64_t min_free_bytes) {
  std::lock_guard lock(space_mu_);
  path_ = std::move(path);
  min_free_ = min_free_bytes;
}

Status WriteHealth::CheckSpace() const {
  std::lock_guard lock(space_mu_);
  if (min_free_ == 0 || path_.empty()) return Ok();
  const std::int64_t now = NowMs();
  if (now - checked_ms_ >= kSpaceCheckMs || now < checked_ms_) {
    checked_ms_ = now;
    struct statvfs st {};
    if (::statvfs(path_.c_str(), &st) == 0) {
      free_ = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
      const bool low = free_ < min_free_;
      if (low != low_) {
        if (low) {
          PLOG_ERROR("store volume nearly full: refusing writes", "free_bytes={} reserve_bytes={}",
                     free_, min_free_);
        } else {
          PLOG_INFO("store volume has room again: accepting writes", "free_bytes={}", free_);
        }
      }
      low_ = low;
    }
  }
  if (!low_) return Ok();
  return Fail(Errc::kNoSpace, "the store's volume has " + std::to_string(free_) +
                                  " bytes free, less than the reserve of " +
                                  std::to_string(min_free_));
}

Status WriteHealth::Check() const {
  if (auto s = CheckSpace(); !s) return s;
  std::lock_guard lock(mu_);
  if (!stopped_writes_) return Ok();
  if (no_space_) return Fail(Errc::kNoSpace, "the store's volume is full: " + reason_);
  return Fail(Errc::kUnavailable, "the store stopped writes: " + reason_);
}

void WriteHealth::Failed(const rocksdb::Status& s) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    first = !stopped_writes_;
    stopped_writes_ = true;
    no_space_ = IsNoSpace(s);
    reason_ = s.ToString();
  }
  if (first) {
    PLOG_ERROR("store stopped accepting writes", "error={}", LogQuote(s.ToString()));
  }
  cv_.notify_all();
}

void WriteHealth::OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                                    rocksdb::Status* bg_error) {
  if (bg_error != nullptr && !bg_error->ok()) Failed(*bg_error);
}

void WriteHealth::OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) {
  if (!info.new_bg_error.ok()) return;
  {
    std::lock_guard lock(mu_);
    if (!stopped_writes_) return;
    stopped_writes_ = false;
  }
  PLOG_INFO("store accepts writes again", "how={}", LogQuote("rocksdb recovery"));
}

void WriteHealth::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!stopped_writes_ || db_ == nullptr) {
      cv_.wait(lock, [this] { return stop_ || (stopped_writes_ && db_ != nullptr); });
      continue;
    }
    cv_.wait_for(lock, kResumeEvery, [this] { return stop_; });
    if (stop_ || !stopped_writes_ || db_ == nullptr) continue;
    rocksdb::DB* db = db_;
    lock.unlock();
    // Resume() is a no-op (OK) when writes are not stopped, Busy while
    // RocksDB's own recovery runs, and the error again while the disk is full.
    const rocksdb::Status s = db->Resume();
    lock.lock();
    if (s.ok() && stopped_writes_) {
      stopped_writes_ = false;
      lock.unlock();
      PLOG_INFO("store accepts writes again", "how={}", LogQuote("resumed"));
      lock.lock();
    }
  }
}

}  // namespace parley::store::rocks
