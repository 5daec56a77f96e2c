// Compiled into every target that links parley_sdk_signal (an INTERFACE
// source): makes the libsignal backend the SDK's default, so that a Client
// opened without ClientOptions::crypto encrypts (docs/sdk.md). A source of
// the consumer rather than of the static library, because a linker drops
// an archive member that nothing references, static initializer and all.
#include "parley/signal_crypto.hpp"

namespace {
const bool kRegistered = [] {
  parley::sdk::SetDefaultCrypto([] { return parley::sdk::MakeSignalCrypto(); });
  return true;
}();
}  // namespace
