// What the Client reports: one std::variant, Event, taken from a queue
// (Client::WaitEvent / PollEvent, or poll() on Client::EventFd()). See
// docs/sdk.md, "Events".
//
// Every event that comes from the mailbox has already been written to the
// local store when it is queued, and is acknowledged to the server only
// after that: an application that misses an event (or drops the Client)
// still finds the message in the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "parley/types.hpp"

namespace parley::sdk {

// The connection's state changed.
struct ConnectionEvent {
  enum class State {
    kConnecting,  // opening the WebSocket (first time or after a drop)
    kOnline,      // hello answered: ops are served, events stream
    kSynced,      // caught up with the mailbox as it was at hello
    kOffline,     // the connection dropped; a reconnect is scheduled
    kStopped,     // no more reconnects: Stop(), or a stop condition (error)
  };
  State state = State::kConnecting;
  // kOffline: the close code (1006 when the socket just dropped) and reason.
  int close_code = 0;
  std::string reason;
  std::int64_t retry_in_ms = 0;  // kOffline: when the next attempt starts
  // kStopped by a condition rather than by Stop(): device_revoked, replaced,
  // logged_out, not_logged_in (Error::code values).
  std::optional<Error> error;
  std::uint64_t head_seq = 0;  // kOnline/kSynced: the mailbox head at hello
};
const char* StateName(ConnectionEvent::State state);

// A message this device had not seen: incoming, or sent by another device of
// this user (outgoing == true). A message this device sent itself is not
// repeated here; its progress comes as MessageStatusEvent.
struct MessageEvent {
  Message message;
};

// One of this device's own messages changed status: sent (the server's ok),
// failed, or (from a receipt) delivered / read by `by`.
struct MessageStatusEvent {
  Conv conv;
  std::string msg_id;
  std::string client_msg_id;
  MessageStatus status = MessageStatus::kSent;
  std::string by;              // the recipient, for delivered and read
  std::optional<Error> error;  // for kFailed
};

// A receipt for messages this user sent (from any of its devices).
struct ReceiptEvent {
  Conv conv;
  std::vector<std::string> msg_ids;
  std::string by;
  MessageStatus status = MessageStatus::kDelivered;  // kDelivered or kRead
  std::int64_t ts_ms = 0;
};

// Another device of this user read the conversation up to a message.
struct ReadSyncEvent {
  Conv conv;
  std::string up_to_msg_id;
};

struct GroupEvent {
  std::string group_id;
  std::string change;  // created, added, removed, left, promoted, demoted, updated
  std::string by;
  std::vector<std::string> users;
  std::optional<std::string> name;
  std::int64_t ts_ms = 0;
};

// A device of `user` has a new identity key: sessions with it start over and
// the safety number changes.
struct KeysChangedEvent {
  DeviceAddress device;
};

// A device of this user was added (signed in) or removed.
struct DeviceEvent {
  std::string change;  // added, removed
  std::string device_id;
  std::string name;
};

struct TypingEvent {
  Conv conv;  // seen from this user
  DeviceAddress from;
  bool composing = false;  // false: paused, or expired (no repeat for 6 s)
  bool expired = false;    // generated locally: the 6 s ran out
};

struct PresenceEvent {
  PresenceStatus status;
};

// A mailbox event of a type this SDK does not know, passed on as it came.
struct OtherEvent {
  std::uint64_t seq = 0;
  std::string type;
  std::string json;
};

using Event =
    std::variant<ConnectionEvent, MessageEvent, MessageStatusEvent, ReceiptEvent, ReadSyncEvent,
                 GroupEvent, KeysChangedEvent, DeviceEvent, TypingEvent, PresenceEvent, OtherEvent>;

}  // namespace parley::sdk
