#include "store/postgres/pg_conn.hpp"

#include "store/postgres/libpq_loader.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <string_view>
#include <utility>

namespace parley::store::pg {
namespace {

// Type oids (pg_type.dat).
constexpr unsigned int kBoolOid = 16;
constexpr unsigned int kByteaOid = 17;
constexpr unsigned int kInt8Oid = 20;
constexpr unsigned int kInt2Oid = 21;
constexpr unsigned int kInt4Oid = 23;
constexpr unsigned int kInt8ArrayOid = 1016;

std::string BigEndian(std::uint64_t v, int bytes) {
  std::string out(static_cast<std::size_t>(bytes), '\0');
  for (int i = bytes - 1; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::uint64_t FromBigEndian(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::string OneLine(std::string_view message) {
  std::string out(message);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

Params& Params::Add(std::string value, unsigned int type, int format, bool null) {
  values_.push_back(std::move(value));
  types_.push_back(type);
  formats_.push_back(format);
  nulls_.push_back(null);
  return *this;
}

Params& Params::I64(std::int64_t v) {
  return Add(BigEndian(static_cast<std::uint64_t>(v), 8), kInt8Oid, 1);
}
Params& Params::I32(std::int32_t v) {
  return Add(BigEndian(static_cast<std::uint32_t>(v), 4), kInt4Oid, 1);
}
Params& Params::I16(std::int16_t v) {
  return Add(BigEndian(static_cast<std::uint16_t>(v), 2), kInt2Oid, 1);
}
Params& Params::Bool(bool v) { return Add(std::string(1, v ? '\1' : '\0'), kBoolOid, 1); }
Params& Params::Bytes(std::string_view v) { return Add(std::string(v), kByteaOid, 1); }
Params& Params::Text(std::string_view v) { return Add(std::string(v), 25, 1); }
Params& Params::NullI64() { return Add(std::string(), kInt8Oid, 1, true); }
Params& Params::U64Array(std::span<const std::uint64_t> v) {
  std::string text = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(static_cast<std::int64_t>(v[i]));
  }
  text += '}';
  return Add(std::move(text), kInt8ArrayOid, 0);
}

std::int64_t Rows::I64(int row, int col) const {
  const char* p = PQgetvalue(r_.get(), row, col);
  return static_cast<std::int64_t>(FromBigEndian(p, 8));
}
std::int32_t Rows::I32(int row, int col) const {
  return static_cast<std::int32_t>(FromBigEndian(PQgetvalue(r_.get(), row, col), 4));
}
std::int16_t Rows::I16(int row, int col) const {
  return static_cast<std::int16_t>(FromBigEndian(PQgetvalue(r_.get(), row, col), 2));
}
bool Rows::Bool(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] != 0; }
std::string Rows::Bytes(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
}
std::uint64_t Rows::affected() const {
  const char* n = r_ ? PQcmdTuples(r_.get()) : "";
  return *n == '\0' ? 0 : std::stoull(n);
}

// ---- CopyRows ------------------------------------------------------------------

CopyRows::CopyRows() {
  // Signature, flags (none), header extension length (none).
  buf_.append("PGCOPY\n\377\r\n\0", 11);
  buf_.append(8, '\0');
}

CopyRows& CopyRows::Row(int fields) {
  buf_ += BigEndian(static_cast<std::uint16_t>(fields), 2);
  ++rows_;
  return *this;
}

CopyRows& CopyRows::I64(std::int64_t v) {
  buf_ += BigEndian(8, 4);
  buf_ += BigEndian(static_cast<std::uint64_t>(v), 8);
  return *this;
}

CopyRows& CopyRows::I16(std::int16_t v) {
  buf_ += BigEndian(2, 4);
  buf_ += BigEndian(static_cast<std::uint16_t>(v), 2);
  return *this;
}

CopyRows& CopyRows::Bool(bool v) {
  buf_ += BigEndian(1, 4);
  buf_.push_back(v ? '\1' : '\0');
  return *this;
}

CopyRows& CopyRows::Bytes(std::string_view v) {
  buf_ += BigEndian(v.size(), 4);
  buf_.append(v);
  return *this;
}

CopyRows& CopyRows::Null() {
  buf_ += BigEndian(0xffffffffU, 4);
  return *this;
}

std::string CopyRows::Take() { return std::exchange(buf_, std::string()); }

// ---- Conn ----------------------------------------------------------------------

Result<std::unique_ptr<Conn>> Conn::Open(const std::string& url, std::string settings) {
  // Bounded waits on every (re)connection: a connect gives up after 5 s, and
  // over TCP a server that vanished without closing the socket (a power
  // cut, a partition) is noticed within ~20 s by keepalives and the
  // user timeout, instead of a call blocking until the kernel gives up.
  // (These apply to TCP only; a unix socket fails at once.) Settings the
  // URI names itself win over these defaults.
  const char* keys[] = {
      "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "dbname",          nullptr};
  const char* values[] = {"5", "1", "10", "3", "3", "20000", url.c_str(), nullptr};
  if (auto loaded = LoadLibpq(); !loaded) return std::unexpected(loaded.error());
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return Fail(Errc::kUnavailable, "postgresql: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string message = OneLine(PQerrorMessage(c));
    PQfinish(c);
    return Fail(Errc::kUnavailable, "postgresql: " + message);
  }
  // The server's NOTICEs ("relation ... already exists, skipping" from the
  // idempotent schema statements every node runs at start) go to the debug
  // log instead of libpq's default, stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char* message) { spdlog::debug("postgresql: {}", OneLine(message)); },
      nullptr);
  std::unique_ptr<Conn> conn(new Conn(c, std::move(settings)));
  if (!conn->settings_.empty()) {
    if (auto s = conn->Run(conn->settings_); !s) return std::unexpected(s.error());
  }
  return conn;
}

Conn::~Conn() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool Conn::healthy() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

bool Conn::in_transaction() const {
  const auto s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

bool Conn::EnsureConnected() {
  if (healthy()) return true;
  // While the server is away, callers fail at once instead of each trying
  // to connect (at most one attempt per kRetryInterval per connection).
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return false;
  next_attempt_ = now + kRetryInterval;
  prepared_.clear();
  pending_.clear();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return false;
  next_attempt_ = {};
  if (!settings_.empty()) {
    PGresult* r = PQexec(conn_, settings_.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
  }
  return true;
}

Error Conn::ErrorOf(PGresult* r, std::string_view what) const {
  std::string message = "postgresql " + std::string(what) + ": ";
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (state != nullptr) message += std::string("[") + state + "] ";
  message += OneLine(r != nullptr && *PQresultErrorMessage(r) != '\0' ? PQresultErrorMessage(r)
                                                                      : PQerrorMessage(conn_));
  // 53100 disk_full (and 53xxx insufficient resources): the volume is full.
  const bool full = state != nullptr && std::string_view(state) == "53100";
  return Error{full ? Errc::kNoSpace : Errc::kInternal, std::move(message)};
}

Status Conn::Prepare(const char* sql, const Params& params, std::string& name) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) {
    name = it->second;
    return Ok();
  }
  name = "s" + std::to_string(next_name_++);
  PGresult* r =
      PQprepare(conn_, name.c_str(), sql, static_cast<int>(params.size()), params.types().data());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) {
    Error e = ErrorOf(r, "prepare");
    PQclear(r);
    return std::unexpected(std::move(e));
  }
  PQclear(r);
  prepared_.emplace(sql, name);
  return Ok();
}

Result<Rows> Conn::Exec(const char* sql, const Params& params) {
  if (!healthy()) {
    return Fail(Errc::kInternal, "postgresql: connection lost: " + OneLine(PQerrorMessage(conn_)));
  }
  std::string name;
  if (auto s = Prepare(sql, params, name); !s) return std::unexpected(s.error());
  const std::size_t n = params.size();
  std::vector<const char*> values(n);
  std::vector<int> lengths(n);
  for (std::size_t i = 0; i < n; ++i) {
    values[i] = params.nulls()[i] ? nullptr : params.values()[i].data();
    lengths[i] = static_cast<int>(params.values()[i].size());
  }
  PGresult* r = PQexecPrepared(conn_, name.c_str(), static_cast<int>(n), values.data(),
                               lengths.data(), params.formats().data(), /*resultFormat=*/1);
  const auto status = PQresultStatus(r);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    Error e = ErrorOf(r, "statement");
    PQclear(r);
    return std::unexpected(std::move(e));
  }
  return Rows(r);
}

Status Conn::Run(std::string_view sql) {
  if (!healthy()) {
    return Fail(Errc::kInternal, "postgresql: connection lost: " + OneLine(PQerrorMessage(conn_)));
  }
  std::string text(sql);
  PGresult* r = PQexec(conn_, text.c_str());
  const auto status = PQresultStatus(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    Error e = ErrorOf(r, "command");
    PQclear(r);
    return std::unexpected(std::move(e));
  }
  PQclear(r);
  return Ok();
}

}  // namespace parley::store::pg

namespace parley::store::pg {

Status Conn::CopyBegin(const std::string& sql) {
  if (!healthy()) {
    return Fail(Errc::kInternal, "postgresql: connection lost: " + OneLine(PQerrorMessage(conn_)));
  }
  PGresult* r = PQexec(conn_, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COPY_IN;
  if (!ok) {
    Error e = ErrorOf(r, "copy");
    PQclear(r);
    return std::unexpected(std::move(e));
  }
  PQclear(r);
  return Ok();
}

Status Conn::CopyPut(std::string_view data) {
  if (!data.empty() && PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
    return Fail(Errc::kInternal, "postgresql copy: " + OneLine(PQerrorMessage(conn_)));
  }
  return Ok();
}

Result<std::uint64_t> Conn::CopyEnd() {
  const char trailer[2] = {'\xff', '\xff'};
  if (PQputCopyData(conn_, trailer, 2) != 1 || PQputCopyEnd(conn_, nullptr) != 1) {
    return Fail(Errc::kInternal, "postgresql copy: " + OneLine(PQerrorMessage(conn_)));
  }
  Result<std::uint64_t> out = 0;
  while (PGresult* r = PQgetResult(conn_)) {
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      const char* n = PQcmdTuples(r);
      if (out) out = *n == '\0' ? 0 : std::stoull(n);
    } else if (out) {
      out = std::unexpected(ErrorOf(r, "copy"));
    }
    PQclear(r);
  }
  return out;
}

}  // namespace parley::store::pg
