// Moving a single node to a cluster: copies everything a stopped node's
// RocksDB store holds into an empty PostgreSQL database (`parleyd admin
// migrate`, docs/operations.md "Moving a node to PostgreSQL").
//
// The copy is one PostgreSQL transaction: rows stream in with COPY (binary
// format, in chunks of about 1 MiB), and only the final COMMIT makes any of
// them visible. An interrupted run (killed, connection lost, a row that does
// not decode) leaves the database as empty as it found it, so running again
// is always safe. The transaction holds the schema lock, so a node started
// against the database meanwhile waits, then fails its start (lock_timeout)
// instead of running on half the data.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace parley::store {

struct MigrateOptions {
  std::string data_dir;  // the node's data directory (its store is data_dir/db)
  std::string url;       // postgresql://...
  // Progress lines ("users: 1200 rows"); may be empty.
  std::function<void(std::string_view)> progress;
};

struct MigratedTable {
  std::string name;
  std::uint64_t rows = 0;
};

struct MigrateReport {
  std::vector<MigratedTable> tables;  // rows written per PostgreSQL table
  bool secret_copied = false;         // the token-signing key (data_dir/jwt.key)
};

// Refuses (kConflict) a database that holds anything of Parley's but its
// schema, and a data directory whose RocksDB LOCK another process holds (a
// running node); kNotFound when the data directory has no store.
Result<MigrateReport> MigrateRocksToPostgres(const MigrateOptions& options);

}  // namespace parley::store
