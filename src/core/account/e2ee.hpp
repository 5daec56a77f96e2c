// End-to-end encryption as the server sees it (PROTOCOL.md section 4, "End-to-end
// encryption"): the envelope of `e2ee` and `sender_key` bodies, checked but
// never decrypted; base64 checks for keys.upload; the keys_changed event;
// and the per-device frames of an encrypted message.
//
// Design note: the server cannot read a ciphertext, only check who it is
// for. A send is checked in core, before the append, against the devices
// that are current at that moment (store reads). A key upload or removal
// that commits between that check and the append is not seen by it; that
// change's keys_changed event lands in the sender's mailbox after the
// message, so the client fixes its sessions for the next send (the device
// that appeared in between reads the message in its history as one it has
// no ciphertext for, like any device added just after a message).
#pragma once

#include <boost/json.hpp>
#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/records.hpp"

namespace parley::core {

namespace json = boost::json;

// The decoded size of canonical standard base64 (with padding), or nullopt.
std::optional<std::size_t> Base64DecodedSize(std::string_view text);

// The kinds whose bodies are envelopes.
inline bool IsEncryptedKind(std::string_view kind) {
  return kind == "e2ee" || kind == "sender_key";
}

struct DeviceAddr {
  store::UserId user = 0;
  store::DeviceId device = 0;
  auto operator<=>(const DeviceAddr&) const = default;
};

struct Envelope {
  store::DeviceId sender_device = 0;
  std::vector<DeviceAddr> targets;  // in body order, no duplicates
};

// Checks an envelope body strictly: `sender_device` (an id) and
// `ciphertexts` (a list of {user, device, type, data} with type "prekey" or
// "message" and data non-empty base64, each device at most once). An `e2ee`
// body has no other fields; a `sender_key` body may carry more (the
// client's own, passed through). The error names the field.
std::expected<Envelope, std::string> ParseEnvelope(const json::value& body, std::string_view kind);

// {"type":"keys_changed","user","device","change","devices","ts_ms"}.
std::string RenderKeysChanged(const store::KeysChangedInfo& info);

// One encrypted message rendered once and cut per device: each device's
// frame is the shared event with that device's ciphertext spliced in.
class EncryptedFrames {
 public:
  // False when the stored body is not an envelope (then render per device).
  bool Prepare(const store::Message& m);
  // The event body (without seq) for one device of `viewer`.
  std::string EventBodyFor(store::UserId viewer, store::DeviceId device);

 private:
  const store::Message* message_ = nullptr;
  std::string head_[2];    // the message object without body, open: [incoming, outgoing]
  std::string body_head_;  // the body without ciphertexts, open, followed by a comma if needed
  std::unordered_map<std::string, std::string> entries_;  // "user/device" -> serialized entry
};

}  // namespace parley::core
