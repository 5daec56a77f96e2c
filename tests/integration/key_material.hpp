// Made-up key material for tests of the key directory: keys.upload checks
// sizes and base64, never that a key is a real curve point.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace parley::test {

inline std::string B64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

// A 33-byte public key (a type byte and 32 bytes) made from a seed.
inline std::string Key(const std::string& seed) {
  std::string k(33, '\x05');
  for (std::size_t i = 1; i < k.size(); ++i) k[i] = seed[i % seed.size()] + static_cast<char>(i);
  return B64(k);
}

// A 64-byte signature made from a seed.
inline std::string Sig(const std::string& seed) {
  return B64(std::string(64, seed.empty() ? 'x' : seed[0]));
}

}  // namespace parley::test
