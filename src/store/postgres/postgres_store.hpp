// The PostgreSQL Store backend (`--store postgresql://...`): every node of a
// cluster shares one database. See docs/architecture.md for the schema and
// how writes are batched.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.hpp"
#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::store {

struct PostgresOptions {
  std::string url;          // a libpq URI: postgresql://USER@HOST:PORT/DB?...
  std::size_t readers = 4;  // connections for reads
  StoreObserver observer;   // optional
  // Optional: the writer's counters go here (parley_pg_writer_*, see
  // docs/operations.md).
  Registry* metrics = nullptr;
};

// Whether `url` names a PostgreSQL store (postgresql:// or postgres://).
bool IsPostgresUrl(std::string_view url);

// Connects, creates or upgrades the schema (under an advisory lock, so
// several nodes may start at once), and starts the writer. Fails with one
// line naming the problem: unreachable server, refused authentication,
// missing database, or a schema format newer than this build knows.
Result<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options);

// The shared secret called `name`: the stored one, or `fresh` stored now if
// there is none. Two nodes asking at once get the same value.
Result<std::string> PostgresSharedSecret(const std::string& url, std::string_view name,
                                         std::string_view fresh);

// Whether the store's database answers (for /ready). Implemented by the
// PostgreSQL store; other stores are always reachable.
bool PostgresStoreReachable(Store& store);

}  // namespace parley::store
