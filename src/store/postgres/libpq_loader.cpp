// libpq, loaded when the first PostgreSQL connection is opened.
//
// parleyd does not link libpq: it and the libraries it pulls in (GnuTLS,
// Kerberos, LDAP, SASL, p11-kit, nettle, GMP...) cost an idle RocksDB node
// about 3.7 MB of resident memory just by being mapped and relocated, and
// RocksDB is the default. Instead this file defines the libpq functions the
// store calls, each forwarding to the real one, which LoadLibpq finds with
// dlopen("libpq.so.5", or $PARLEY_LIBPQ) and dlsym. Conn::Open calls
// LoadLibpq before its first connection, so a missing library is one clear
// error at start. A test binary that also links libpq gets these
// forwarders for its own calls; they reach the same library.
#include "store/postgres/libpq_loader.hpp"

#include <dlfcn.h>
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace parley::store::pg {
namespace {

// One function pointer per libpq function the store uses, named as in libpq.
struct Api {
#define PARLEY_PQ_FUNCTIONS(X) \
  X(PQconnectdbParams)         \
  X(PQfinish)                  \
  X(PQreset)                   \
  X(PQstatus)                  \
  X(PQtransactionStatus)       \
  X(PQerrorMessage)            \
  X(PQpipelineStatus)          \
  X(PQsetNoticeProcessor)      \
  X(PQexec)                    \
  X(PQprepare)                 \
  X(PQexecPrepared)            \
  X(PQsendPrepare)             \
  X(PQsendQueryPrepared)       \
  X(PQgetResult)               \
  X(PQenterPipelineMode)       \
  X(PQexitPipelineMode)        \
  X(PQpipelineSync)            \
  X(PQputCopyData)             \
  X(PQputCopyEnd)              \
  X(PQresultStatus)            \
  X(PQresultErrorMessage)      \
  X(PQresultErrorField)        \
  X(PQntuples)                 \
  X(PQcmdTuples)               \
  X(PQgetvalue)                \
  X(PQgetlength)               \
  X(PQgetisnull)               \
  X(PQclear)
#define PARLEY_PQ_POINTER(name) decltype(&::name) name = nullptr;
  PARLEY_PQ_FUNCTIONS(PARLEY_PQ_POINTER)
#undef PARLEY_PQ_POINTER
};

Api g_api;
std::once_flag g_once;
std::string g_error;  // empty once loaded

void Load() {
  const char* env = std::getenv("PARLEY_LIBPQ");
  const std::string name = env != nullptr && *env != '\0' ? env : kLibpqName;
  // RTLD_LOCAL: libpq's own dependencies stay out of the global namespace.
  void* handle = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    // dlerror names the file.
    g_error = std::string("cannot load the PostgreSQL client library: ") +
              (why != nullptr ? why : name + ": dlopen failed") + " (install libpq5)";
    return;
  }
  Api api;
  std::string missing;
#define PARLEY_PQ_RESOLVE(name)                                            \
  api.name = reinterpret_cast<decltype(api.name)>(::dlsym(handle, #name)); \
  if (api.name == nullptr) missing += std::string(missing.empty() ? "" : ", ") + #name;
  PARLEY_PQ_FUNCTIONS(PARLEY_PQ_RESOLVE)
#undef PARLEY_PQ_RESOLVE
  if (!missing.empty()) {
    g_error = name + " lacks " + missing + " (libpq 14 or newer is needed)";
    ::dlclose(handle);
    return;
  }
  g_api = api;  // the handle stays open for the life of the process
}

// The forwarders' view. The store reaches them only after LoadLibpq
// succeeded; a test that calls libpq first loads it here.
const Api& Loaded() {
  std::call_once(g_once, Load);
  if (!g_error.empty()) {
    std::fprintf(stderr, "parleyd: %s\n", g_error.c_str());
    std::abort();
  }
  return g_api;
}

}  // namespace

Status LoadLibpq() {
  std::call_once(g_once, Load);
  if (!g_error.empty()) return Fail(Errc::kUnavailable, g_error);
  return Ok();
}

}  // namespace parley::store::pg

// ---- The forwarders (libpq's names and signatures, libpq-fe.h) -----------------

using parley::store::pg::Loaded;

extern "C" {

PGconn* PQconnectdbParams(const char* const* keywords, const char* const* values,
                          int expand_dbname) {
  return Loaded().PQconnectdbParams(keywords, values, expand_dbname);
}
void PQfinish(PGconn* conn) { Loaded().PQfinish(conn); }
void PQreset(PGconn* conn) { Loaded().PQreset(conn); }
ConnStatusType PQstatus(const PGconn* conn) { return Loaded().PQstatus(conn); }
PGTransactionStatusType PQtransactionStatus(const PGconn* conn) {
  return Loaded().PQtransactionStatus(conn);
}
char* PQerrorMessage(const PGconn* conn) { return Loaded().PQerrorMessage(conn); }
PGpipelineStatus PQpipelineStatus(const PGconn* conn) { return Loaded().PQpipelineStatus(conn); }
PQnoticeProcessor PQsetNoticeProcessor(PGconn* conn, PQnoticeProcessor proc, void* arg) {
  return Loaded().PQsetNoticeProcessor(conn, proc, arg);
}
PGresult* PQexec(PGconn* conn, const char* query) { return Loaded().PQexec(conn, query); }
PGresult* PQprepare(PGconn* conn, const char* stmtName, const char* query, int nParams,
                    const Oid* paramTypes) {
  return Loaded().PQprepare(conn, stmtName, query, nParams, paramTypes);
}
PGresult* PQexecPrepared(PGconn* conn, const char* stmtName, int nParams,
                         const char* const* paramValues, const int* paramLengths,
                         const int* paramFormats, int resultFormat) {
  return Loaded().PQexecPrepared(conn, stmtName, nParams, paramValues, paramLengths, paramFormats,
                                 resultFormat);
}
int PQsendPrepare(PGconn* conn, const char* stmtName, const char* query, int nParams,
                  const Oid* paramTypes) {
  return Loaded().PQsendPrepare(conn, stmtName, query, nParams, paramTypes);
}
int PQsendQueryPrepared(PGconn* conn, const char* stmtName, int nParams,
                        const char* const* paramValues, const int* paramLengths,
                        const int* paramFormats, int resultFormat) {
  return Loaded().PQsendQueryPrepared(conn, stmtName, nParams, paramValues, paramLengths,
                                      paramFormats, resultFormat);
}
PGresult* PQgetResult(PGconn* conn) { return Loaded().PQgetResult(conn); }
int PQenterPipelineMode(PGconn* conn) { return Loaded().PQenterPipelineMode(conn); }
int PQexitPipelineMode(PGconn* conn) { return Loaded().PQexitPipelineMode(conn); }
int PQpipelineSync(PGconn* conn) { return Loaded().PQpipelineSync(conn); }
int PQputCopyData(PGconn* conn, const char* buffer, int nbytes) {
  return Loaded().PQputCopyData(conn, buffer, nbytes);
}
int PQputCopyEnd(PGconn* conn, const char* errormsg) {
  return Loaded().PQputCopyEnd(conn, errormsg);
}
ExecStatusType PQresultStatus(const PGresult* res) { return Loaded().PQresultStatus(res); }
char* PQresultErrorMessage(const PGresult* res) { return Loaded().PQresultErrorMessage(res); }
char* PQresultErrorField(const PGresult* res, int fieldcode) {
  return Loaded().PQresultErrorField(res, fieldcode);
}
int PQntuples(const PGresult* res) { return Loaded().PQntuples(res); }
char* PQcmdTuples(PGresult* res) { return Loaded().PQcmdTuples(res); }
char* PQgetvalue(const PGresult* res, int tup_num, int field_num) {
  return Loaded().PQgetvalue(res, tup_num, field_num);
}
int PQgetlength(const PGresult* res, int tup_num, int field_num) {
  return Loaded().PQgetlength(res, tup_num, field_num);
}
int PQgetisnull(const PGresult* res, int tup_num, int field_num) {
  return Loaded().PQgetisnull(res, tup_num, field_num);
}
void PQclear(PGresult* res) { Loaded().PQclear(res); }

}  // extern "C"
