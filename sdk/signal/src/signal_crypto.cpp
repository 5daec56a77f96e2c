// SignalCrypto: the crypto seam on libsignal-protocol-c (signal_crypto.hpp).
//
// Devices: libsignal names a remote party by (name, int32 device id); Parley
// device ids are 64-bit, so the name is "<user>.<device>" and the device id
// is always 1. Sender keys are named by (group id, that address).
#include "parley/signal_crypto.hpp"

#include <fingerprint.h>
#include <group_cipher.h>
#include <group_session_builder.h>
#include <key_helper.h>
#include <protocol.h>
#include <sender_key_record.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>

#include <algorithm>
#include <charconv>

#include "internal.hpp"

namespace parley::sdk {

namespace {

using libsignal::Buffer;
using libsignal::Check;
using libsignal::kNs;
using libsignal::Ref;

constexpr int kFingerprintIterations = 5200;
constexpr int kScannableVersion = 1;
constexpr std::uint32_t kMaxPreKeyId = 0xFFFFFE;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string Serialized(const ec_public_key* key) {
  Buffer b;
  if (ec_public_key_serialize(b.out(), key) != 0) return {};
  return b.str();
}

std::string BufferString(const signal_buffer* b) {
  return b == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(signal_buffer_const_data(b)),
                                    signal_buffer_len(b));
}

// A libsignal address that owns its name.
struct Address {
  explicit Address(const DeviceAddress& d) : name(d.user + "." + d.device) {
    raw = {name.c_str(), name.size(), 1};
  }
  Address(const Address&) = delete;
  Address& operator=(const Address&) = delete;
  std::string name;
  signal_protocol_address raw{};
};

struct SenderKeyName {
  SenderKeyName(const std::string& group, const DeviceAddress& d) : group_id(group), address(d) {
    raw = {group_id.c_str(), group_id.size(), address.raw};
  }
  std::string group_id;
  Address address;
  signal_protocol_sender_key_name raw{};
};

class SignalCrypto final : public Crypto {
 public:
  explicit SignalCrypto(SignalOptions options) : options_(options) {}
  ~SignalCrypto() override { Close(); }

  std::string Name() const override { return "signal"; }
  bool Encrypts() const override { return true; }

  Status Open(const DeviceAddress& self, KeyValueStore& kv) override {
    Close();
    self_ = self;
    state_.kv = &kv;
    if (signal_context_create(&ctx_, this) != 0) return Fail("crypto", "signal_context_create");
    signal_context_set_crypto_provider(ctx_, &libsignal::OpenSslProvider());
    if (signal_protocol_store_context_create(&store_, ctx_) != 0) {
      return Fail("crypto", "signal_protocol_store_context_create");
    }
    libsignal::InstallStores(store_, &state_);
    auto known = kv.Get(kNs, "identity.public");
    if (!known) return std::unexpected(known.error());
    if (*known) return {};
    // First use of this device: its identity, for good.
    Ref<ratchet_identity_key_pair> pair;
    if (auto s = Check(signal_protocol_key_helper_generate_identity_key_pair(pair.out(), ctx_),
                       "generating the identity key");
        !s) {
      return s;
    }
    Buffer priv;
    ec_private_key_serialize(priv.out(), ratchet_identity_key_pair_get_private(pair.get()));
    std::uint32_t registration_id = 0;
    if (auto s =
            Check(signal_protocol_key_helper_generate_registration_id(&registration_id, 0, ctx_),
                  "generating the registration id");
        !s) {
      return s;
    }
    if (auto s = kv.Put(kNs, "identity.private", priv.str()); !s) return s;
    if (auto s = kv.Put(kNs, "registration_id", std::to_string(registration_id)); !s) return s;
    return kv.Put(kNs, "identity.public",
                  Serialized(ratchet_identity_key_pair_get_public(pair.get())));
  }

  Result<std::string> IdentityKey() override {
    auto v = Kv().Get(kNs, "identity.public");
    if (!v) return std::unexpected(v.error());
    if (!*v) return Fail("crypto", "no identity key (Open first)");
    return **v;
  }

