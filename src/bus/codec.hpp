// The bus's messages on the wire between nodes (docs/architecture.md, "The
// bus"): one small JSON object per message, tagged by "t", with the
// publisher's instance in "o". Everything a node receives from Redis is
// hostile until decoded here: anything malformed, oversized, of another
// version or of an unknown type decodes to nothing and is counted as dropped.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "bus/bus.hpp"

namespace parley::bus {

// Larger payloads are dropped unread.
inline constexpr std::size_t kMaxPayloadBytes = 64 * 1024;

inline constexpr std::string_view kPresenceChannel = "presence";
std::string UserChannel(UserId user);  // "u:{user}"
std::optional<UserId> ParseUserChannel(std::string_view channel);
std::string PingChannel(std::string_view instance);  // "n:{instance}:ping"

std::string Encode(const Wake& m);
std::string Encode(const Typing& m);
std::string Encode(const Control& m);
std::string Encode(const PresenceChange& m);

// A message of a user's channel (the user comes from the channel's name).
using UserMessage = std::variant<Wake, Typing, Control>;
std::optional<UserMessage> DecodeUserMessage(UserId user, std::string_view payload);
std::optional<PresenceChange> DecodePresence(std::string_view payload);

// Instance ids are 1 to 32 lower-case hex digits.
bool ValidInstance(std::string_view instance);

// A connection registry member, `device/instance/node`.
std::optional<DeviceLocation> ParseRegistryMember(std::string_view m);

}  // namespace parley::bus
