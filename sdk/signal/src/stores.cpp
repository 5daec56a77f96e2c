// libsignal's five stores on the SDK's KeyValueStore, namespace "signal":
//
//   identity.public, identity.private, registration_id   this device
//   session:<name>:<device>                              session records
//   prekey:<id>, signed_prekey:<id>                      our prekeys
//   identity:<name>:<device>                             remote identity keys
//   sender_key:<name>:<device>:<group>                   sender key records
//
// Return values follow signal_protocol.h for each callback.
#include <charconv>

#include "internal.hpp"

namespace parley::sdk::libsignal {

namespace {

KeyValueStore& Kv(void* user_data) { return *static_cast<StoreState*>(user_data)->kv; }

std::optional<std::string> Get(void* ud, const std::string& key) {
  auto v = Kv(ud).Get(kNs, key);
  return v ? *v : std::nullopt;
}

int Put(void* ud, const std::string& key, const uint8_t* data, size_t len) {
  return Kv(ud).Put(kNs, key, std::string_view(reinterpret_cast<const char*>(data), len))
             ? SG_SUCCESS
             : SG_ERR_UNKNOWN;
}

signal_buffer* ToBuffer(const std::string& s) {
  return signal_buffer_create(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Name(const char* name, size_t len) { return std::string(name, len); }

// ---- Sessions ------------------------------------------------------------------

int LoadSession(signal_buffer** record, signal_buffer** user_record,
                const signal_protocol_address* address, void* ud) {
  auto v = Get(ud, "session:" + AddressKey(address));
  if (!v) return 0;
  *record = ToBuffer(*v);
  if (user_record != nullptr) *user_record = nullptr;
  return 1;
}

int SubDeviceSessions(signal_int_list** sessions, const char* name, size_t name_len, void* ud) {
  auto keys = Kv(ud).Keys(kNs, "session:" + Name(name, name_len) + ":");
  if (!keys) return SG_ERR_UNKNOWN;
  signal_int_list* list = signal_int_list_alloc();
  if (list == nullptr) return SG_ERR_NOMEM;
  for (const auto& k : *keys) {
    int device = 0;
    const auto colon = k.rfind(':');
    std::from_chars(k.data() + colon + 1, k.data() + k.size(), device);
    signal_int_list_push_back(list, device);
  }
  *sessions = list;
  return static_cast<int>(keys->size());
}

int StoreSession(const signal_protocol_address* address, uint8_t* record, size_t len, uint8_t*,
                 size_t, void* ud) {
  return Put(ud, "session:" + AddressKey(address), record, len);
}

int ContainsSession(const signal_protocol_address* address, void* ud) {
  return Get(ud, "session:" + AddressKey(address)) ? 1 : 0;
}

int DeleteSession(const signal_protocol_address* address, void* ud) {
  const std::string key = "session:" + AddressKey(address);
  if (!Get(ud, key)) return 0;
  return Kv(ud).Delete(kNs, key) ? 1 : SG_ERR_UNKNOWN;
}

int DeleteAllSessions(const char* name, size_t name_len, void* ud) {
  auto keys = Kv(ud).Keys(kNs, "session:" + Name(name, name_len) + ":");
  if (!keys) return SG_ERR_UNKNOWN;
  for (const auto& k : *keys) {
    if (!Kv(ud).Delete(kNs, k)) return SG_ERR_UNKNOWN;
  }
  return static_cast<int>(keys->size());
}

// ---- Prekeys and signed prekeys ---------------------------------------------------

template <const char* kPrefix>
struct KeyStore {
  static std::string Key(uint32_t id) { return std::string(kPrefix) + std::to_string(id); }
  static int Load(signal_buffer** record, uint32_t id, void* ud) {
    auto v = Get(ud, Key(id));
    if (!v) return SG_ERR_INVALID_KEY_ID;
    *record = ToBuffer(*v);
    return SG_SUCCESS;
  }
  static int Store(uint32_t id, uint8_t* record, size_t len, void* ud) {
    return Put(ud, Key(id), record, len);
  }
  static int Contains(uint32_t id, void* ud) { return Get(ud, Key(id)) ? 1 : 0; }
  static int Remove(uint32_t id, void* ud) {
    return Kv(ud).Delete(kNs, Key(id)) ? SG_SUCCESS : SG_ERR_UNKNOWN;
  }
};
constexpr char kPreKey[] = "prekey:";
constexpr char kSignedPreKey[] = "signed_prekey:";

// ---- Identities -----------------------------------------------------------------------

int IdentityKeyPair(signal_buffer** public_data, signal_buffer** private_data, void* ud) {
  auto pub = Get(ud, "identity.public");
  auto priv = Get(ud, "identity.private");
  if (!pub || !priv) return SG_ERR_INVALID_KEY;
  *public_data = ToBuffer(*pub);
  *private_data = ToBuffer(*priv);
  return SG_SUCCESS;
}

int RegistrationId(void* ud, uint32_t* registration_id) {
  auto v = Get(ud, "registration_id");
  if (!v) return SG_ERR_UNKNOWN;
  std::from_chars(v->data(), v->data() + v->size(), *registration_id);
  return SG_SUCCESS;
}

int SaveIdentity(const signal_protocol_address* address, uint8_t* key, size_t len, void* ud) {
  const std::string k = "identity:" + AddressKey(address);
  if (key == nullptr) return Kv(ud).Delete(kNs, k) ? SG_SUCCESS : SG_ERR_UNKNOWN;
  return Put(ud, k, key, len);
}

// Trust on first use: a device's first identity key is trusted; a different
// one later is not, until the SDK forgets the device (keys_changed).
int IsTrusted(const signal_protocol_address* address, uint8_t* key, size_t len, void* ud) {
  auto known = Get(ud, "identity:" + AddressKey(address));
  if (!known) return 1;
  return *known == std::string_view(reinterpret_cast<const char*>(key), len) ? 1 : 0;
}

// ---- Sender keys ----------------------------------------------------------------------------

std::string SenderKeyKey(const signal_protocol_sender_key_name* name) {
  return "sender_key:" + AddressKey(&name->sender) + ":" +
         std::string(name->group_id, name->group_id_len);
}

int StoreSenderKey(const signal_protocol_sender_key_name* name, uint8_t* record, size_t len,
                   uint8_t*, size_t, void* ud) {
  return Put(ud, SenderKeyKey(name), record, len);
}

int LoadSenderKey(signal_buffer** record, signal_buffer** user_record,
                  const signal_protocol_sender_key_name* name, void* ud) {
  auto v = Get(ud, SenderKeyKey(name));
  if (!v) return 0;
  *record = ToBuffer(*v);
  if (user_record != nullptr) *user_record = nullptr;
  return 1;
}

}  // namespace

std::string AddressKey(const signal_protocol_address* address) {
  return std::string(address->name, address->name_len) + ":" + std::to_string(address->device_id);
}

void InstallStores(signal_protocol_store_context* ctx, StoreState* state) {
  signal_protocol_session_store sessions = {
      .load_session_func = LoadSession,
      .get_sub_device_sessions_func = SubDeviceSessions,
      .store_session_func = StoreSession,
      .contains_session_func = ContainsSession,
      .delete_session_func = DeleteSession,
      .delete_all_sessions_func = DeleteAllSessions,
      .destroy_func = nullptr,
      .user_data = state,
  };
  signal_protocol_pre_key_store prekeys = {
      .load_pre_key = KeyStore<kPreKey>::Load,
      .store_pre_key = KeyStore<kPreKey>::Store,
      .contains_pre_key = KeyStore<kPreKey>::Contains,
      .remove_pre_key = KeyStore<kPreKey>::Remove,
      .destroy_func = nullptr,
      .user_data = state,
  };
  signal_protocol_signed_pre_key_store signed_prekeys = {
      .load_signed_pre_key = KeyStore<kSignedPreKey>::Load,
      .store_signed_pre_key = KeyStore<kSignedPreKey>::Store,
      .contains_signed_pre_key = KeyStore<kSignedPreKey>::Contains,
      .remove_signed_pre_key = KeyStore<kSignedPreKey>::Remove,
      .destroy_func = nullptr,
      .user_data = state,
  };
  signal_protocol_identity_key_store identities = {
      .get_identity_key_pair = IdentityKeyPair,
      .get_local_registration_id = RegistrationId,
      .save_identity = SaveIdentity,
      .is_trusted_identity = IsTrusted,
      .destroy_func = nullptr,
      .user_data = state,
  };
  signal_protocol_sender_key_store sender_keys = {
      .store_sender_key = StoreSenderKey,
      .load_sender_key = LoadSenderKey,
      .destroy_func = nullptr,
      .user_data = state,
  };
  signal_protocol_store_context_set_session_store(ctx, &sessions);
  signal_protocol_store_context_set_pre_key_store(ctx, &prekeys);
  signal_protocol_store_context_set_signed_pre_key_store(ctx, &signed_prekeys);
  signal_protocol_store_context_set_identity_key_store(ctx, &identities);
  signal_protocol_store_context_set_sender_key_store(ctx, &sender_keys);
}

}  // namespace parley::sdk::libsignal