  Result<KeyUpload> KeysToUpload(std::optional<int> left) override {
    KeyUpload up;
    auto identity = IdentityKey();
    if (!identity) return std::unexpected(identity.error());
    up.identity_key = *identity;
    up.registration_id = RegistrationId();
    auto spk = CurrentSignedPreKey();
    if (!spk) return std::unexpected(spk.error());
    up.signed_prekey = *spk;
    const int have = left.value_or(0);
    if (!left || have < options_.prekey_low) {
      auto fresh = NewPreKeys(options_.prekey_target - have);
      if (!fresh) return std::unexpected(fresh.error());
      up.one_time_prekeys = std::move(*fresh);
    }
    return up;
  }

  bool HasSession(const DeviceAddress& peer) override {
    Address a(peer);
    return signal_protocol_session_contains_session(store_, &a.raw) == 1;
  }

  Status StartSession(const PreKeyBundle& bundle) override {
    Ref<ec_public_key> identity, signed_key, one_time;
    if (auto s = Decode(bundle.identity_key, identity, "identity key"); !s) return s;
    if (auto s = Decode(bundle.signed_prekey.key, signed_key, "signed prekey"); !s) return s;
    if (bundle.one_time_prekey) {
      if (auto s = Decode(bundle.one_time_prekey->key, one_time, "one-time prekey"); !s) return s;
    }
    Ref<session_pre_key_bundle> b;
    const auto& sig = bundle.signed_prekey.signature;
    if (auto s = Check(
            session_pre_key_bundle_create(b.out(), bundle.registration_id.value_or(0), 1,
                                          bundle.one_time_prekey ? bundle.one_time_prekey->id : 0,
                                          one_time.get(), bundle.signed_prekey.id, signed_key.get(),
                                          Bytes(sig), sig.size(), identity.get()),
            "reading the prekey bundle");
        !s) {
      return s;
    }
    Address a(bundle.device);
    session_builder* builder = nullptr;
    if (auto s = Check(session_builder_create(&builder, store_, &a.raw, ctx_), "session builder");
        !s) {
      return s;
    }
    const int rc = session_builder_process_pre_key_bundle(builder, b.get());
    session_builder_free(builder);
    return Check(rc, "starting a session (X3DH)");
  }

  Result<std::vector<Ciphertext>> Encrypt(std::span<const DeviceAddress> devices,
                                          std::string_view plaintext) override {
    std::vector<Ciphertext> out;
    for (const auto& d : devices) {
      if (!HasSession(d)) return Fail("no_session", "no session with " + d.user + "/" + d.device);
      Address a(d);
      session_cipher* cipher = nullptr;
      if (auto s = Check(session_cipher_create(&cipher, store_, &a.raw, ctx_), "session cipher");
          !s) {
        return std::unexpected(s.error());
      }
      Ref<ciphertext_message> msg;
      const int rc = session_cipher_encrypt(cipher, Bytes(plaintext), plaintext.size(), msg.out());
      session_cipher_free(cipher);
      if (auto s = Check(rc, "encrypting"); !s) return std::unexpected(s.error());
      out.push_back({d,
                     ciphertext_message_get_type(msg.get()) == CIPHERTEXT_PREKEY_TYPE
                         ? Ciphertext::Type::kPreKey
                         : Ciphertext::Type::kMessage,
                     BufferString(ciphertext_message_get_serialized(msg.get()))});
    }
    return out;
  }

  Result<std::string> Decrypt(const DeviceAddress& sender, const Ciphertext& c) override {
    Address a(sender);
    session_cipher* cipher = nullptr;
    if (auto s = Check(session_cipher_create(&cipher, store_, &a.raw, ctx_), "session cipher");
        !s) {
      return std::unexpected(s.error());
    }
    Buffer plain;
    int rc = 0;
    if (c.type == Ciphertext::Type::kPreKey) {
      Ref<pre_key_signal_message> m;
      rc = pre_key_signal_message_deserialize(m.out(), Bytes(c.data), c.data.size(), ctx_);
      if (rc == 0)
        rc = session_cipher_decrypt_pre_key_signal_message(cipher, m.get(), nullptr, plain.out());
    } else {
      Ref<signal_message> m;
      rc = signal_message_deserialize(m.out(), Bytes(c.data), c.data.size(), ctx_);
      if (rc == 0)
        rc = session_cipher_decrypt_signal_message(cipher, m.get(), nullptr, plain.out());
    }
    session_cipher_free(cipher);
    if (auto s = Check(rc, "decrypting"); !s) return std::unexpected(s.error());
    return plain.str();
  }

