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
  // The codecs module could not be loaded: nothing was learnt about the
  // bytes, which says nothing against them (the reason says why).
  bool unavailable = false;
};

// libvips and FFmpeg live in a module of their own, loaded on the first
// Process call (src/media/codecs/codecs.cpp says why): this file, beside the
// parleyd executable, or the path in $PARLEY_MEDIA_CODECS.
inline constexpr const char* kCodecsModule = "libparley_media_codecs.so";
inline constexpr const char* kCodecsEntry = "parley_media_codecs_process";
// Its type: Process's arguments, and the result to fill in.
using CodecsEntry = void(const std::string& path, std::string_view content_type,
                         std::uint64_t max_pixels, ProcessResult& out);

// Whether the server looks inside this content type at all (images, video
// and audio do; application/octet-stream and other files are stored as is).
bool ShouldProcess(std::string_view content_type);

// Whether the codecs module is where Process will look for it (`where`
// gets the path). For a warning at start; loading waits for the first use.
bool CodecsPresent(std::string* where);

// Reads the file at `path`, claimed to be `content_type`, in this process.
// Thread-safe; blocks (run it on a worker pool). The first call loads the
// codecs module and initialises libvips (its cache off, one thread).
ProcessResult Process(const std::string& path, std::string_view content_type,
                      std::uint64_t max_pixels);

// The same in a worker process (`<this executable> media-process`,
// RunMediaProcess below; one per calling thread, reused for up to 200 jobs),
// so that a crash, a hang or a runaway allocation in libvips or FFmpeg ends
// only the worker: a job whose worker dies or that outlives `timeout_s`
// (the worker is then killed) is a failed job with the reason; the next
// job starts a fresh worker.
ProcessResult ProcessIsolated(const std::string& path, std::string_view content_type,
                              std::uint64_t max_pixels, std::uint32_t timeout_s);

// The worker's side: argv = {"media-process"}; reads jobs on standard input
// and answers on standard output until EOF.
// (Tests of the server's side run a worker of their own that crashes or
// hangs instead, tests/media/fault_worker/, named by `media_worker`.)
int RunMediaProcess(int argc, char** argv);
// The program ProcessIsolated runs (tests: parleyd from a test binary);
// call before the first job. Default: this executable. parleyd sets it from
// `media_worker` when that is set.
void SetMediaProcessProgram(std::string path);

}  // namespace parley::media
