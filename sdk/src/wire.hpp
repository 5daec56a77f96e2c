// JSON on the wire <-> the SDK's types (PROTOCOL.md). Internal to the SDK.
// Parsers are lenient about what the contract leaves optional and strict
// about what they need; ids are strings, times integers.
#pragma once

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parley/crypto.hpp"
#include "parley/events.hpp"
#include "parley/types.hpp"

namespace parley::sdk::detail {

namespace json = boost::json;

std::string Str(const json::object& o, std::string_view key);
std::int64_t Int(const json::object& o, std::string_view key, std::int64_t fallback = 0);
bool Bool(const json::object& o, std::string_view key, bool fallback = false);
// A decimal id or seq that may arrive as a string (the contract) or number.
std::uint64_t Seq(const json::object& o, std::string_view key);
const json::object* Obj(const json::object& o, std::string_view key);
const json::array* Arr(const json::object& o, std::string_view key);
std::vector<std::string> StrList(const json::object& o, std::string_view key);

std::optional<json::object> ParseObject(std::string_view text);

json::object ConvJson(const Conv& conv);
std::optional<Conv> ParseConv(const json::value& v);

// A `message` event (or a history entry), as it came: no decryption.
std::optional<Message> ParseMessage(const json::object& o);
// body.text when the body is an object with a string "text".
std::string TextOf(std::string_view body_json);

// An {"op":"error",...} frame or an HTTP {"error":{...}} body as an Error.
Error ErrorFromFrame(const json::object& frame);
Error ErrorFromHttp(int status, std::string_view body,
                    const std::map<std::string, std::string>& headers);

GroupInfo ParseGroupInfo(const json::object& o);
std::vector<DeviceInfo> ParseDevices(const json::object& o);
std::vector<Profile> ParseProfiles(const json::object& o);
std::vector<PresenceStatus> ParseStatuses(const json::object& o);
PresenceStatus ParsePresence(const json::object& o);
ReceiptInfo ParseReceipts(const json::object& o);
GroupEvent ParseGroupEvent(const json::object& o);

// ---- The e2ee envelope (PROTOCOL.md "End-to-end encryption") ----------------

std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);
std::string Sha256Hex(std::string_view data);

// {"sender_device":id,"ciphertexts":[{"user","device","type","data"}]}
json::object EnvelopeJson(const std::string& sender_device, const std::vector<Ciphertext>& list);
struct Envelope {
  std::string sender_device;
  std::vector<Ciphertext> ciphertexts;
};
std::optional<Envelope> ParseEnvelope(const json::value& body);
std::vector<DeviceAddress> ParseAddresses(const json::object& o, std::string_view key);

// The plaintext inside an e2ee ciphertext: {"kind","body","media_id"?}.
std::string InnerJson(const std::string& kind, const std::string& body_json,
                      const std::string& media_id);

}  // namespace parley::sdk::detail