  Status ForgetDevice(const DeviceAddress& peer) override {
    Address a(peer);
    if (signal_protocol_session_delete_session(store_, &a.raw) < 0) {
      return Fail("crypto", "deleting a session");
    }
    const std::string key = libsignal::AddressKey(&a.raw);
    if (auto s = Kv().Delete(kNs, "identity:" + key); !s) return s;
    auto sender_keys = Kv().Keys(kNs, "sender_key:" + key + ":");
    if (!sender_keys) return std::unexpected(sender_keys.error());
    for (const auto& k : *sender_keys) {
      if (auto s = Kv().Delete(kNs, k); !s) return s;
    }
    return {};
  }

  Result<std::string> OwnSenderKey(const std::string& group_id) override {
    SenderKeyName name(group_id, self_);
    group_session_builder* builder = nullptr;
    if (auto s = Check(group_session_builder_create(&builder, store_, ctx_), "group builder"); !s) {
      return std::unexpected(s.error());
    }
    Ref<sender_key_distribution_message> dist;
    const int rc = group_session_builder_create_session(builder, dist.out(), &name.raw);
    group_session_builder_free(builder);
    if (auto s = Check(rc, "creating the sender key"); !s) return std::unexpected(s.error());
    return BufferString(
        ciphertext_message_get_serialized(reinterpret_cast<ciphertext_message*>(dist.get())));
  }

  Status ProcessSenderKey(const std::string& group_id, const DeviceAddress& sender,
                          std::string_view distribution) override {
    Ref<sender_key_distribution_message> dist;
    if (auto s = Check(sender_key_distribution_message_deserialize(dist.out(), Bytes(distribution),
                                                                   distribution.size(), ctx_),
                       "reading a sender key");
        !s) {
      return s;
    }
    SenderKeyName name(group_id, sender);
    group_session_builder* builder = nullptr;
    if (auto s = Check(group_session_builder_create(&builder, store_, ctx_), "group builder"); !s) {
      return s;
    }
    const int rc = group_session_builder_process_session(builder, &name.raw, dist.get());
    group_session_builder_free(builder);
    return Check(rc, "storing a sender key");
  }

  Result<std::string> GroupEncrypt(const std::string& group_id,
                                   std::string_view plaintext) override {
    SenderKeyName name(group_id, self_);
    group_cipher* cipher = nullptr;
    if (auto s = Check(group_cipher_create(&cipher, store_, &name.raw, ctx_), "group cipher"); !s) {
      return std::unexpected(s.error());
    }
    Ref<ciphertext_message> msg;
    const int rc = group_cipher_encrypt(cipher, Bytes(plaintext), plaintext.size(), msg.out());
    group_cipher_free(cipher);
    if (auto s = Check(rc, "group encrypting"); !s) return std::unexpected(s.error());
    return BufferString(ciphertext_message_get_serialized(msg.get()));
  }

  Result<std::string> GroupDecrypt(const std::string& group_id, const DeviceAddress& sender,
                                   std::string_view ciphertext) override {
    Ref<sender_key_message> msg;
    if (auto s = Check(
            sender_key_message_deserialize(msg.out(), Bytes(ciphertext), ciphertext.size(), ctx_),
            "reading a group message");
        !s) {
      return std::unexpected(s.error());
    }
    SenderKeyName name(group_id, sender);
    auto missing = [&] {
      return Fail("no_sender_key", "no sender key of " + sender.user + "/" + sender.device +
                                       " for group " + group_id + " (key id " +
                                       std::to_string(sender_key_message_get_key_id(msg.get())) +
                                       ")");
    };
    {
      // A sender key from that device, and the one this message uses (a
      // rotated key has a new id): else the SDK keeps the message until
      // the distribution arrives.
      sender_key_record* record = nullptr;
      if (signal_protocol_sender_key_load_key(store_, &record, &name.raw) < 0) {
        return Fail("crypto", "loading a sender key");
      }
      sender_key_state* state = nullptr;
      const bool known = record != nullptr && !sender_key_record_is_empty(record) &&
                         sender_key_record_get_sender_key_state_by_id(
                             record, &state, sender_key_message_get_key_id(msg.get())) == 0;
      SIGNAL_UNREF(record);
      if (!known) return missing();
    }
    group_cipher* cipher = nullptr;
    if (auto s = Check(group_cipher_create(&cipher, store_, &name.raw, ctx_), "group cipher"); !s) {
      return std::unexpected(s.error());
    }
    Buffer plain;
    const int rc = group_cipher_decrypt(cipher, msg.get(), nullptr, plain.out());
    group_cipher_free(cipher);
    if (rc == SG_ERR_NO_SESSION || rc == SG_ERR_INVALID_KEY_ID) return missing();
    if (auto s = Check(rc, "group decrypting"); !s) return std::unexpected(s.error());
    return plain.str();
  }

