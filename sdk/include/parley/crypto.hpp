// The crypto seam: everything the SDK needs from an end-to-end encryption
// backend, and nothing of the wire.
//
// Design note. The SDK owns the protocol: the e2ee envelope
// ({"sender_device","ciphertexts":[{user,device,type,data}]}, PROTOCOL.md
// "End-to-end encryption"), fetching prekey bundles (keys.bundle), retrying
// a send refused with stale_devices, uploading keys (keys.upload,
// keys.count), and keeping the backend's state in the local store. A backend
// owns only the cryptography, synchronously and locally: pairwise sessions
// per device (X3DH + Double Ratchet: libsignal's session_builder and
// session_cipher), Sender Keys per group (group_session_builder,
// group_cipher), identity keys and safety numbers (fingerprint). Binary
// values cross this interface as raw bytes in std::string; the SDK does the
// base64.
//
// Devices are named by DeviceAddress (string user and device ids, 64-bit
// on the wire). libsignal addresses are a name and an int32 device id, so
// its backend names a device "<user>.<device>" with device id 1; the seam
// does not leak that choice.
//
// Threading: the Client calls its backend only from its own I/O thread,
// one call at a time; a backend needs no locking of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "parley/types.hpp"

namespace parley::sdk {

// Durable key-value state for a backend (sessions, prekeys, identities,
// sender keys), kept in the local store's `kv` table under a namespace the
// backend chooses. Writes are durable when the call returns.
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;
  virtual Result<std::optional<std::string>> Get(std::string_view ns, std::string_view key) = 0;
  virtual Status Put(std::string_view ns, std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view ns, std::string_view key) = 0;
  // Every key of the namespace that starts with `prefix`, in key order.
  virtual Result<std::vector<std::string>> Keys(std::string_view ns, std::string_view prefix) = 0;
};

// keys.upload, in bytes: the public halves only. Any subset may be present.
struct SignedPreKey {
  std::uint32_t id = 0;
  std::string key;
  std::string signature;
};
struct OneTimePreKey {
  std::uint32_t id = 0;
  std::string key;
};
struct KeyUpload {
  std::optional<std::string> identity_key;
  std::optional<std::uint32_t> registration_id;
  std::optional<SignedPreKey> signed_prekey;
  std::vector<OneTimePreKey> one_time_prekeys;
  bool empty() const {
    return !identity_key && !registration_id && !signed_prekey && one_time_prekeys.empty();
  }
};

// One device's entry of a keys.bundle answer.
struct PreKeyBundle {
  DeviceAddress device;
  std::optional<std::uint32_t> registration_id;
  std::string identity_key;
  SignedPreKey signed_prekey;
  std::optional<OneTimePreKey> one_time_prekey;  // absent when the server ran out
};

// One entry of an e2ee body's "ciphertexts": for one recipient device.
struct Ciphertext {
  enum class Type { kPreKey, kMessage };  // "prekey": the first messages of a session
  DeviceAddress device;
  Type type = Type::kMessage;
  std::string data;
};

// A safety number for comparing out of band (libsignal's displayable and
// scannable fingerprints).
struct Fingerprint {
  std::string displayable;  // 60 digits
  std::string scannable;    // bytes, for a QR code
};

class Crypto {
 public:
  virtual ~Crypto() = default;

  // "plaintext", "signal", ...: recorded in the store, so that a profile is
  // not opened later with a backend that cannot read its state.
  virtual std::string Name() const = 0;

  // False: the SDK sends messages in the clear with their own kind ("text",
  // ...) and calls nothing below but Open and Fingerprint. True: every message
  // goes out as kind "e2ee" (1:1) or under the group's sender key.
  virtual bool Encrypts() const = 0;

  // Called once the device's account is known (after Verify, or when a
  // Client opens a logged-in profile), before any other call. `kv` outlives
  // the backend.
  virtual Status Open(const DeviceAddress& self, KeyValueStore& kv) = 0;

  // What to publish with keys.upload now. `one_time_prekeys_left` is the
  // server's count (keys.count), or nullopt before the first upload. The
  // backend stores the private halves before returning; an empty KeyUpload
  // means there is nothing to do. Uploading the same keys again is harmless.
  virtual Result<KeyUpload> KeysToUpload(std::optional<int> one_time_prekeys_left) = 0;

  // ---- Pairwise sessions (1:1 messages, sender key distribution) ----------

