// Internals of the libsignal backend: RAII for libsignal's reference-counted
// objects and buffers, the OpenSSL crypto provider, the key-value stores.
#pragma once

#include <signal_protocol.h>

#include <string>
#include <string_view>

#include "parley/crypto.hpp"

namespace parley::sdk::libsignal {

// Owns one reference to a libsignal object (session_builder and the other
// non-reference-counted types have their own Free below).
template <class T>
class Ref {
 public:
  Ref() = default;
  ~Ref() { reset(); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  T** out() {
    reset();
    return &p_;
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  void reset() {
    if (p_ != nullptr) signal_type_unref(reinterpret_cast<signal_type_base*>(p_));
    p_ = nullptr;
  }

 private:
  T* p_ = nullptr;
};

// Owns a signal_buffer (zeroed on free: buffers carry key material).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(signal_buffer* b) : b_(b) {}
  ~Buffer() {
    if (b_ != nullptr) signal_buffer_bzero_free(b_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  signal_buffer** out() { return &b_; }
  std::string str() const {
    return b_ == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(signal_buffer_const_data(b_)),
                                       signal_buffer_len(b_));
  }

 private:
  signal_buffer* b_ = nullptr;
};

// A libsignal status as an Error (nothing when it is a success).
Status Check(int rc, std::string_view what);

// The OpenSSL-backed provider (random, HMAC-SHA256, SHA-512, AES-CBC/CTR).
const signal_crypto_provider& OpenSslProvider();

// The stores of a signal_protocol_store_context, on a KeyValueStore under
// the "signal" namespace. `state` must outlive the store context.
struct StoreState {
  KeyValueStore* kv = nullptr;
};
inline constexpr std::string_view kNs = "signal";
void InstallStores(signal_protocol_store_context* ctx, StoreState* state);

// The KV key of an address: "<name>:<device id>".
std::string AddressKey(const signal_protocol_address* address);

}  // namespace parley::sdk::libsignal
