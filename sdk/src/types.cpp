#include "parley/types.hpp"
#include "parley/events.hpp"

namespace parley::sdk {

std::optional<Conv> Conv::FromKey(const std::string& key) {
  if (key.size() < 3 || key[1] != ':') return std::nullopt;
  if (key[0] == 'u') return User(key.substr(2));
  if (key[0] == 'g') return Group(key.substr(2));
  return std::nullopt;
}

const char* StatusName(MessageStatus status) {
  switch (status) {
    case MessageStatus::kPending:
      return "pending";
    case MessageStatus::kSent:
      return "sent";
    case MessageStatus::kDelivered:
      return "delivered";
    case MessageStatus::kRead:
      return "read";
    case MessageStatus::kFailed:
      return "failed";
    case MessageStatus::kReceived:
      return "received";
  }
  return "unknown";
}

const char* StateName(ConnectionEvent::State state) {
  switch (state) {
    case ConnectionEvent::State::kConnecting:
      return "connecting";
    case ConnectionEvent::State::kOnline:
      return "online";
    case ConnectionEvent::State::kSynced:
      return "synced";
    case ConnectionEvent::State::kOffline:
      return "offline";
    case ConnectionEvent::State::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace parley::sdk
