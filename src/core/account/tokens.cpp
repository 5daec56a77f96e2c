#include "core/account/tokens.hpp"

#include <fcntl.h>
#include <jwt.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "common/ids.hpp"

namespace parley::core {

namespace {

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

std::string Hex(const unsigned char* data, std::size_t n) {
  std::string out(n * 2, '\0');
  sodium_bin2hex(out.data(), out.size() + 1, data, n);
  return out;
}

}  // namespace

TokenService::TokenService(std::string secret, std::uint32_t access_ttl_s)
    : secret_(std::move(secret)), access_ttl_s_(access_ttl_s) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  if (secret_.size() < 32) throw std::runtime_error("jwt_secret: at least 32 bytes");
  // A separate key for code hashes, so the JWT key itself never hashes user data.
  unsigned char key[crypto_generichash_KEYBYTES];
  static constexpr std::string_view kLabel = "parley otp key v1";
  crypto_generichash(key, sizeof key, reinterpret_cast<const unsigned char*>(kLabel.data()),
                     kLabel.size(), reinterpret_cast<const unsigned char*>(secret_.data()),
                     std::min<std::size_t>(secret_.size(), crypto_generichash_KEYBYTES_MAX));
  otp_key_.assign(reinterpret_cast<char*>(key), sizeof key);
}

std::string TokenService::IssueAccess(store::UserId user, store::DeviceId device, std::uint32_t gen,
                                      std::int64_t now_ms) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::bad_alloc();
  JwtPtr jwt(raw);
  const long now_s = static_cast<long>(now_ms / 1000);
  jwt_add_grant(jwt.get(), "sub", IdToString(user).c_str());
  jwt_add_grant(jwt.get(), "dev", IdToString(device).c_str());
  jwt_add_grant_int(jwt.get(), "gen", static_cast<long>(gen));
  jwt_add_grant_int(jwt.get(), "iat", now_s);
  jwt_add_grant_int(jwt.get(), "exp", now_s + static_cast<long>(access_ttl_s_));
  jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret_.data()),
              static_cast<int>(secret_.size()));
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) throw std::bad_alloc();
  std::string out(encoded);
  std::free(encoded);
  return out;
}

std::expected<AccessClaims, TokenError> TokenService::VerifyAccess(std::string_view token,
                                                                   std::int64_t now_ms) const {
  if (token.empty() || token.size() > 4096) return std::unexpected(TokenError::kInvalid);
  std::string text(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size())) != 0 ||
      raw == nullptr) {
    return std::unexpected(TokenError::kInvalid);
  }
  JwtPtr jwt(raw);
  // Only our own algorithm: never "none", never an algorithm the client picks.
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return std::unexpected(TokenError::kInvalid);
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  const char* dev = jwt_get_grant(jwt.get(), "dev");
  if (sub == nullptr || dev == nullptr) return std::unexpected(TokenError::kInvalid);
  auto user = ParseId(sub);
  auto device = ParseId(dev);
  if (!user || !device) return std::unexpected(TokenError::kInvalid);
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0) return std::unexpected(TokenError::kInvalid);
  const long gen = jwt_get_grant_int(jwt.get(), "gen");
  if (errno != 0 || gen < 0) return std::unexpected(TokenError::kInvalid);
  if (static_cast<std::int64_t>(exp) * 1000 <= now_ms) return std::unexpected(TokenError::kExpired);
  return AccessClaims{*user, *device, static_cast<std::uint32_t>(gen), exp};
}

std::string TokenService::HashOtp(std::string_view phone, std::string_view code) const {
  std::string msg;
  msg.reserve(phone.size() + code.size() + 1);
  msg.append(phone).append(":").append(code);
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(msg.data()),
                     msg.size(), reinterpret_cast<const unsigned char*>(otp_key_.data()),
                     otp_key_.size());
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string TokenService::NewRefreshToken() {
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, bytes, sizeof bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

std::string TokenService::HashRefreshToken(std::string_view token) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(token.data()), token.size());
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string Sha256Hex(std::string_view text) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return Hex(out, sizeof out);
}

std::string NewOtpCode() {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06u", randombytes_uniform(1000000));
  return buf;
}

std::string LoadOrCreateSecret(const std::string& configured, const std::string& data_dir) {
  if (!configured.empty()) {
    if (configured.size() < 32)
      throw std::runtime_error("config: jwt_secret: at least 32 characters");
    return configured;
  }
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  const std::filesystem::path path = std::filesystem::path(data_dir) / "jwt.key";
  if (std::ifstream in(path); in) {
    std::string hex;
    std::getline(in, hex);
    if (hex.size() >= 64) return hex;
    throw std::runtime_error("jwt key file " + path.string() +
                             " is damaged; remove it to make a new one");
  }
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  const std::string hex = Hex(bytes, sizeof bytes);
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp);
  const std::string line = hex + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot write " + path.string());
  }
  return hex;
}

}  // namespace parley::core
