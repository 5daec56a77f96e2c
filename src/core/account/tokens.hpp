// Access tokens (HS256 JWTs through libjwt) and opaque refresh tokens.
// An access token names its user (`sub`), device (`dev`) and the device's
// token generation (`gen`); bumping the generation in the store revokes
// every token of that device at once.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "store/records.hpp"

namespace parley::core {

struct AccessClaims {
  store::UserId user = 0;
  store::DeviceId device = 0;
  std::uint32_t gen = 0;
  std::int64_t exp_s = 0;
};

enum class TokenError { kInvalid, kExpired };

class TokenService {
 public:
  // `secret` is the HS256 key (at least 32 bytes).
  TokenService(std::string secret, std::uint32_t access_ttl_s);

  std::string IssueAccess(store::UserId user, store::DeviceId device, std::uint32_t gen,
                          std::int64_t now_ms) const;
  std::expected<AccessClaims, TokenError> VerifyAccess(std::string_view token,
                                                       std::int64_t now_ms) const;
  std::uint32_t access_ttl_s() const { return access_ttl_s_; }

  // A keyed hash of a one-time code for a phone (never the digits at rest).
  std::string HashOtp(std::string_view phone, std::string_view code) const;

  // 32 random bytes, base64url without padding.
  static std::string NewRefreshToken();
  // SHA-256 of the token, raw bytes: how refresh tokens are kept.
  static std::string HashRefreshToken(std::string_view token);

 private:
  std::string secret_;
  std::string otp_key_;
  std::uint32_t access_ttl_s_;
};

// The JWT key: `configured` when set (at least 32 characters), else the key in
// <data_dir>/jwt.key, made (random, mode 0600) on first start. Throws
// std::runtime_error when it can be neither read nor made.
std::string LoadOrCreateSecret(const std::string& configured, const std::string& data_dir);

// Lowercase hex SHA-256 of text (contact discovery hashes E.164 numbers so).
std::string Sha256Hex(std::string_view text);

// A uniformly random 6-digit code.
std::string NewOtpCode();

}  // namespace parley::core
