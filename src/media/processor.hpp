// What the server learns from a blob's bytes (PROTOCOL.md section 6):
// dimensions and a JPEG thumbnail (longest side 320 px) for images
// (libvips) and videos (FFmpeg's libavformat/libavcodec for the first
// frame, libvips to scale and encode it), the duration of videos and audio,
// and whether the bytes are what the content type claims.
//
// Hostile input: an image's header is read first and one that claims more
// than max_pixels is refused before any pixel is decoded (a decompression
// bomb); libvips' untrusted loaders are blocked; FFmpeg may open only plain
// files in a fixed list of container formats (no playlists that would read
// other files); a video frame larger than max_pixels is not decoded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace parley::media {

struct ProcessResult {
  bool ok = false;          // false: the bytes are not what the type claims
  std::string reason;       // when !ok
  std::uint32_t width = 0;  // 0: unknown / not applicable
  std::uint32_t height = 0;
  std::int64_t duration_ms = -1;  // -1: none
  std::string thumbnail_jpeg;     // empty: none
};

// Whether the server looks inside this content type at all (images, video
// and audio do; application/octet-stream and other files are stored as is).
bool ShouldProcess(std::string_view content_type);

// Once per process, before any Process call (main does it; Process also
// does it itself, once). Keeps libvips' cache off and its threads to one.
void InitMediaLibraries(const char* argv0);

// Reads the file at `path`, claimed to be `content_type`. Thread-safe;
// blocks (run it on a worker pool).
ProcessResult Process(const std::string& path, std::string_view content_type,
                      std::uint64_t max_pixels);

}  // namespace parley::media
