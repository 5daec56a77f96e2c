// Real media made in the test with the libraries the server uses (libvips
// for images, libavcodec/libavformat for video), plus hostile variants.
#pragma once

#include <cstdint>
#include <string>

namespace parley::test {

std::string MakeJpeg(int width, int height);
std::string MakePng(int width, int height);
// A PNG whose header claims width x height (a decompression bomb when large).
std::string MakeBombPng(std::uint32_t width, std::uint32_t height);
// An MPEG-4 video in an MP4 container: `frames` frames at 10 fps.
std::string MakeMp4(int width, int height, int frames);
// A Matroska video whose container claims claimed_w x claimed_h while its one
// frame (MJPEG) is `jpeg`, placed after `audio_s` seconds of PCM audio so
// that FFmpeg's stream probing (5 s, 5 MB) stops before it and keeps the
// claim: the frame's real size is seen only when it is decoded.
std::string MakeMkvClaiming(int claimed_w, int claimed_h, const std::string& jpeg,
                            int audio_s = 32);
// 16-bit mono PCM WAV of the given length.
std::string MakeWav(int duration_ms);
std::string RandomBytes(std::size_t n, std::uint32_t seed = 1);
std::string Sha256Hex(const std::string& bytes);
// Width and height of an image in memory (libvips), or {0,0}.
std::pair<int, int> ImageSize(const std::string& bytes);

}  // namespace parley::test
