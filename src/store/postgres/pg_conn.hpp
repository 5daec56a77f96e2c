// A thin wrapper over one libpq connection (private to src/store/postgres/).
//
// Every statement is prepared once per connection (keyed by its text) and
// run with binary parameters and binary results, so values need no quoting
// and strings go through untouched (all string columns are bytea). A
// connection that breaks is reset by the next call that needs it.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"

namespace parley::store::pg {

// Parameters of one statement, in order ($1, $2, ...).
class Params {
 public:
  Params& I64(std::int64_t v);
  Params& U64(std::uint64_t v) { return I64(static_cast<std::int64_t>(v)); }
  Params& I32(std::int32_t v);
  Params& I16(std::int16_t v);
  Params& Bool(bool v);
  Params& Bytes(std::string_view v);
  Params& Text(std::string_view v);  // valid UTF-8 only
  // An int8[] (sent as text, "{1,2,3}").
  Params& U64Array(std::span<const std::uint64_t> v);
  // A bytea[] (binary array format), for bulk statements (pg_bulk.hpp).
  Params& BytesArray(std::span<const std::string> v);
  Params& NullI64();

  std::size_t size() const { return values_.size(); }
  const std::vector<std::string>& values() const { return values_; }
  const std::vector<unsigned int>& types() const { return types_; }
  const std::vector<int>& formats() const { return formats_; }
  const std::vector<bool>& nulls() const { return nulls_; }

 private:
  Params& Add(std::string value, unsigned int type, int format, bool null = false);
  std::vector<std::string> values_;
  std::vector<unsigned int> types_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
};

// A statement's result rows (binary format). Owns the PGresult.
class Rows {
 public:
  Rows() = default;
  explicit Rows(PGresult* r) : r_(r, &PQclear) {}

  int size() const { return r_ ? PQntuples(r_.get()) : 0; }
  bool empty() const { return size() == 0; }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::int64_t I64(int row, int col) const;
  std::uint64_t U64(int row, int col) const { return static_cast<std::uint64_t>(I64(row, col)); }
  std::int32_t I32(int row, int col) const;
  std::int16_t I16(int row, int col) const;
  bool Bool(int row, int col) const;
  std::string Bytes(int row, int col) const;
  // Rows affected by an INSERT/UPDATE/DELETE.
  std::uint64_t affected() const;

 private:
  std::shared_ptr<PGresult> r_;
};

// Rows for COPY ... FROM STDIN (FORMAT binary): a header, then per row a
// field count and each field as a length and its binary value. Bulk loads
// (parleyd admin migrate) stream these in chunks.
class CopyRows {
 public:
  CopyRows();
  // Starts a row of `fields` fields; the calls that follow add them in order.
  CopyRows& Row(int fields);
  CopyRows& I64(std::int64_t v);
  CopyRows& U64(std::uint64_t v) { return I64(static_cast<std::int64_t>(v)); }
  CopyRows& I16(std::int16_t v);
  CopyRows& Bool(bool v);
  CopyRows& Bytes(std::string_view v);
  CopyRows& Null();
  // The bytes so far (taken: the buffer is emptied, the header sent once).
  std::string Take();
  std::size_t size() const { return buf_.size(); }
  std::uint64_t rows() const { return rows_; }

 private:
  std::string buf_;
  std::uint64_t rows_ = 0;
};

class Conn {
 public:
  // Connects; the settings (timeouts) are applied to every (re)connection.
  static Result<std::unique_ptr<Conn>> Open(const std::string& url, std::string settings);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs one statement (prepared on first use) and answers its rows.
  Result<Rows> Exec(const char* sql, const Params& params = {});
  // Runs SQL text without parameters (several statements allowed).
  Status Run(std::string_view sql);
  // COPY ... FROM STDIN: Begin with the statement, Put chunks of CopyRows
  // bytes (the last chunk with CopyRows' trailer: End adds it), End answers
  // the rows the server stored.
  Status CopyBegin(const std::string& sql);
  Status CopyPut(std::string_view data);
  Result<std::uint64_t> CopyEnd();
  // Whether the connection is up (after a failure it may not be).
  bool healthy() const;
  // Reconnects if the connection is down; true when it is up afterwards.
  // After a failed attempt the next one waits kRetryInterval (false meanwhile).
  bool EnsureConnected();
  // Whether a transaction is open (or failed) on the connection.
  bool in_transaction() const;

  // ---- Pipeline mode (libpq), pg_pipeline.cpp ------------------------------
  // The writer sends a batch's statements without waiting for each answer:
  // Send queues one (prepared on first use, the prepare pipelined too) and
  // Sync sends a sync point and reads the answers of everything queued since
  // the last one, in order. After a failed statement the server skips the
  // rest up to the sync point (the transaction is aborted anyway).
  Status EnterPipeline();
  // Leaves pipeline mode (every answer read); a broken connection is left as it is.
  void ExitPipeline();
  bool in_pipeline() const;
  Status Send(const char* sql, const Params& params = {});
  // The rows of each statement sent since the last Sync, in order, or the
  // first statement's error (the connection's if it broke).
  Result<std::vector<Rows>> Sync();
  // Statements sent and not yet answered.
  std::size_t pending() const { return pending_.size(); }

 private:
  explicit Conn(PGconn* c, std::string settings) : conn_(c), settings_(std::move(settings)) {}
  Status Prepare(const char* sql, const Params& params, std::string& name);
  Error ErrorOf(PGresult* r, std::string_view what) const;

  static constexpr std::chrono::milliseconds kRetryInterval{200};

  PGconn* conn_;
  std::string settings_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
  // Pipeline: what each expected answer is (a prepare names its sql).
  struct Pending {
    const char* prepared_sql = nullptr;  // non-null: the answer of this statement's prepare
  };
  std::vector<Pending> pending_;
  std::uint64_t next_name_ = 0;  // statement names, never reused on a connection
  // Reconnects now (the pipeline's answers could not be read in order).
  void Reconnect();
};

// libpq's message for a failed connection, on one line.
std::string OneLine(std::string_view message);

}  // namespace parley::store::pg
