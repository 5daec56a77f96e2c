// Whether the database accepts writes, and getting it to accept them again
// by itself after a full disk (issue 14, item 10).
//
// First line: a reserve. Writes are refused (kNoSpace) while the volume has
// less free space than RocksOptions::min_free_bytes, checked with statvfs at
// most every 100 ms, so the database stops before the disk is full: RocksDB
// (7.8, as Debian builds it, with assertions) aborts the process when a
// write follows a failed WAL append, so ENOSPC must not reach it.
//
// RocksDB on ENOSPC all the same (a reserve of 0, or a burst past it): the failed write returns
// IOError(NoSpace) and nothing of it is applied (the WAL append failed before the memtable insert);
// the failure is also a background error (paranoid_checks) that stops every later write with the
// same status until DB::Resume() succeeds, which flushes the memtables and starts a fresh WAL.
// RocksDB's own recovery (through its SstFileManager) covers only some of these cases, so a thread
// here calls Resume() every second while writes are stopped; it succeeds as soon as an operator has
// freed space.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/listener.h>

#include "common/result.hpp"

namespace parley::store::rocks {

class WriteHealth final : public rocksdb::EventListener {
 public:
  WriteHealth();
  ~WriteHealth() override;

  // The open database to resume (before it, background errors are only
  // recorded). Stop before the database closes.
  void Attach(rocksdb::DB* db);
  void Stop();

  // The database directory and the free space to keep there.
  void SetReserve(std::string path, std::uint64_t min_free_bytes);

  // Ok while writes are accepted; kNoSpace (or kUnavailable) with the
  // reason while they are stopped or the reserve is reached.
  Status Check() const;
  // Only the reserve (for each write).
  Status CheckSpace() const;

  // rocksdb::EventListener
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* bg_error) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  void Run();
  void Failed(const rocksdb::Status& s);

  mutable std::mutex space_mu_;
  std::string path_;
  std::uint64_t min_free_ = 0;
  mutable std::int64_t checked_ms_ = 0;
  mutable bool low_ = false;
  mutable std::uint64_t free_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  rocksdb::DB* db_ = nullptr;
  bool stopped_writes_ = false;
  bool no_space_ = false;
  std::string reason_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace parley::store::rocks
