// The value types of the Parley client SDK: errors, conversations, messages
// and the results of operations. Plain structs, no Boost in sight: whatever
// is JSON on the wire and not modelled here is handed over as JSON text.
#pragma once

#include <compare>
#include <cstdint>
#include <expected>
#include <future>
#include <optional>
#include <string>
#include <vector>

namespace parley::sdk {

// A device of a user, as the wire names it ({"user":id,"device":id}).
struct DeviceAddress {
  std::string user;
  std::string device;
  auto operator<=>(const DeviceAddress&) const = default;
};

// Why something failed. `code` is either a wire error code of the server
// (PROTOCOL.md: "not_member", "rate_limited", "invalid_code", ...) or one of
// the SDK's own codes:
//   network       the server could not be reached, or the connection failed
//   timeout       no answer in time (a send stays queued: see Client::Send)
//   disconnected  the connection dropped while the request was in flight;
//                 it may or may not have been applied
//   stopped       the client was stopped (Stop, destruction, or a stop
//                 condition below) before an answer
//   not_logged_in the profile has no account yet (Verify first)
//   logged_out    the refresh token was refused: log in again
//   device_revoked this device was removed from the account (close 4403)
//   replaced      a newer connection of this same device took over (4409);
//                 the client does not fight it: see Client::Reconnect
//   storage       the local SQLite store failed
//   crypto        the crypto backend failed
//   unsupported   the server or the crypto backend lacks the feature
//   invalid       the caller passed something malformed
//   protocol      the server answered something the SDK cannot read
struct Error {
  std::string code;
  std::string message;
  int http_status = 0;              // for HTTP calls, the response status
  std::int64_t retry_after_ms = 0;  // for rate_limited
  // For stale_devices (an e2ee send whose device set was not current).
  std::vector<DeviceAddress> missing;
  std::vector<DeviceAddress> extra;

  std::string ToString() const { return message.empty() ? code : code + ": " + message; }
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

// Every asynchronous operation of the Client answers through one of these.
// It always becomes ready: with the result, or with an Error (timeout,
// stopped, ...) when no result can come. `.get()` blocks the calling thread,
// which is how the CLI uses them; wait_for(0s) polls.
template <class T>
using Future = std::future<Result<T>>;

inline std::unexpected<Error> Fail(std::string code, std::string message = {}) {
  return std::unexpected<Error>(Error{std::move(code), std::move(message)});
}

// A conversation: a 1:1 chat with a peer user, or a group.
struct Conv {
  enum class Type { kUser, kGroup };
  Type type = Type::kUser;
  std::string id;

  static Conv User(std::string id) { return {Type::kUser, std::move(id)}; }
  static Conv Group(std::string id) { return {Type::kGroup, std::move(id)}; }
  bool is_group() const { return type == Type::kGroup; }
  // "u:<id>" or "g:<id>": the key the local store files it under.
  std::string Key() const { return (is_group() ? "g:" : "u:") + id; }
  static std::optional<Conv> FromKey(const std::string& key);
  auto operator<=>(const Conv&) const = default;
};

// Where one of this device's own messages stands. Incoming messages are
// kReceived until this user reads them (kRead).
enum class MessageStatus {
  kPending,    // stored locally, not yet acknowledged by the server
  kSent,       // stored by the server (one tick)
  kDelivered,  // a device of the recipient (of any recipient in a group) has it
  kRead,       // read by the recipient (by any recipient in a group)
  kFailed,     // refused by the server for good (not_member, too_large, ...)
  kReceived,   // an incoming message, not read yet
};
const char* StatusName(MessageStatus status);

struct Message {
  std::string msg_id;  // empty while kPending
  std::string client_msg_id;
  Conv conv;           // seen from this user: a 1:1 chat is named by the peer
  DeviceAddress from;  // the sending device
  bool outgoing = false;
  std::string kind;       // "text", "image", ...: after decryption, the inner kind
  std::string body_json;  // the body as JSON text (decrypted when it was e2ee)
  std::string text;       // body.text when the body has a string "text"
  std::string media_id;
  std::int64_t ts_ms = 0;  // server time (local time while pending)
  std::uint64_t seq = 0;   // the mailbox seq it arrived with (0 if from history)
  bool encrypted = false;  // it travelled as kind "e2ee"
  // Set when an e2ee message could not be decrypted (tampered, not meant for
  // this device, no session or sender key): kind stays "e2ee" and the body
  // is the envelope as it came. Reported in the MessageEvent, not stored.
  std::optional<Error> decrypt_error;
  MessageStatus status = MessageStatus::kReceived;
};

// The answer to a send: the server stored it.
struct SentMessage {
  std::string msg_id;
  std::string client_msg_id;
  std::uint64_t seq = 0;
  std::int64_t ts_ms = 0;
  bool duplicate = false;  // the server had it already (a retry)
};

struct HistoryPage {
  std::vector<Message> messages;  // newest first
  bool more = false;              // older messages exist
};

struct ReceiptEntry {
  std::string user;
  std::int64_t ts_ms = 0;
};
struct ReceiptInfo {
  std::vector<ReceiptEntry> delivered;
  std::vector<ReceiptEntry> read;
  int members = 0;  // recipients, not counting the sender
};

struct PresenceStatus {
  std::string user;
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;
};

struct GroupMember {
  std::string user;
  std::string role;  // "admin" or "member"
};
struct GroupInfo {
  std::string group_id;
  std::string name;
  std::vector<GroupMember> members;
  std::int64_t created_ms = 0;
  std::string avatar_media_id;
};

struct DeviceInfo {
  std::string device_id;
  std::string name;
  std::string platform;
  std::int64_t last_active_ms = 0;
  bool current = false;  // the device asking
};

struct Profile {
  std::string user;
  std::string name;
  std::string status_text;
  std::string avatar_media_id;
  std::optional<std::int64_t> last_seen_ms;
};

// profile.set: only the fields that are set are changed.
struct ProfileUpdate {
  std::optional<std::string> name;
  std::optional<std::string> status_text;
  std::optional<std::string> avatar_media_id;
  std::optional<std::string> last_seen_visibility;  // everyone, contacts, nobody
};

struct ContactMatch {
  std::string phone;  // the number asked about
  std::string user_id;
  std::string name;
  std::string avatar_media_id;
};

// The account of this device, as the local store keeps it.
struct Account {
  std::string server_url;
  std::string phone;
  std::string user_id;
  std::string device_id;
  bool new_user = false;  // only meaningful right after Verify
};

// Media (PROTOCOL.md section 6). The server's media endpoints are not there
// yet; the Client's media calls answer "unsupported" until they are.
struct MediaInfo {
  std::string media_id;
  std::string content_type;
  std::int64_t size = 0;
  std::string sha256;  // lowercase hex
};

}  // namespace parley::sdk
