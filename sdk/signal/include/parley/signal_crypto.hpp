// The Signal Protocol backend of the crypto seam (crypto.hpp), on
// libsignal-protocol-c (Debian's libsignal-protocol-c-dev) with OpenSSL as
// its crypto provider: X3DH and the Double Ratchet per device pair, Sender
// Keys per group, safety numbers. Its own target, parley_sdk_signal, so that
// the SDK itself does not depend on libsignal.
//
// State lives in the store's key-value table (namespace "signal"): the
// identity key pair and registration id (made on first Open), signed and
// one-time prekeys (private halves), sessions, remote identities (trust on
// first use; ForgetDevice forgets one), sender keys.
#pragma once

#include <chrono>
#include <memory>

#include "parley/crypto.hpp"

namespace parley::sdk {

struct SignalOptions {
  // One-time prekeys: a new upload tops the server up to `prekey_target`
  // when fewer than `prekey_low` are left.
  int prekey_target = 100;
  int prekey_low = 20;
  // A new signed prekey replaces the current one after this long.
  std::chrono::hours signed_prekey_lifetime{24 * 7};
};

std::unique_ptr<Crypto> MakeSignalCrypto(SignalOptions options = {});

}  // namespace parley::sdk
