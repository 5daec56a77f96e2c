// Media values (codec.hpp describes the format).
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/codec_io.hpp"

namespace parley::store::rocks {
namespace {

using namespace codec_io;  // NOLINT: the codec's own building blocks

// Leading bytes (codec.cpp holds the others; never reuse one).
constexpr std::uint8_t kMediaV1 = 0xe1;

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

}  // namespace parley::store::rocks
