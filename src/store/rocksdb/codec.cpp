#include "store/rocksdb/codec.hpp"

#include <cstddef>

namespace parley::store::rocks {
namespace {

// Leading bytes: record kind and layout version in one. Never reuse one.
constexpr std::uint8_t kUserV1 = 0x11;
constexpr std::uint8_t kDeviceV1 = 0x21;
constexpr std::uint8_t kRefreshTokenV1 = 0x31;
constexpr std::uint8_t kOtpV1 = 0x41;

void PutBigEndian(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::uint64_t GetBigEndian(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}

class Writer {
 public:
  explicit Writer(std::uint8_t tag) { out_.push_back(static_cast<char>(tag)); }

  Writer& Varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& Signed(std::int64_t v) {
    return Varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  Writer& Str(std::string_view s) {
    Varint(s.size());
    out_.append(s);
    return *this;
  }
  Writer& Bool(bool b) {
    out_.push_back(b ? 1 : 0);
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields in order; the first malformed one poisons the rest, so the
// decoders read everything and check once at the end.
class Reader {
 public:
  Reader(std::string_view in, std::uint8_t tag) : in_(in) {
    ok_ = !in_.empty() && static_cast<std::uint8_t>(in_[0]) == tag;
    pos_ = 1;
  }

  std::uint64_t Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; ok_ && shift < 64; shift += 7) {
      if (pos_ >= in_.size()) break;
      auto byte = static_cast<std::uint8_t>(in_[pos_++]);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  std::int64_t Signed() {
    std::uint64_t z = Varint();
    return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  std::uint32_t U32() {
    std::uint64_t v = Varint();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<std::uint32_t>(v);
  }
  std::string Str() {
    std::uint64_t n = Varint();
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool Bool() {
    if (!ok_ || pos_ >= in_.size()) {
      ok_ = false;
      return false;
    }
    auto byte = static_cast<std::uint8_t>(in_[pos_++]);
    if (byte > 1) ok_ = false;
    return byte == 1;
  }
  // True when every field was well formed and nothing is left over.
  bool Done() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = false;
};

std::unexpected<Error> Corrupt(std::string_view what) {
  return Fail(Errc::kCorruption, "undecodable " + std::string(what) + " record");
}

}  // namespace

std::string U64Key(std::uint64_t v) {
  std::string key;
  key.reserve(8);
  PutBigEndian(key, v);
  return key;
}

std::optional<std::uint64_t> ParseU64Key(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  return GetBigEndian(key);
}

std::string U64PairKey(std::uint64_t a, std::uint64_t b) {
  std::string key;
  key.reserve(16);
  PutBigEndian(key, a);
  PutBigEndian(key, b);
  return key;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> ParseU64PairKey(std::string_view key) {
  if (key.size() != 16) return std::nullopt;
  return std::pair{GetBigEndian(key.substr(0, 8)), GetBigEndian(key.substr(8))};
}

std::string PrefixUpperBound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(bound.back());
    if (last != 0xff) {
      ++last;
      return bound;
    }
    bound.pop_back();
  }
  return bound;
}

std::string EncodeUser(const User& user) {
  return Writer(kUserV1)
      .Str(user.phone)
      .Signed(user.created_ms)
      .Str(user.name)
      .Str(user.status_text)
      .Str(user.avatar_media_id)
      .Str(user.last_seen_visibility)
      .Signed(user.last_seen_ms)
      .Take();
}

Result<User> DecodeUser(UserId id, std::string_view value) {
  Reader r(value, kUserV1);
  User user;
  user.id = id;
  user.phone = r.Str();
  user.created_ms = r.Signed();
  user.name = r.Str();
  user.status_text = r.Str();
  user.avatar_media_id = r.Str();
  user.last_seen_visibility = r.Str();
  user.last_seen_ms = r.Signed();
  if (!r.Done()) return Corrupt("user");
  return user;
}

std::string EncodeDevice(const Device& device) {
  return Writer(kDeviceV1)
      .Str(device.name)
      .Str(device.platform)
      .Signed(device.created_ms)
      .Signed(device.last_active_ms)
      .Varint(device.token_gen)
      .Take();
}

Result<Device> DecodeDevice(UserId user, DeviceId id, std::string_view value) {
  Reader r(value, kDeviceV1);
  Device device;
  device.user_id = user;
  device.id = id;
  device.name = r.Str();
  device.platform = r.Str();
  device.created_ms = r.Signed();
  device.last_active_ms = r.Signed();
  device.token_gen = r.U32();
  if (!r.Done()) return Corrupt("device");
  return device;
}

std::string EncodeRefreshToken(const RefreshToken& token) {
  return Writer(kRefreshTokenV1)
      .Varint(token.user_id)
      .Varint(token.device_id)
      .Varint(token.token_gen)
      .Signed(token.expires_ms)
      .Bool(token.used)
      .Take();
}

Result<RefreshToken> DecodeRefreshToken(std::string_view hash, std::string_view value) {
  Reader r(value, kRefreshTokenV1);
  RefreshToken token;
  token.hash = std::string(hash);
  token.user_id = r.Varint();
  token.device_id = r.Varint();
  token.token_gen = r.U32();
  token.expires_ms = r.Signed();
  token.used = r.Bool();
  if (!r.Done()) return Corrupt("refresh token");
  return token;
}

std::string EncodeOtp(const OtpCode& code) {
  return Writer(kOtpV1).Str(code.code_hash).Signed(code.expires_ms).Varint(code.attempts).Take();
}

Result<OtpCode> DecodeOtp(std::string_view phone, std::string_view value) {
  Reader r(value, kOtpV1);
  OtpCode code;
  code.phone = std::string(phone);
  code.code_hash = r.Str();
  code.expires_ms = r.Signed();
  code.attempts = r.U32();
  if (!r.Done()) return Corrupt("one-time code");
  return code;
}

Result<UserId> DecodeUserIdValue(std::string_view value) {
  auto id = ParseU64Key(value);
  if (!id) return Corrupt("index");
  return *id;
}

}  // namespace parley::store::rocks
