// The records every Store backend keeps. Plain values, no behaviour: the
// store contract (store.hpp) says what each operation does with them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parley::store {

using UserId = std::uint64_t;
using DeviceId = std::uint64_t;

struct User {
  UserId id = 0;
  std::string phone;  // E.164
  std::int64_t created_ms = 0;
  // Profile.
  std::string name;
  std::string status_text;
  std::string avatar_media_id;
  std::string last_seen_visibility = "everyone";  // everyone | contacts | nobody
  std::int64_t last_seen_ms = 0;
};

struct Device {
  UserId user_id = 0;
  DeviceId id = 0;
  std::string name;
  std::string platform;  // android | ios | web | desktop | cli
  std::int64_t created_ms = 0;
  std::int64_t last_active_ms = 0;
  // Access and refresh tokens carry the generation they were issued under;
  // bumping it revokes every token of the device at once.
  std::uint32_t token_gen = 0;
};

// A refresh token, keyed by the SHA-256 of the opaque token (never stored in
// the clear). A rotated token is kept, marked used, until it expires, so that
// presenting it again is recognised as theft.
struct RefreshToken {
  std::string hash;  // 32 raw bytes
  UserId user_id = 0;
  DeviceId device_id = 0;
  std::uint32_t token_gen = 0;
  std::int64_t expires_ms = 0;
  bool used = false;
};

// A pending one-time code for a phone number; at most one per phone.
struct OtpCode {
  std::string phone;
  std::string code_hash;  // keyed hash of the 6 digits, never the digits
  std::int64_t expires_ms = 0;
  std::uint32_t attempts = 0;  // wrong codes tried so far
};

struct ProfilePatch {
  std::optional<std::string> name;
  std::optional<std::string> status_text;
  std::optional<std::string> avatar_media_id;
  std::optional<std::string> last_seen_visibility;
};

}  // namespace parley::store