  Status RotateSenderKey(const std::string& group_id) override {
    SenderKeyName name(group_id, self_);
    return Kv().Delete(kNs,
                       "sender_key:" + libsignal::AddressKey(&name.raw.sender) + ":" + group_id);
  }

  Result<Fingerprint> ComputeFingerprint(const std::string& local_user,
                                         std::span<const std::string> local_keys,
                                         const std::string& remote_user,
                                         std::span<const std::string> remote_keys) override {
    auto own = IdentityKey();
    if (!own) return std::unexpected(own.error());
    std::vector<std::string> local(local_keys.begin(), local_keys.end());
    if (std::find(local.begin(), local.end(), *own) == local.end()) local.push_back(*own);
    ec_public_key_list* local_list = ec_public_key_list_alloc();
    ec_public_key_list* remote_list = ec_public_key_list_alloc();
    fingerprint_generator* generator = nullptr;
    Ref<fingerprint> fp;
    auto finish = [&](Status s) -> Result<Fingerprint> {
      ec_public_key_list_free(local_list);
      ec_public_key_list_free(remote_list);
      fingerprint_generator_free(generator);
      if (!s) return std::unexpected(s.error());
      Fingerprint out;
      out.displayable = displayable_fingerprint_text(fingerprint_get_displayable(fp.get()));
      Buffer scannable;
      scannable_fingerprint_serialize(scannable.out(), fingerprint_get_scannable(fp.get()));
      out.scannable = scannable.str();
      return out;
    };
    auto add = [&](ec_public_key_list* list, std::span<const std::string> keys) -> Status {
      for (const auto& k : keys) {
        Ref<ec_public_key> key;
        if (auto s = Decode(k, key, "identity key"); !s) return s;
        ec_public_key_list_push_back(list, key.get());  // takes its own reference
      }
      return {};
    };
    if (auto s = add(local_list, local); !s) return finish(s);
    if (auto s = add(remote_list, remote_keys); !s) return finish(s);
    if (auto s = Check(fingerprint_generator_create(&generator, kFingerprintIterations,
                                                    kScannableVersion, ctx_),
                       "fingerprint generator");
        !s) {
      return finish(s);
    }
    return finish(
        Check(fingerprint_generator_create_for_list(generator, local_user.c_str(), local_list,
                                                    remote_user.c_str(), remote_list, fp.out()),
              "computing the safety number"));
  }

 private:
  KeyValueStore& Kv() { return *state_.kv; }

  void Close() {
    if (store_ != nullptr) signal_protocol_store_context_destroy(store_);
    if (ctx_ != nullptr) signal_context_destroy(ctx_);
    store_ = nullptr;
    ctx_ = nullptr;
  }

  Status Decode(const std::string& bytes, Ref<ec_public_key>& out, const char* what) {
    return Check(curve_decode_point(out.out(), Bytes(bytes), bytes.size(), ctx_),
                 std::string("decoding the ") + what);
  }

  std::optional<std::uint32_t> Number(const char* key) {
    auto v = Kv().Get(kNs, key);
    if (!v || !*v) return std::nullopt;
    std::uint32_t n = 0;
    std::from_chars((*v)->data(), (*v)->data() + (*v)->size(), n);
    return n;
  }

  std::uint32_t RegistrationId() { return Number("registration_id").value_or(0); }

  Result<ratchet_identity_key_pair*> IdentityPair() {
    auto pub = Kv().Get(kNs, "identity.public");
    auto priv = Kv().Get(kNs, "identity.private");
    if (!pub || !priv || !*pub || !*priv) return Fail("crypto", "no identity key");
    Ref<ec_public_key> p;
    Ref<ec_private_key> q;
    if (auto s = Decode(**pub, p, "identity key"); !s) return std::unexpected(s.error());
    if (auto s = Check(curve_decode_private_point(q.out(), Bytes(**priv), (*priv)->size(), ctx_),
                       "decoding the identity key");
        !s) {
      return std::unexpected(s.error());
    }
    ratchet_identity_key_pair* pair = nullptr;
    if (auto s = Check(ratchet_identity_key_pair_create(&pair, p.get(), q.get()), "identity pair");
        !s) {
      return std::unexpected(s.error());
    }
    return pair;
  }

