// The end-to-end encryption key directory: device keys, one-time prekeys,
// and the keys_changed fan-out.
//
// device_keys holds a row only for a current device, and counts the
// device's one-time prekeys. Claims run in the writer: a claim takes the
// lowest prekey, deletes it and decrements the count in the same job, and
// jobs run one after another (the device_keys row is locked across nodes),
// so concurrent claims never get the same one.
//
// Who hears of a key change: the user itself, its 1:1 peers (peers) and the
// members of its groups (group_members).
#include <algorithm>
#include <utility>

#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {
namespace {

#define PG_KEYS_SELECT(where)                                                                  \
  "SELECT user_id, device_id, identity_key, registration_id, spk_id, spk_key, spk_signature, " \
  "one_time_prekeys FROM device_keys " where

DeviceKeys KeysAt(const Rows& r, int i) {
  DeviceKeys k{.user = r.U64(i, 0),
               .device = r.U64(i, 1),
               .identity_key = r.Bytes(i, 2),
               .signed_prekey = {.id = static_cast<std::uint32_t>(r.I64(i, 4)),
                                 .key = r.Bytes(i, 5),
                                 .signature = r.Bytes(i, 6)},
               .one_time_prekeys = static_cast<std::uint32_t>(r.I64(i, 7))};
  if (!r.IsNull(i, 3)) k.registration_id = static_cast<std::uint32_t>(r.I64(i, 3));
  return k;
}

Params KeysParams(const DeviceKeys& k) {
  Params p;
  p.U64(k.user).U64(k.device).Bytes(k.identity_key);
  if (k.registration_id) {
    p.I64(*k.registration_id);
  } else {
    p.NullI64();
  }
  p.I64(k.signed_prekey.id)
      .Bytes(k.signed_prekey.key)
      .Bytes(k.signed_prekey.signature)
      .I64(k.one_time_prekeys);
  return p;
}

constexpr const char* kUpsertKeys =
    "INSERT INTO device_keys (user_id, device_id, identity_key, registration_id, spk_id, spk_key, "
    "spk_signature, one_time_prekeys) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT "
    "(user_id, device_id) DO UPDATE SET identity_key = excluded.identity_key, registration_id = "
    "excluded.registration_id, spk_id = excluded.spk_id, spk_key = excluded.spk_key, "
    "spk_signature = excluded.spk_signature, one_time_prekeys = excluded.one_time_prekeys";

constexpr const char* kContactsQuery =
    "SELECT peer_id FROM peers WHERE user_id = $1 UNION SELECT m.user_id FROM group_members g "
    "JOIN group_members m ON m.group_id = g.group_id WHERE g.user_id = $1";

std::vector<UserId> ContactsFrom(const Rows& r, UserId user) {
  std::vector<UserId> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(r.U64(i, 0));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::erase(out, user);
  return out;
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<DeviceKeys>> PgStore::GetDeviceKeys(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_device_keys");
  auto r = reads_->Exec(PG_KEYS_SELECT("WHERE user_id = $1 AND device_id = $2"),
                        Params().U64(user).U64(device));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<DeviceKeys>();
  return std::optional<DeviceKeys>(KeysAt(*r, 0));
}

Result<std::vector<DeviceKeys>> PgStore::ListDeviceKeys(UserId user) {
  ReadTimer timer(observer_, "list_device_keys");
  auto r =
      reads_->Exec(PG_KEYS_SELECT("WHERE user_id = $1 ORDER BY device_id"), Params().U64(user));
  if (!r) return Failed(r);
  std::vector<DeviceKeys> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(KeysAt(*r, i));
  return out;
}

Result<std::vector<UserId>> PgStore::ListContacts(UserId user) {
  ReadTimer timer(observer_, "list_contacts");
  auto r = reads_->Exec(kContactsQuery, Params().U64(user));
  if (!r) return Failed(r);
  return ContactsFrom(*r, user);
}

// ---- Writes --------------------------------------------------------------------

void PgStore::UploadKeys(KeysUpload upload, Callback<KeysUploadResult> done) {
  const UserId user = upload.user;
  Submit<KeysUploadResult>(
      "upload_keys", {user}, std::move(done),
      [this, upload = std::move(upload)](Tx& tx) { return ApplyUploadKeys(tx, upload); });
}

void PgStore::ClaimPrekeys(UserId user, DeviceId except, Callback<std::vector<PrekeyBundle>> done) {
  Submit<std::vector<PrekeyBundle>>(
      "claim_prekeys", {}, std::move(done),
      [this, user, except](Tx& tx) { return ApplyClaimPrekeys(tx, user, except); });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<std::vector<DeviceId>> PgStore::TxnCurrentDevices(Tx& tx, UserId user) {
  auto r = tx.Read("SELECT device_id FROM device_keys WHERE user_id = $1 ORDER BY device_id",
                   Params().U64(user));
  if (!r) return Failed(r);
  std::vector<DeviceId> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(r->U64(i, 0));
  return out;
}

Result<std::vector<UserId>> PgStore::TxnContacts(Tx& tx, UserId user) {
  auto r = tx.Read(kContactsQuery, Params().U64(user));
  if (!r) return Failed(r);
  return ContactsFrom(*r, user);
}

Status PgStore::AppendKeysChanged(Tx& tx, UserId user, DeviceId device, KeysChange change,
                                  std::vector<DeviceId> current, std::int64_t now_ms,
                                  const KeysChangedRenderer& render,
                                  std::vector<Appended>& appended) {
  if (!render) return Ok();
  KeysChangedInfo info{.user = user, .device = device, .change = change, .ts_ms = now_ms};
  info.current = std::move(current);
  auto contacts = TxnContacts(tx, user);
  if (!contacts) return Failed(contacts);
  const MailboxEvent event{
      .type = EventType::kKeysChanged, .ts_ms = now_ms, .payload = render(info)};
  std::vector<UserId> users{user};
  users.insert(users.end(), contacts->begin(), contacts->end());
  return AppendSameEvent(tx, users, event, appended);
}

Result<KeysUploadResult> PgStore::ApplyUploadKeys(Tx& tx, const KeysUpload& up) {
  auto device = TxnDevice(tx, up.user, up.device);
  if (!device) return Failed(device);
  if (!*device) return Fail(Errc::kNotFound, "no such device");
  auto stored = tx.Read(PG_KEYS_SELECT("WHERE user_id = $1 AND device_id = $2 FOR UPDATE"),
                        Params().U64(up.user).U64(up.device));
  if (!stored) return Failed(stored);

  std::optional<KeysChange> change;
  bool drop_prekeys = false;
  DeviceKeys keys;
  if (stored->empty()) {
    if (!up.identity_key) {
      return Fail(Errc::kInvalid, "identity_key: required on a device's first upload");
    }
    if (!up.signed_prekey) {
      return Fail(Errc::kInvalid, "signed_prekey: required on a device's first upload");
    }
    keys = DeviceKeys{.user = up.user, .device = up.device};
    change = KeysChange::kAdded;
  } else {
    keys = KeysAt(*stored, 0);
    if (up.identity_key && *up.identity_key != keys.identity_key) {
      if (!up.signed_prekey) {
        return Fail(Errc::kInvalid, "signed_prekey: required with a new identity_key");
      }
      // Prekeys made under the old identity are of no use to anyone now.
      drop_prekeys = true;
      keys.one_time_prekeys = 0;
      change = KeysChange::kIdentityChanged;
    }
  }
  if (up.identity_key) keys.identity_key = *up.identity_key;
  if (up.registration_id) keys.registration_id = *up.registration_id;
  if (up.signed_prekey) keys.signed_prekey = *up.signed_prekey;

  // Ids of this upload already stored (and kept) replace a key, not add one.
  std::vector<std::uint64_t> ids;
  for (const auto& p : up.one_time_prekeys) ids.push_back(p.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::uint64_t existing = 0;
  if (!drop_prekeys && !ids.empty()) {
    auto r = tx.Read(
        "SELECT count(*) FROM prekeys WHERE user_id = $1 AND device_id = $2 AND prekey_id = "
        "ANY($3::int8[])",
        Params().U64(up.user).U64(up.device).U64Array(ids));
    if (!r) return Failed(r);
    existing = static_cast<std::uint64_t>(r->I64(0, 0));
  }
  const std::uint64_t added = ids.size() - existing;
  if (static_cast<std::uint64_t>(keys.one_time_prekeys) + added > up.max_one_time_prekeys) {
    return Fail(Errc::kInvalid, "one_time_prekeys: at most " +
                                    std::to_string(up.max_one_time_prekeys) +
                                    " may be stored per device");
  }
  keys.one_time_prekeys += static_cast<std::uint32_t>(added);

  KeysUploadResult result{.one_time_prekeys_left = keys.one_time_prekeys};
  if (change) {
    auto current = TxnCurrentDevices(tx, up.user);
    if (!current) return Failed(current);
    if (std::find(current->begin(), current->end(), up.device) == current->end()) {
      current->insert(std::upper_bound(current->begin(), current->end(), up.device), up.device);
    }
    if (auto s = AppendKeysChanged(tx, up.user, up.device, *change, std::move(*current), up.now_ms,
                                   up.render, result.appended);
        !s) {
      return Failed(s);
    }
  }
  if (drop_prekeys) {
    tx.Write("DELETE FROM prekeys WHERE user_id = $1 AND device_id = $2",
             Params().U64(up.user).U64(up.device));
  }
  for (const auto& p : up.one_time_prekeys) {
    tx.Write(
        "INSERT INTO prekeys (user_id, device_id, prekey_id, key) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (user_id, device_id, prekey_id) DO UPDATE SET key = excluded.key",
        Params().U64(up.user).U64(up.device).I64(p.id).Bytes(p.key));
  }
  tx.Write(kUpsertKeys, KeysParams(keys));
  return result;
}

Result<std::vector<PrekeyBundle>> PgStore::ApplyClaimPrekeys(Tx& tx, UserId user, DeviceId except) {
  auto r = tx.Read(PG_KEYS_SELECT("WHERE user_id = $1 ORDER BY device_id FOR UPDATE"),
                   Params().U64(user));
  if (!r) return Failed(r);
  std::vector<PrekeyBundle> out;
  for (int i = 0; i < r->size(); ++i) {
    DeviceKeys keys = KeysAt(*r, i);
    if (keys.device == except) continue;
    PrekeyBundle bundle;
    if (keys.one_time_prekeys > 0) {
      auto p = tx.Read(
          "SELECT prekey_id, key FROM prekeys WHERE user_id = $1 AND device_id = $2 "
          "ORDER BY prekey_id LIMIT 1",
          Params().U64(user).U64(keys.device));
      if (!p) return Failed(p);
      if (!p->empty()) {
        bundle.one_time_prekey =
            OneTimePrekey{.id = static_cast<std::uint32_t>(p->I64(0, 0)), .key = p->Bytes(0, 1)};
        tx.Write("DELETE FROM prekeys WHERE user_id = $1 AND device_id = $2 AND prekey_id = $3",
                 Params().U64(user).U64(keys.device).I64(bundle.one_time_prekey->id));
        --keys.one_time_prekeys;
      } else {
        keys.one_time_prekeys = 0;  // the count was off: trust the rows
      }
      tx.Write("UPDATE device_keys SET one_time_prekeys = $3 WHERE user_id = $1 AND device_id = $2",
               Params().U64(user).U64(keys.device).I64(keys.one_time_prekeys));
    }
    bundle.keys = std::move(keys);
    out.push_back(std::move(bundle));
  }
  return out;
}

Result<bool> PgStore::HasWrittenTo(UserId from, UserId to) {
  ReadTimer timer(observer_, "has_written_to");
  auto r = reads_->Exec("SELECT 1 FROM peers WHERE user_id = $1 AND peer_id = $2 AND wrote",
                        Params().U64(from).U64(to));
  if (!r) return Failed(r);
  return !r->empty();
}

}  // namespace parley::store::pg
