#include "media/fixtures.hpp"

#include <sodium.h>
#include <unistd.h>
#include <vips/vips.h>
#include <zlib.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
}

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <mutex>

namespace parley::test {
namespace {

void InitVips() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (VIPS_INIT("parley-tests") != 0) vips_error_clear();
  });
}

VipsImage* Gradient(int width, int height) {
  InitVips();
  VipsImage* xyz = nullptr;
  if (vips_xyz(&xyz, width, height, nullptr) != 0) throw std::runtime_error("vips_xyz");
  VipsImage* cast = nullptr;
  vips_cast_uchar(xyz, &cast, nullptr);
  g_object_unref(xyz);
  // Two bands (x, y) plus one more for RGB.
  VipsImage* band = nullptr;
  vips_extract_band(cast, &band, 0, nullptr);
  VipsImage* rgb = nullptr;
  VipsImage* in[2] = {cast, band};
  vips_bandjoin(in, &rgb, 2, nullptr);
  g_object_unref(cast);
  g_object_unref(band);
  return rgb;
}

std::string Saved(VipsImage* image, bool jpeg) {
  void* buf = nullptr;
  std::size_t len = 0;
  const int rc = jpeg ? vips_jpegsave_buffer(image, &buf, &len, nullptr)
                      : vips_pngsave_buffer(image, &buf, &len, nullptr);
  g_object_unref(image);
  if (rc != 0) throw std::runtime_error("vips save");
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

void PutU32(std::string& s, std::size_t at, std::uint32_t v) {
  s[at] = static_cast<char>(v >> 24);
  s[at + 1] = static_cast<char>(v >> 16);
  s[at + 2] = static_cast<char>(v >> 8);
  s[at + 3] = static_cast<char>(v);
}

}  // namespace

std::string MakeJpeg(int width, int height) { return Saved(Gradient(width, height), true); }
std::string MakePng(int width, int height) { return Saved(Gradient(width, height), false); }

std::string MakeBombPng(std::uint32_t width, std::uint32_t height) {
  std::string png = MakePng(8, 8);
  // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), ...
  PutU32(png, 16, width);
  PutU32(png, 20, height);
  const auto crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);
  PutU32(png, 29, static_cast<std::uint32_t>(crc));
  return png;
}

std::string MakeMp4(int width, int height, int frames) {
  char path[] = "/tmp/parley-video-XXXXXX.mp4";
  const int fd = mkstemps(path, 4);
  if (fd < 0) throw std::runtime_error("mkstemps");
  close(fd);
  AVFormatContext* out = nullptr;
  avformat_alloc_output_context2(&out, nullptr, "mp4", path);
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  if (out == nullptr || codec == nullptr) throw std::runtime_error("no mp4 muxer or mpeg4 encoder");
  AVStream* stream = avformat_new_stream(out, nullptr);
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->width = width;
  ctx->height = height;
  ctx->time_base = AVRational{1, 10};
  ctx->framerate = AVRational{10, 1};
  ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  ctx->gop_size = 10;
  if (out->oformat->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (avcodec_open2(ctx, codec, nullptr) < 0) throw std::runtime_error("avcodec_open2");
  avcodec_parameters_from_context(stream->codecpar, ctx);
  stream->time_base = ctx->time_base;
  if (avio_open(&out->pb, path, AVIO_FLAG_WRITE) < 0) throw std::runtime_error("avio_open");
  if (avformat_write_header(out, nullptr) < 0) throw std::runtime_error("write_header");
  AVFrame* frame = av_frame_alloc();
  frame->format = ctx->pix_fmt;
  frame->width = width;
  frame->height = height;
  av_frame_get_buffer(frame, 0);
  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(ctx, pkt) == 0) {
      av_packet_rescale_ts(pkt, ctx->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      av_interleaved_write_frame(out, pkt);
    }
  };
  for (int i = 0; i < frames; ++i) {
    av_frame_make_writable(frame);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x)
        frame->data[0][y * frame->linesize[0] + x] = (x + y + i * 3) & 0xff;
    }
    for (int y = 0; y < height / 2; ++y) {
      for (int x = 0; x < width / 2; ++x) {
        frame->data[1][y * frame->linesize[1] + x] = 128;
        frame->data[2][y * frame->linesize[2] + x] = (64 + i) & 0xff;
      }
    }
    frame->pts = i;
    avcodec_send_frame(ctx, frame);
    drain();
  }
  avcodec_send_frame(ctx, nullptr);
  drain();
  av_write_trailer(out);
  avio_closep(&out->pb);
  av_packet_free(&pkt);
  av_frame_free(&frame);
  avcodec_free_context(&ctx);
  avformat_free_context(out);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(path);
  return ss.str();
}

