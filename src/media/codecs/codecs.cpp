// The media codecs module (libparley_media_codecs.so): everything that needs
// libvips and FFmpeg, loaded by parleyd with dlopen on the first upload it
// has to look into (src/media/processor.cpp). Those libraries and the ~190
// shared objects they pull in (PDF, SVG and HEVC loaders...) cost about
// 30 MB of resident memory just by being mapped, so a server that never
// processes media does not load them.
#include "media/processor.hpp"

#include <vips/vips.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "common/result.hpp"

namespace parley::media {
namespace {

constexpr int kThumbSide = 320;
constexpr int kThumbQuality = 80;
// Packets read looking for the first video frame before giving up.
constexpr int kMaxPacketsForFrame = 2000;
// The containers FFmpeg may open (demuxer names). Playlists (hls, concat)
// are not among them: they would read other files or URLs.
constexpr const char* kFormatWhitelist =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mp3,ogg,wav,flac,aac,amr,h264,hevc";

std::once_flag g_init;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

ProcessResult Failed(std::string reason) {
  ProcessResult r;
  r.ok = false;
  r.reason = std::move(reason);
  return r;
}

std::string VipsErrorText() {
  std::string text = vips_error_buffer();
  vips_error_clear();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

struct GObjectUnref {
  void operator()(void* p) const {
    if (p != nullptr) g_object_unref(p);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, GObjectUnref>;

// The libvips loader a claimed image type must be read by ("" = any).
std::string_view ExpectedLoader(std::string_view type) {
  if (type == "image/jpeg" || type == "image/jpg") return "jpeg";
  if (type == "image/png") return "png";
  if (type == "image/webp") return "webp";
  if (type == "image/heic" || type == "image/heif" || type == "image/avif") return "heif";
  if (type == "image/gif") return "gif";
  return "";
}

Result<std::string> EncodeJpeg(VipsImage* image) {
  void* buf = nullptr;
  std::size_t len = 0;
  if (vips_jpegsave_buffer(image, &buf, &len, "Q", kThumbQuality, "strip", TRUE, nullptr) != 0) {
    return Fail(Errc::kInvalid, VipsErrorText());
  }
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

ProcessResult ProcessImage(const std::string& path, std::string_view type,
                           std::uint64_t max_pixels) {
  const char* loader = vips_foreign_find_load(path.c_str());
  if (loader == nullptr) {
    vips_error_clear();
    return Failed("not a readable image");
  }
  const std::string_view expected = ExpectedLoader(type);
  if (!expected.empty() && Lower(loader).find(expected) == std::string::npos) {
    return Failed("the bytes are not " + std::string(type) + " (found " + loader + ")");
  }
  // The header only: no pixel is decoded yet.
  VipsPtr header(vips_image_new_from_file(path.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, nullptr));
  if (!header) return Failed("not a readable image: " + VipsErrorText());
  const auto w = static_cast<std::uint64_t>(std::max(0, vips_image_get_width(header.get())));
  const auto h = static_cast<std::uint64_t>(std::max(0, vips_image_get_height(header.get())));
  header.reset();
  if (w == 0 || h == 0) return Failed("image has no pixels");
  if (w * h > max_pixels) {
    return Failed("image claims " + std::to_string(w) + "x" + std::to_string(h) +
                  " pixels, more than the limit of " + std::to_string(max_pixels));
  }
  ProcessResult r;
  r.width = static_cast<std::uint32_t>(w);
  r.height = static_cast<std::uint32_t>(h);
  VipsImage* thumb_raw = nullptr;
  if (vips_thumbnail(path.c_str(), &thumb_raw, kThumbSide, "height", kThumbSide, "size",
                     VIPS_SIZE_DOWN, "fail_on", VIPS_FAIL_ON_ERROR, nullptr) != 0) {
    return Failed("undecodable image: " + VipsErrorText());
  }
  VipsPtr thumb(thumb_raw);
  // Decoding happens here (libvips is lazy): a truncated file fails now.
  auto jpeg = EncodeJpeg(thumb.get());
  if (!jpeg) return Failed("undecodable image: " + jpeg.error().message);
  r.thumbnail_jpeg = std::move(*jpeg);
  r.ok = true;
  return r;
}

struct FormatCloser {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecFreer {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFreer {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};

std::int64_t DurationMs(const AVFormatContext* fmt, const AVStream* stream) {
  if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) return fmt->duration / 1000;
  if (stream != nullptr && stream->duration != AV_NOPTS_VALUE && stream->duration > 0) {
    return av_rescale_q(stream->duration, stream->time_base, AVRational{1, 1000});
  }
  return -1;
}

// The first frame scaled into a kThumbSide box, as JPEG.
Result<std::string> FirstFrameThumbnail(AVFormatContext* fmt, int stream_index,
                                        const AVCodec* codec, std::uint64_t max_pixels) {
  const AVStream* stream = fmt->streams[stream_index];
  std::unique_ptr<AVCodecContext, CodecFreer> ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Fail(Errc::kInternal, "out of memory");
  if (avcodec_parameters_to_context(ctx.get(), stream->codecpar) < 0) {
    return Fail(Errc::kInvalid, "bad codec parameters");
  }
  ctx->thread_count = 1;
  // The container's dimensions are a claim; the bitstream may carry others.
  // FFmpeg refuses to allocate a frame past max_pixels (before decoding).
  ctx->max_pixels = static_cast<std::int64_t>(
      std::min<std::uint64_t>(max_pixels, static_cast<std::uint64_t>(INT64_MAX)));
  if (avcodec_open2(ctx.get(), codec, nullptr) < 0) return Fail(Errc::kInvalid, "cannot decode");
  std::unique_ptr<AVFrame, FrameFreer> frame(av_frame_alloc());
  std::unique_ptr<AVPacket, PacketFreer> packet(av_packet_alloc());
  bool got = false;
  for (int i = 0; i < kMaxPacketsForFrame && !got; ++i) {
    const int rc = av_read_frame(fmt, packet.get());
    if (rc < 0) {
      avcodec_send_packet(ctx.get(), nullptr);  // drain at the end of the file
      got = avcodec_receive_frame(ctx.get(), frame.get()) == 0;
      break;
    }
    if (packet->stream_index == stream_index && avcodec_send_packet(ctx.get(), packet.get()) >= 0) {
      got = avcodec_receive_frame(ctx.get(), frame.get()) == 0;
    }
    av_packet_unref(packet.get());
  }
  if (!got) return Fail(Errc::kInvalid, "no decodable video frame");
  const int w = frame->width;
  const int h = frame->height;
  if (w <= 0 || h <= 0) return Fail(Errc::kInvalid, "empty video frame");
  if (static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h) > max_pixels) {
    return Fail(Errc::kInvalid, "decoded frame is " + std::to_string(w) + "x" + std::to_string(h) +
                                    " pixels, more than the limit of " +
                                    std::to_string(max_pixels));
  }
  const double scale = std::min(1.0, static_cast<double>(kThumbSide) / std::max(w, h));
  const int tw = std::max(1, static_cast<int>(w * scale + 0.5));
  const int th = std::max(1, static_cast<int>(h * scale + 0.5));
  SwsContext* sws = sws_getContext(w, h, static_cast<AVPixelFormat>(frame->format), tw, th,
                                   AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr);
  if (sws == nullptr) return Fail(Errc::kInvalid, "unsupported pixel format");
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(tw) * th * 3);
  std::uint8_t* dst[4] = {rgb.data(), nullptr, nullptr, nullptr};
  int stride[4] = {tw * 3, 0, 0, 0};
  sws_scale(sws, frame->data, frame->linesize, 0, h, dst, stride);
  sws_freeContext(sws);
  VipsPtr image(vips_image_new_from_memory(rgb.data(), rgb.size(), tw, th, 3, VIPS_FORMAT_UCHAR));
  if (!image) return Fail(Errc::kInternal, VipsErrorText());
  return EncodeJpeg(image.get());
}

ProcessResult ProcessAv(const std::string& path, bool video, std::uint64_t max_pixels) {
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) return Failed("out of memory");
  raw->format_whitelist = av_strdup(kFormatWhitelist);
  raw->protocol_whitelist = av_strdup("file");
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0) {
    return Failed(video ? "not a readable video" : "not a readable audio file");
  }
  std::unique_ptr<AVFormatContext, FormatCloser> fmt(raw);
  if (avformat_find_stream_info(fmt.get(), nullptr) < 0) {
    return Failed(video ? "not a readable video" : "not a readable audio file");
  }
  const AVCodec* codec = nullptr;
  const int index = av_find_best_stream(fmt.get(), video ? AVMEDIA_TYPE_VIDEO : AVMEDIA_TYPE_AUDIO,
                                        -1, -1, &codec, 0);
  if (index < 0) return Failed(video ? "no video stream" : "no audio stream");
  const AVStream* stream = fmt->streams[index];
  ProcessResult r;
  r.duration_ms = DurationMs(fmt.get(), stream);
  if (!video) {
    r.ok = true;
    return r;
  }
  const auto w = static_cast<std::uint64_t>(std::max(0, stream->codecpar->width));
  const auto h = static_cast<std::uint64_t>(std::max(0, stream->codecpar->height));
  if (w * h > max_pixels) {
    return Failed("video claims " + std::to_string(w) + "x" + std::to_string(h) +
                  " pixels, more than the limit of " + std::to_string(max_pixels));
  }
  r.width = static_cast<std::uint32_t>(w);
  r.height = static_cast<std::uint32_t>(h);
  if (codec == nullptr) return Failed("no decoder for this video");
  auto thumb = FirstFrameThumbnail(fmt.get(), index, codec, max_pixels);
  if (!thumb) return Failed("undecodable video: " + thumb.error().message);
  r.thumbnail_jpeg = std::move(*thumb);
  r.ok = true;
  return r;
}

void InitCodecs() {
  std::call_once(g_init, [] {
    if (VIPS_INIT("parleyd") != 0) vips_error_clear();
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_concurrency_set(1);
    vips_block_untrusted_set(TRUE);
    av_log_set_level(AV_LOG_QUIET);
  });
}

ProcessResult ProcessWithCodecs(const std::string& path, std::string_view content_type,
                                std::uint64_t max_pixels) {
  InitCodecs();
  const std::string type = Lower(content_type);
  ProcessResult r;
  if (type.starts_with("image/")) {
    r = ProcessImage(path, type, max_pixels);
  } else if (type.starts_with("video/")) {
    r = ProcessAv(path, true, max_pixels);
  } else if (type.starts_with("audio/")) {
    r = ProcessAv(path, false, max_pixels);
  } else {
    r.ok = true;
  }
  vips_thread_shutdown();  // frees this thread's libvips buffers
  return r;
}

}  // namespace
}  // namespace parley::media

// The module's one entry point (kCodecsEntry in processor.hpp). Same
// compiler and standard library as parleyd: C++ types cross it.
extern "C" __attribute__((visibility("default"))) void parley_media_codecs_process(
    const std::string& path, std::string_view content_type, std::uint64_t max_pixels,
    parley::media::ProcessResult& out) {
  out = parley::media::ProcessWithCodecs(path, content_type, max_pixels);
}

static_assert(std::is_same_v<decltype(parley_media_codecs_process), parley::media::CodecsEntry>,
              "the module's entry point must match what parleyd looks up");