  // The current signed prekey, or a new one when there is none or it is too
  // old. (Earlier ones stay: messages in flight may still name them.)
  Result<SignedPreKey> CurrentSignedPreKey() {
    const auto current = Number("signed_prekey.current");
    const auto created = Kv().Get(kNs, "signed_prekey.created_ms");
    std::int64_t created_ms = 0;
    if (created && *created)
      std::from_chars((*created)->data(), (*created)->data() + (*created)->size(), created_ms);
    const auto lifetime_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.signed_prekey_lifetime)
            .count();
    Ref<session_signed_pre_key> spk;
    if (current && NowMs() - created_ms < lifetime_ms) {
      if (auto s = Check(signal_protocol_signed_pre_key_load_key(store_, spk.out(), *current),
                         "loading the signed prekey");
          !s) {
        return std::unexpected(s.error());
      }
    } else {
      const std::uint32_t id = current ? *current % kMaxPreKeyId + 1 : 1;
      auto pair = IdentityPair();
      if (!pair) return std::unexpected(pair.error());
      const int rc = signal_protocol_key_helper_generate_signed_pre_key(
          spk.out(), *pair, id, static_cast<std::uint64_t>(NowMs()), ctx_);
      signal_type_unref(reinterpret_cast<signal_type_base*>(*pair));
      if (auto s = Check(rc, "generating a signed prekey"); !s) return std::unexpected(s.error());
      if (auto s = Check(signal_protocol_signed_pre_key_store_key(store_, spk.get()),
                         "storing the signed prekey");
          !s) {
        return std::unexpected(s.error());
      }
      if (auto s = Kv().Put(kNs, "signed_prekey.current", std::to_string(id)); !s) {
        return std::unexpected(s.error());
      }
      if (auto s = Kv().Put(kNs, "signed_prekey.created_ms", std::to_string(NowMs())); !s) {
        return std::unexpected(s.error());
      }
    }
    SignedPreKey out;
    out.id = session_signed_pre_key_get_id(spk.get());
    out.key = Serialized(ec_key_pair_get_public(session_signed_pre_key_get_key_pair(spk.get())));
    out.signature =
        std::string(reinterpret_cast<const char*>(session_signed_pre_key_get_signature(spk.get())),
                    session_signed_pre_key_get_signature_len(spk.get()));
    return out;
  }

  Result<std::vector<OneTimePreKey>> NewPreKeys(int count) {
    std::vector<OneTimePreKey> out;
    if (count <= 0) return out;
    const std::uint32_t start = Number("prekey.next").value_or(1);
    signal_protocol_key_helper_pre_key_list_node* head = nullptr;
    if (auto s = Check(signal_protocol_key_helper_generate_pre_keys(
                           &head, start, static_cast<unsigned>(count), ctx_),
                       "generating prekeys");
        !s) {
      return std::unexpected(s.error());
    }
    std::uint32_t last = start;
    Status status;
    for (auto* node = head; node != nullptr && status;
         node = signal_protocol_key_helper_key_list_next(node)) {
      session_pre_key* key = signal_protocol_key_helper_key_list_element(node);
      status = Check(signal_protocol_pre_key_store_key(store_, key), "storing a prekey");
      last = session_pre_key_get_id(key);
      out.push_back({last, Serialized(ec_key_pair_get_public(session_pre_key_get_key_pair(key)))});
    }
    signal_protocol_key_helper_key_list_free(head);
    if (!status) return std::unexpected(status.error());
    if (auto s = Kv().Put(kNs, "prekey.next", std::to_string(last % kMaxPreKeyId + 1)); !s) {
      return std::unexpected(s.error());
    }
    return out;
  }

  SignalOptions options_;
  DeviceAddress self_;
  libsignal::StoreState state_;
  signal_context* ctx_ = nullptr;
  signal_protocol_store_context* store_ = nullptr;
};

}  // namespace

std::unique_ptr<Crypto> MakeSignalCrypto(SignalOptions options) {
  return std::make_unique<SignalCrypto>(options);
}

}  // namespace parley::sdk