  virtual bool HasSession(const DeviceAddress& peer) = 0;
  // X3DH from a prekey bundle: the next Encrypt for that device produces a
  // kPreKey ciphertext. Fails with "crypto" on a bad signature, or
  // "untrusted_identity" when the device's identity key changed without a
  // keys_changed event having been handled (ForgetDevice).
  virtual Status StartSession(const PreKeyBundle& bundle) = 0;
  // One ciphertext per device, in order. Every device must have a session
  // (the SDK checks HasSession and fetches bundles first).
  virtual Result<std::vector<Ciphertext>> Encrypt(std::span<const DeviceAddress> devices,
                                                  std::string_view plaintext) = 0;
  // Decrypts the ciphertext `sender` made for this device. A kPreKey one
  // creates the session (and consumes the one-time prekey it names).
  virtual Result<std::string> Decrypt(const DeviceAddress& sender,
                                      const Ciphertext& ciphertext) = 0;
  // Drops the session (and the sender keys received from that device): the
  // device was removed, or its identity key changed.
  virtual Status ForgetDevice(const DeviceAddress& peer) = 0;

  // ---- Sender Keys (group messages) ---------------------------------------

  // This device's sender key distribution message for the group (created on
  // first use). The SDK sends it to each member device pairwise, as a
  // "sender_key" message, before the first group message to that device.
  virtual Result<std::string> OwnSenderKey(const std::string& group_id) = 0;
  // A distribution message received (pairwise decrypted) from `sender`.
  virtual Status ProcessSenderKey(const std::string& group_id, const DeviceAddress& sender,
                                  std::string_view distribution) = 0;
  virtual Result<std::string> GroupEncrypt(const std::string& group_id,
                                           std::string_view plaintext) = 0;
  // Fails with "no_sender_key" when no sender key of `sender` for the group
  // (or not the one the message uses) was processed: the SDK keeps such a
  // message and decrypts it once the distribution arrives.
  virtual Result<std::string> GroupDecrypt(const std::string& group_id, const DeviceAddress& sender,
                                           std::string_view ciphertext) = 0;
  // Forgets this device's sender key for the group (a member left or was
  // removed): the next OwnSenderKey makes a new one.
  virtual Status RotateSenderKey(const std::string& group_id) = 0;

  // ---- Identity -------------------------------------------------------------

  // This device's public identity key (as keys.upload sends it).
  virtual Result<std::string> IdentityKey() = 0;
  // The safety number between this user and `remote_user`: from the
  // identity keys of this user's other devices (this device's own is added)
  // and of the remote user's devices (from keys.bundle). Both sides compute
  // the same number.
  virtual Result<Fingerprint> ComputeFingerprint(
      const std::string& local_user, std::span<const std::string> local_identity_keys,
      const std::string& remote_user, std::span<const std::string> remote_identity_keys) = 0;
};

// No encryption: messages travel as kind "text" (and the other plain kinds)
// and the server can read them. The default backend until the server serves
// the key directory (keys.upload, keys.bundle).
class PlaintextCrypto final : public Crypto {
 public:
  std::string Name() const override { return "plaintext"; }
  bool Encrypts() const override { return false; }
  Status Open(const DeviceAddress&, KeyValueStore&) override { return {}; }
  Result<KeyUpload> KeysToUpload(std::optional<int>) override { return KeyUpload{}; }
  bool HasSession(const DeviceAddress&) override { return false; }
  Status StartSession(const PreKeyBundle&) override;
  Result<std::vector<Ciphertext>> Encrypt(std::span<const DeviceAddress>,
                                          std::string_view) override;
  Result<std::string> Decrypt(const DeviceAddress&, const Ciphertext&) override;
  Status ForgetDevice(const DeviceAddress&) override { return {}; }
  Result<std::string> OwnSenderKey(const std::string&) override;
  Status ProcessSenderKey(const std::string&, const DeviceAddress&, std::string_view) override;
  Result<std::string> GroupEncrypt(const std::string&, std::string_view) override;
  Result<std::string> GroupDecrypt(const std::string&, const DeviceAddress&,
                                   std::string_view) override;
  Status RotateSenderKey(const std::string&) override { return {}; }
  Result<std::string> IdentityKey() override;
  Result<Fingerprint> ComputeFingerprint(const std::string&, std::span<const std::string>,
                                         const std::string&, std::span<const std::string>) override;
};

// The backend a Client gets when ClientOptions::crypto is null. A backend
// library registers itself: linking parley_sdk_signal makes libsignal the
// default (encryption on), and without any backend it is PlaintextCrypto.
using CryptoFactory = std::unique_ptr<Crypto> (*)();
void SetDefaultCrypto(CryptoFactory factory);
std::unique_ptr<Crypto> MakeDefaultCrypto();

}  // namespace parley::sdk