std::string MakeMkvClaiming(int claimed_w, int claimed_h, const std::string& jpeg, int audio_s) {
  char path[] = "/tmp/parley-claim-XXXXXX.mkv";
  const int fd = mkstemps(path, 4);
  if (fd < 0) throw std::runtime_error("mkstemps");
  close(fd);
  AVFormatContext* out = nullptr;
  avformat_alloc_output_context2(&out, nullptr, "matroska", path);
  if (out == nullptr) throw std::runtime_error("no matroska muxer");
  constexpr int kRate = 44100;
  constexpr int kChannels = 2;
  AVStream* audio = avformat_new_stream(out, nullptr);
  audio->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
  audio->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
  audio->codecpar->sample_rate = kRate;
  av_channel_layout_default(&audio->codecpar->ch_layout, kChannels);
  audio->codecpar->bits_per_coded_sample = 16;
  audio->codecpar->block_align = 2 * kChannels;
  audio->time_base = AVRational{1, kRate};
  AVStream* video = avformat_new_stream(out, nullptr);
  video->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  video->codecpar->codec_id = AV_CODEC_ID_MJPEG;
  video->codecpar->width = claimed_w;  // the claim
  video->codecpar->height = claimed_h;
  video->time_base = AVRational{1, 10};
  if (avio_open(&out->pb, path, AVIO_FLAG_WRITE) < 0) throw std::runtime_error("avio_open");
  if (avformat_write_header(out, nullptr) < 0) throw std::runtime_error("write_header");
  AVPacket* pkt = av_packet_alloc();
  const std::string second(static_cast<std::size_t>(kRate) * 2 * kChannels, '\x11');
  for (int s = 0; s < audio_s; ++s) {  // one packet a second
    av_new_packet(pkt, static_cast<int>(second.size()));
    std::copy(second.begin(), second.end(), pkt->data);
    pkt->stream_index = audio->index;
    pkt->pts = pkt->dts = av_rescale_q(s, AVRational{1, 1}, audio->time_base);
    pkt->duration = av_rescale_q(1, AVRational{1, 1}, audio->time_base);
    pkt->flags |= AV_PKT_FLAG_KEY;
    av_interleaved_write_frame(out, pkt);
  }
  av_new_packet(pkt, static_cast<int>(jpeg.size()));
  std::copy(jpeg.begin(), jpeg.end(), pkt->data);
  pkt->stream_index = video->index;
  pkt->pts = pkt->dts = av_rescale_q(audio_s, AVRational{1, 1}, video->time_base);
  pkt->duration = 1;
  pkt->flags |= AV_PKT_FLAG_KEY;
  av_interleaved_write_frame(out, pkt);
  av_write_trailer(out);
  avio_closep(&out->pb);
  av_packet_free(&pkt);
  avformat_free_context(out);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(path);
  return ss.str();
}

std::string MakeWav(int duration_ms) {
  const std::uint32_t rate = 8000;
  const std::uint32_t samples = rate * static_cast<std::uint32_t>(duration_ms) / 1000;
  const std::uint32_t data_bytes = samples * 2;
  std::string w;
  auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) w.push_back(static_cast<char>(v >> (8 * i)));
  };
  auto u16 = [&](std::uint16_t v) {
    w.push_back(static_cast<char>(v));
    w.push_back(static_cast<char>(v >> 8));
  };
  w += "RIFF";
  u32(36 + data_bytes);
  w += "WAVEfmt ";
  u32(16);
  u16(1);  // PCM
  u16(1);  // mono
  u32(rate);
  u32(rate * 2);
  u16(2);
  u16(16);
  w += "data";
  u32(data_bytes);
  for (std::uint32_t i = 0; i < samples; ++i) u16(static_cast<std::uint16_t>((i * 37) & 0x3fff));
  return w;
}

std::string RandomBytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : out) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 15]);
  }
  return hex;
}

std::pair<int, int> ImageSize(const std::string& bytes) {
  InitVips();
  VipsImage* image = vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr);
  if (image == nullptr) {
    vips_error_clear();
    return {0, 0};
  }
  std::pair<int, int> size{vips_image_get_width(image), vips_image_get_height(image)};
  g_object_unref(image);
  return size;
}

}  // namespace parley::test
