// The local store of one device (one CLI profile): a SQLite 3 database in
// WAL mode holding the account and its tokens, the mailbox cursor, the
// messages this device has seen or sent (the outbox included), and a
// key-value table for the crypto backend. docs/sdk.md, "Storage", has the
// schema.
//
// A Store is used by one thread at a time (the Client's I/O thread while a
// Client owns it). Several processes may open the same file: SQLite's locks
// and a busy timeout serialise them; token refresh across processes is
// serialised separately (RefreshLock).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parley/crypto.hpp"
#include "parley/types.hpp"

struct sqlite3;

namespace parley::sdk {

struct Tokens {
  std::string access_token;
  std::int64_t access_expires_ms = 0;  // local clock
  std::string refresh_token;
  std::int64_t refresh_expires_ms = 0;
};

class Store final : public KeyValueStore {
 public:
  // Opens (creating when missing) the database at `path`; its directory must
  // exist.
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // ---- Account and tokens ---------------------------------------------------

  Result<std::optional<Account>> GetAccount();
  Result<std::optional<Tokens>> GetTokens();
  // A new login: replaces the account, its tokens, the cursor, the messages
  // and the crypto state of any earlier login in this store.
  Status SaveLogin(const Account& account, const Tokens& tokens);
  // Written with a full fsync: a rotated refresh token that is lost would
  // make the next refresh look like token theft to the server.
  Status SaveTokens(const Tokens& tokens);
  // Forgets the tokens (logged out or revoked); the account stays readable.
  Status ClearTokens();

  Result<std::optional<std::string>> GetMeta(std::string_view key);
  Status SetMeta(std::string_view key, std::string_view value);

  // The highest mailbox seq up to which every event has been handled (0:
  // never synced).
  Result<std::uint64_t> GetCursor();
  Status SetCursor(std::uint64_t seq);

  // ---- Messages -------------------------------------------------------------

  enum class Insert {
    kNew,        // stored
    kDuplicate,  // a message with that msg_id was there already
    kOwnSend,    // it is this device's own pending or sent message (matched by
                 // client_msg_id); now marked sent with its msg_id
  };
  // Stores a message seen in the mailbox or in history, unless known.
  Result<Insert> PutMessage(const Message& message);
  // Queues one of this device's messages (status kPending, no msg_id).
  Status AddPending(const Message& message);
  // The outbox: pending messages, oldest first.
  Result<std::vector<Message>> Pending();
  // The server stored it. False when it was no longer pending (already marked).
  Result<bool> MarkSent(const std::string& client_msg_id, const SentMessage& sent);
  Status MarkFailed(const std::string& client_msg_id);
  // Moves the status of these outgoing messages forward (never back).
  // Returns the ids whose status changed.
  Result<std::vector<std::string>> AdvanceStatus(const std::vector<std::string>& msg_ids,
                                                 MessageStatus status);
  // Marks the incoming messages of `conv` up to `msg_id` as read.
  Status MarkReadUpTo(const Conv& conv, const std::string& msg_id);
  Result<std::optional<Message>> GetMessage(const std::string& msg_id);
  Result<std::optional<Message>> GetByClientMsgId(const std::string& client_msg_id);
  // The conversation's messages, newest first, older than `before_msg_id`
  // when given.
  Result<std::vector<Message>> Messages(const Conv& conv, int limit,
                                        const std::string& before_msg_id = {});

  // Runs `body` in one transaction (committed when it succeeds).
  Status Transaction(const std::function<Status()>& body);

  // ---- KeyValueStore (the crypto backend's state) ---------------------------

  Result<std::optional<std::string>> Get(std::string_view ns, std::string_view key) override;
  Status Put(std::string_view ns, std::string_view key, std::string_view value) override;
  Status Delete(std::string_view ns, std::string_view key) override;
  Result<std::vector<std::string>> Keys(std::string_view ns, std::string_view prefix) override;

 private:
  Store(sqlite3* db, std::string path);
  class Stmt;
  Status Exec(const char* sql);
  Stmt Prepare(const char* sql);
  Result<std::vector<Message>> QueryMessages(Stmt& stmt);

  sqlite3* db_ = nullptr;
  std::string path_;
  int tx_depth_ = 0;
};

// An exclusive advisory lock (flock) on a file beside the store, held while
// one process refreshes the device's tokens, so that two processes sharing
// a profile never both present the same refresh token (the server would
// take the second for a replay and revoke the device).
class RefreshLock {
 public:
  // Does not block: nullopt when another process holds it.
  static std::optional<RefreshLock> TryAcquire(const std::string& store_path);
  RefreshLock(RefreshLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RefreshLock& operator=(RefreshLock&&) = delete;
  ~RefreshLock();

 private:
  explicit RefreshLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace parley::sdk
