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
// 16-bit mono PCM WAV of the given length.
std::string MakeWav(int duration_ms);
std::string RandomBytes(std::size_t n, std::uint32_t seed = 1);
std::string Sha256Hex(const std::string& bytes);
// Width and height of an image in memory (libvips), or {0,0}.
std::pair<int, int> ImageSize(const std::string& bytes);

}  // namespace parley::test
