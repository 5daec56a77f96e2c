// libpq pipeline mode for the writer (see Conn in pg_conn.hpp), and the
// binary bytea[] parameter the bulk statements use.
#include <arpa/inet.h>
#include <libpq-fe.h>

#include <optional>
#include <utility>

#include "store/postgres/pg_conn.hpp"

namespace parley::store::pg {
namespace {

constexpr unsigned int kByteaArrayOid = 1001;
constexpr std::uint32_t kByteaOid = 17;

void PutU32(std::string& out, std::uint32_t v) {
  const std::uint32_t be = htonl(v);
  out.append(reinterpret_cast<const char*>(&be), sizeof be);
}

Error Lost(PGconn* conn) {
  return Error{Errc::kInternal, "postgresql: connection lost: " + OneLine(PQerrorMessage(conn))};
}

}  // namespace

Params& Params::BytesArray(std::span<const std::string> v) {
  // Array binary format: dimensions, has-nulls, element type, then per
  // dimension its length and lower bound, then each element's length and bytes.
  std::string out;
  std::size_t total = 20;
  for (const auto& e : v) total += 4 + e.size();
  out.reserve(total);
  PutU32(out, v.empty() ? 0 : 1);
  PutU32(out, 0);
  PutU32(out, kByteaOid);
  if (!v.empty()) {
    PutU32(out, static_cast<std::uint32_t>(v.size()));
    PutU32(out, 1);
  }
  for (const auto& e : v) {
    PutU32(out, static_cast<std::uint32_t>(e.size()));
    out.append(e);
  }
  return Add(std::move(out), kByteaArrayOid, 1);
}

Status Conn::EnterPipeline() {
  if (!healthy()) return std::unexpected(Lost(conn_));
  if (PQpipelineStatus(conn_) != PQ_PIPELINE_OFF) return Ok();
  if (PQenterPipelineMode(conn_) != 1) {
    return Fail(Errc::kInternal, "postgresql: pipeline mode: " + OneLine(PQerrorMessage(conn_)));
  }
  return Ok();
}

void Conn::ExitPipeline() {
  if (!healthy()) return;
  if (!pending_.empty()) (void)Sync();
  if (PQpipelineStatus(conn_) != PQ_PIPELINE_OFF && PQexitPipelineMode(conn_) != 1) Reconnect();
}

bool Conn::in_pipeline() const { return PQpipelineStatus(conn_) != PQ_PIPELINE_OFF; }

void Conn::Reconnect() {
  pending_.clear();
  prepared_.clear();
  PQreset(conn_);
  if (PQstatus(conn_) == CONNECTION_OK && !settings_.empty()) {
    PGresult* r = PQexec(conn_, settings_.c_str());
    PQclear(r);
  }
}

Status Conn::Send(const char* sql, const Params& params) {
  if (auto s = EnterPipeline(); !s) return s;
  const int n = static_cast<int>(params.size());
  std::string name;
  if (auto it = prepared_.find(sql); it != prepared_.end()) {
    name = it->second;
  } else {
    name = "s" + std::to_string(next_name_++);
    if (PQsendPrepare(conn_, name.c_str(), sql, n, params.types().data()) != 1) {
      return std::unexpected(Lost(conn_));
    }
    prepared_.emplace(sql, name);
    pending_.push_back({.prepared_sql = sql});
  }
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    values[i] = params.nulls()[i] ? nullptr : params.values()[i].data();
    lengths[i] = static_cast<int>(params.values()[i].size());
  }
  if (PQsendQueryPrepared(conn_, name.c_str(), n, values.data(), lengths.data(),
                          params.formats().data(), /*resultFormat=*/1) != 1) {
    return std::unexpected(Lost(conn_));
  }
  pending_.push_back({});
  return Ok();
}

Result<std::vector<Rows>> Conn::Sync() {
  std::vector<Rows> rows;
  if (pending_.empty()) return rows;
  const std::vector<Pending> pending = std::exchange(pending_, {});
  std::optional<Error> error;
  bool in_step = true;  // the answers can still be read in order
  if (PQpipelineSync(conn_) != 1) {
    error = Lost(conn_);
    in_step = false;
  }
  for (std::size_t i = 0; in_step && i < pending.size(); ++i) {
    const Pending& p = pending[i];
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      if (!error) error = Lost(conn_);
      in_step = false;
      break;
    }
    const auto status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      if (p.prepared_sql == nullptr) {
        rows.emplace_back(r);
      } else {
        PQclear(r);
      }
    } else {
      // A prepare the server failed or skipped does not exist.
      if (p.prepared_sql != nullptr) prepared_.erase(p.prepared_sql);
      if (!error) {
        error = status == PGRES_PIPELINE_ABORTED
                    ? Error{Errc::kInternal, "postgresql: pipeline aborted"}
                    : ErrorOf(r, p.prepared_sql != nullptr ? "prepare" : "statement");
      }
      PQclear(r);
      if (status == PGRES_FATAL_ERROR && !healthy()) {
        in_step = false;
        break;
      }
    }
    // Each statement's answers end with a null.
    if (PGresult* end = PQgetResult(conn_); end != nullptr) {
      PQclear(end);
      in_step = false;
      if (!error) error = Error{Errc::kInternal, "postgresql: pipeline out of step"};
    }
  }
  if (in_step) {
    PGresult* sync = PQgetResult(conn_);
    if (sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
      in_step = false;
      if (!error) error = Error{Errc::kInternal, "postgresql: pipeline out of step"};
    }
    if (sync != nullptr) PQclear(sync);
  }
  if (!in_step) {
    // Whatever was prepared in this step may not exist; a live connection
    // whose answers are out of step is replaced (the server rolls back).
    for (const Pending& p : pending) {
      if (p.prepared_sql != nullptr) prepared_.erase(p.prepared_sql);
    }
    if (healthy()) Reconnect();
  }
  if (error) return std::unexpected(std::move(*error));
  return rows;
}

}  // namespace parley::store::pg
