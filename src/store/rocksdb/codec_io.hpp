// The value encoding's building blocks (codec.hpp describes the format),
// shared by the codec's translation units (codec.cpp, codec_media.cpp).
// Private to src/store/rocksdb/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store::rocks::codec_io {

inline void PutBigEndian(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

inline void PutBigEndianAt(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

inline std::uint64_t GetBigEndian(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}

// Appends to its own string (Take) or to a caller's scratch buffer.
class Writer {
 public:
  explicit Writer(std::uint8_t tag) : out_(&own_) { own_.push_back(static_cast<char>(tag)); }
  Writer(std::uint8_t tag, std::string& out) : out_(&out) {
    out.clear();
    out.push_back(static_cast<char>(tag));
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Writer& Varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
    return *this;
  }
  Writer& Signed(std::int64_t v) {
    return Varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  Writer& Fixed64(std::uint64_t v) {
    PutBigEndian(*out_, v);
    return *this;
  }
  Writer& Byte(std::uint8_t b) {
    out_->push_back(static_cast<char>(b));
    return *this;
  }
  Writer& Str(std::string_view s) {
    Varint(s.size());
    out_->append(s);
    return *this;
  }
  Writer& Bool(bool b) { return Byte(b ? 1 : 0); }
  std::string Take() { return std::move(own_); }

 private:
  std::string own_;
  std::string* out_;
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
  std::uint64_t Fixed64() {
    if (!ok_ || in_.size() - pos_ < 8) {
      ok_ = false;
      return 0;
    }
    auto v = GetBigEndian(in_.substr(pos_, 8));
    pos_ += 8;
    return v;
  }
  std::uint8_t Byte() {
    if (!ok_ || pos_ >= in_.size()) {
      ok_ = false;
      return 0;
    }
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  // Points into the value.
  std::string_view StrView() {
    std::uint64_t n = Varint();
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string Str() { return std::string(StrView()); }
  bool Bool() {
    auto byte = Byte();
    if (byte > 1) ok_ = false;
    return byte == 1;
  }
  Conversation Conv() {
    Conversation conv;
    auto kind = Byte();
    if (kind != static_cast<std::uint8_t>(Conversation::Kind::kUser) &&
        kind != static_cast<std::uint8_t>(Conversation::Kind::kGroup)) {
      ok_ = false;
    }
    conv.kind = static_cast<Conversation::Kind>(kind);
    conv.id = Fixed64();
    return conv;
  }
  void Fail() { ok_ = false; }
  // True when every field read so far was well formed.
  bool ok() const { return ok_; }
  // True when every field was well formed and nothing is left over.
  bool Done() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = false;
};

inline std::unexpected<Error> Corrupt(std::string_view what) {
  return Fail(Errc::kCorruption, "undecodable " + std::string(what) + " record");
}

}  // namespace parley::store::rocks::codec_io
