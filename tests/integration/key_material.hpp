// Made-up key material for tests of the key directory: keys.upload checks
// sizes and base64, never that a key is a real curve point.
#pragma once

#include <cstddef>
#include <string>

#include "support/base64.hpp"

namespace parley::test {

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
