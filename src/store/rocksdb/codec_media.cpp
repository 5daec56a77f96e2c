// Media values (codec.hpp describes the format).
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/codec_io.hpp"

namespace parley::store::rocks {
namespace {

using namespace codec_io;  // NOLINT: the codec's own building blocks

// Leading bytes (codec.cpp holds the others; never reuse one).
constexpr std::uint8_t kMediaV1 = 0xe1;
constexpr std::uint8_t kMediaUsageV1 = 0xf1;

}  // namespace

std::string EncodeMedia(const Media& m) {
  return Writer(kMediaV1)
      .Fixed64(m.owner)
      .Str(m.content_type)
      .Str(m.filename)
      .Varint(m.size)
      .Str(m.sha256)
      .Byte(static_cast<std::uint8_t>(m.status))
      .Str(m.reason)
      .Varint(m.width)
      .Varint(m.height)
      .Signed(m.duration_ms)
      .Bool(m.thumbnail)
      .Signed(m.created_ms)
      .Take();
}

Result<Media> DecodeMedia(MediaId id, std::string_view value) {
  Reader r(value, kMediaV1);
  Media m;
  m.id = id;
  m.owner = r.Fixed64();
  m.content_type = r.Str();
  m.filename = r.Str();
  m.size = r.Varint();
  m.sha256 = r.Str();
  const std::uint8_t status = r.Byte();
  if (status < static_cast<std::uint8_t>(MediaStatus::kUploading) ||
      status > static_cast<std::uint8_t>(MediaStatus::kFailed)) {
    r.Fail();
  }
  m.status = static_cast<MediaStatus>(status);
  m.reason = r.Str();
  m.width = r.U32();
  m.height = r.U32();
  m.duration_ms = r.Signed();
  m.thumbnail = r.Bool();
  m.created_ms = r.Signed();
  if (!r.Done()) return Corrupt("media");
  return m;
}

std::string EncodeMediaUsage(const MediaUsage& u) {
  return Writer(kMediaUsageV1)
      .Varint(u.stored_bytes)
      .Varint(u.uploading)
      .Signed(u.day)
      .Varint(u.day_bytes)
      .Take();
}

Result<MediaUsage> DecodeMediaUsage(std::string_view value) {
  Reader r(value, kMediaUsageV1);
  MediaUsage u;
  u.stored_bytes = r.Varint();
  u.uploading = r.U32();
  u.day = r.Signed();
  u.day_bytes = r.Varint();
  if (!r.Done()) return Corrupt("media usage");
  return u;
}

}  // namespace parley::store::rocks
