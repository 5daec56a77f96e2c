// Values of the key directory's column families (see codec.hpp for the
// encoding rules: a leading tag byte, varints, length-prefixed strings, and
// kCorruption for anything truncated, trailing or mistagged).
#include <cstddef>

#include "store/rocksdb/codec.hpp"

namespace parley::store::rocks {
namespace {

// Leading bytes; never reuse one (codec.cpp holds the others).
constexpr std::uint8_t kDeviceKeysV1 = 0xe1;
constexpr std::uint8_t kPrekeyV1 = 0xe2;

constexpr std::uint8_t kHasRegistrationId = 1;

void PutVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutString(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

void PutBigEndianAt(char* out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

class Reader {
 public:
  Reader(std::string_view in, std::uint8_t tag)
      : in_(in), ok_(!in.empty() && static_cast<std::uint8_t>(in[0]) == tag) {}

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
  std::uint32_t U32() {
    const std::uint64_t v = Varint();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<std::uint32_t>(v);
  }
  std::uint8_t Byte() {
    if (!ok_ || pos_ >= in_.size()) {
      ok_ = false;
      return 0;
    }
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::string String() {
    const std::uint64_t n = Varint();
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // Everything was read, and nothing is left over.
  bool Done() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  bool ok_;
  std::size_t pos_ = 1;
};

}  // namespace

KeyBuf<20> PrekeyKey(UserId user, DeviceId device, std::uint32_t prekey_id) {
  KeyBuf<20> key;
  PutBigEndianAt(key.bytes.data(), user, 8);
  PutBigEndianAt(key.bytes.data() + 8, device, 8);
  PutBigEndianAt(key.bytes.data() + 16, prekey_id, 4);
  return key;
}

std::optional<std::uint32_t> ParsePrekeyId(std::string_view key) {
  if (key.size() != 20) return std::nullopt;
  std::uint32_t id = 0;
  for (std::size_t i = 16; i < 20; ++i) id = (id << 8) | static_cast<std::uint8_t>(key[i]);
  return id;
}

std::string EncodeDeviceKeys(const DeviceKeys& keys) {
  std::string out;
  out.reserve(16 + keys.identity_key.size() + keys.signed_prekey.key.size() +
              keys.signed_prekey.signature.size());
  out.push_back(static_cast<char>(kDeviceKeysV1));
  PutString(out, keys.identity_key);
  out.push_back(static_cast<char>(keys.registration_id ? kHasRegistrationId : 0));
  if (keys.registration_id) PutVarint(out, *keys.registration_id);
  PutVarint(out, keys.signed_prekey.id);
  PutString(out, keys.signed_prekey.key);
  PutString(out, keys.signed_prekey.signature);
  PutVarint(out, keys.one_time_prekeys);
  return out;
}

Result<DeviceKeys> DecodeDeviceKeys(UserId user, DeviceId device, std::string_view value) {
  Reader r(value, kDeviceKeysV1);
  DeviceKeys keys{.user = user, .device = device};
  keys.identity_key = r.String();
  const std::uint8_t flags = r.Byte();
  if ((flags & ~kHasRegistrationId) != 0) return Fail(Errc::kCorruption, "bad device keys flags");
  if ((flags & kHasRegistrationId) != 0) keys.registration_id = r.U32();
  keys.signed_prekey.id = r.U32();
  keys.signed_prekey.key = r.String();
  keys.signed_prekey.signature = r.String();
  keys.one_time_prekeys = r.U32();
  if (!r.Done()) return Fail(Errc::kCorruption, "malformed device keys");
  return keys;
}

std::string EncodePrekey(std::string_view key) {
  std::string out;
  out.reserve(2 + key.size());
  out.push_back(static_cast<char>(kPrekeyV1));
  PutString(out, key);
  return out;
}

Result<std::string> DecodePrekey(std::string_view value) {
  Reader r(value, kPrekeyV1);
  std::string key = r.String();
  if (!r.Done()) return Fail(Errc::kCorruption, "malformed one-time prekey");
  return key;
}

}  // namespace parley::store::rocks
