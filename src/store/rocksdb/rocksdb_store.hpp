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
  StoreObserver observer;  // optional
};

// Opens (creating or upgrading) the database. Fails on a format version newer
// than this build knows, or on a database another process holds for writing.
Result<std::unique_ptr<Store>> OpenRocksStore(const RocksOptions& options);

}  // namespace parley::store
