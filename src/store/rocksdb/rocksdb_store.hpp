// The embedded Store backend: one RocksDB database with a column family per
// record kind. See docs/architecture.md for the key layout.
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::store {

struct RocksOptions {
  std::string path;        // the database directory, created if missing
  bool read_only = false;  // for `parleyd admin` while a server may be running
  bool sync = true;        // fsync each group commit (false only in benchmarks)
  // Nice steps the writer thread takes ahead of the process's others (0:
  // none). Without the privilege for it the writer runs at the default.
  int writer_priority = 0;
  StoreObserver observer;  // optional
  // Writes (other than those that free space: purge, delete_media) are
  // refused with kNoSpace while the database's volume has less free space
  // than this, so RocksDB itself never runs into ENOSPC (write_health.hpp).
  std::uint64_t min_free_bytes = 64ull << 20;
};

// Opens (creating or upgrading) the database. Fails on a format version newer
// than this build knows, or on a database another process holds for writing.
Result<std::unique_ptr<Store>> OpenRocksStore(const RocksOptions& options);

}  // namespace parley::store
