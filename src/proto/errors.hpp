// The contract's error codes (PROTOCOL.md sections 1, 4 and 5) and the one
// place where domain errors become wire errors.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace parley::proto {

namespace code {
// Every op (section 5).
inline constexpr std::string_view kBadRequest = "bad_request";
inline constexpr std::string_view kUnknownOp = "unknown_op";
inline constexpr std::string_view kRateLimited = "rate_limited";
inline constexpr std::string_view kInternal = "internal";
inline constexpr std::string_view kBadFrame = "bad_frame";
// Accounts (section 1).
inline constexpr std::string_view kInvalidPhone = "invalid_phone";
inline constexpr std::string_view kInvalidCode = "invalid_code";
inline constexpr std::string_view kCodeExpired = "code_expired";
inline constexpr std::string_view kTooManyAttempts = "too_many_attempts";
inline constexpr std::string_view kDeviceLimit = "device_limit";
inline constexpr std::string_view kInvalidToken = "invalid_token";
inline constexpr std::string_view kTokenExpired = "token_expired";
inline constexpr std::string_view kDeviceRevoked = "device_revoked";
// Ops (section 4).
inline constexpr std::string_view kNotFound = "not_found";
inline constexpr std::string_view kNotMember = "not_member";
inline constexpr std::string_view kTooLarge = "too_large";
inline constexpr std::string_view kStaleDevices = "stale_devices";
inline constexpr std::string_view kNotAdmin = "not_admin";
inline constexpr std::string_view kTooManyMembers = "too_many_members";
// Extensions (docs/protocol.md).
inline constexpr std::string_view kMethodNotAllowed = "method_not_allowed";
inline constexpr std::string_view kUnavailable = "unavailable";
// The server's volume is full: nothing was stored (HTTP 507).
inline constexpr std::string_view kStorageFull = "storage_full";
// Media (HTTP only; docs/protocol.md lists them as extensions).
inline constexpr std::string_view kOffsetMismatch = "offset_mismatch";               // 409
inline constexpr std::string_view kUploadLocked = "upload_locked";                   // 423
inline constexpr std::string_view kUnsupportedMediaType = "unsupported_media_type";  // 415
inline constexpr std::string_view kTusVersion = "unsupported_tus_version";           // 412
inline constexpr std::string_view kRangeNotSatisfiable = "range_not_satisfiable";    // 416
inline constexpr std::string_view kQuotaExceeded = "quota_exceeded";                 // 413
inline constexpr std::string_view kTooManyUploads = "too_many_uploads";              // 429
}  // namespace code

// WebSocket close codes (section 2).
namespace close_code {
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kTryAgainLater = 1013;
inline constexpr std::uint16_t kProtocol = 4400;
inline constexpr std::uint16_t kUnauthenticated = 4401;
inline constexpr std::uint16_t kRevoked = 4403;
inline constexpr std::uint16_t kHeartbeat = 4408;
inline constexpr std::uint16_t kReplaced = 4409;
inline constexpr std::uint16_t kRateLimit = 4429;
}  // namespace close_code

struct WireError {
  std::string_view code;
  std::string message;
};

// A store or other domain failure as the wire sees it: backend details stay
// in the log, the client learns only what it may.
WireError ToWire(const Error& error);

}  // namespace parley::proto
