// Whether the database accepts writes, and getting it to accept them again
// by itself after a full disk (issue 14, item 10).
//
// RocksDB on ENOSPC: the failed write returns IOError(NoSpace) and nothing of
// it is applied (the WAL append failed before the memtable insert); the
// failure is also a background error (paranoid_checks) that stops every
// later write with the same status until DB::Resume() succeeds, which
// flushes the memtables and starts a fresh WAL. RocksDB's own recovery
// (through its SstFileManager) covers only some of these cases, so a
// thread here calls Resume() every second while writes are stopped; it
// succeeds as soon as an operator has freed space.
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

  // Ok while writes are accepted; kNoSpace (or kUnavailable) with the
  // reason while they are stopped.
  Status Check() const;

  // rocksdb::EventListener
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* bg_error) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  void Run();
  void Failed(const rocksdb::Status& s);

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
