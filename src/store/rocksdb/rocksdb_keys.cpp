// The end-to-end encryption key directory: device keys, one-time prekeys,
// and the keys_changed fan-out.
//
// device_keys holds a row only for a current device (one that uploaded an
// identity key), so "the current devices of a user" is one prefix scan.
// The row also counts the device's one-time prekeys, so keys.count is one
// point read. One-time prekeys are claimed inside the writer: a claim reads
// the lowest one, deletes it and decrements the count in the same job, and
// jobs run one after another, so concurrent claims never get the same one.
//
// Who hears of a key change: the user itself (its other devices), its 1:1
// peers (peers, written by the first message between two users) and the
// members of its groups (user_groups, kept by WriteGroupChange).
#include <rocksdb/snapshot.h>

#include <algorithm>
#include <utility>

#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {
namespace {

template <class T>
std::unexpected<Error> Failed(const Result<T>& r) {
  return std::unexpected(r.error());
}

Result<DeviceKeys> DecodeKeysEntry(std::string_view key, std::string_view value) {
  auto ids = ParseU64PairKey(key);
  if (!ids) return Fail(Errc::kCorruption, "malformed device keys key");
  return DecodeDeviceKeys(ids->first, ids->second, value);
}

// The second id of a Pair64Key row.
Result<std::uint64_t> SecondId(std::string_view key) {
  auto ids = ParseU64PairKey(key);
  if (!ids) return Fail(Errc::kCorruption, "malformed pair key");
  return ids->second;
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<DeviceKeys>> RocksStore::GetDeviceKeys(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_device_keys");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kDeviceKeys, Pair64Key(user, device));
  if (!value) return Failed(value);
  if (!*value) return std::optional<DeviceKeys>();
  auto keys = DecodeDeviceKeys(user, device, **value);
  if (!keys) return Failed(keys);
  return std::optional<DeviceKeys>(std::move(*keys));
}

Result<std::vector<DeviceKeys>> RocksStore::ListDeviceKeys(UserId user) {
  ReadTimer timer(observer_, "list_device_keys");
  const std::string prefix = U64Key(user);
  const std::string upper = PrefixUpperBound(prefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kDeviceKeys)));
  std::vector<DeviceKeys> out;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto keys = DecodeKeysEntry(it->key().ToStringView(), it->value().ToStringView());
    if (!keys) return Failed(keys);
    out.push_back(std::move(*keys));
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "list_device_keys"));
  return out;
}

Result<bool> RocksStore::HasWrittenTo(UserId from, UserId to) {
  ReadTimer timer(observer_, "has_written_to");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kPeers, Pair64Key(from, to));
  if (!value) return std::unexpected(value.error());
  return *value && **value == kPeerWrote;
}

Result<std::vector<UserId>> RocksStore::ListContacts(UserId user) {
  ReadTimer timer(observer_, "list_contacts");
  // One snapshot for both indexes.
  rocksdb::ManagedSnapshot snapshot(db_->db());
  const std::string prefix = U64Key(user);
  const std::string upper = PrefixUpperBound(prefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::vector<UserId> out;
  std::vector<GroupId> groups;
  for (auto [which, into] : {std::pair{Cf::kPeers, &out}, std::pair{Cf::kUserGroups, &groups}}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(which)));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto id = SecondId(it->key().ToStringView());
      if (!id) return Failed(id);
      into->push_back(*id);
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "list_contacts"));
  }
  for (GroupId g : groups) {
    auto group = GetGroup(g);
    if (!group) return Failed(group);
    if (!*group) continue;
    for (const auto& m : (*group)->members) out.push_back(m.user);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::erase(out, user);
  return out;
}

// ---- Writes --------------------------------------------------------------------

void RocksStore::UploadKeys(KeysUpload upload, Callback<KeysUploadResult> done) {
  Submit<KeysUploadResult>(
      "upload_keys", std::move(done),
      [this, upload = std::move(upload)](WriteTxn& txn) { return ApplyUploadKeys(txn, upload); });
}

void RocksStore::ClaimPrekeys(UserId user, DeviceId except,
                              Callback<std::vector<PrekeyBundle>> done) {
  Submit<std::vector<PrekeyBundle>>(
      "claim_prekeys", std::move(done),
      [this, user, except](WriteTxn& txn) { return ApplyClaimPrekeys(txn, user, except); });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<std::optional<DeviceKeys>> RocksStore::TxnDeviceKeys(WriteTxn& txn, UserId user,
                                                            DeviceId device) {
  auto value = txn.Get(cf(Cf::kDeviceKeys), Pair64Key(user, device));
  if (!value) return Failed(value);
  if (!*value) return std::optional<DeviceKeys>();
  auto keys = DecodeDeviceKeys(user, device, **value);
  if (!keys) return Failed(keys);
  return std::optional<DeviceKeys>(std::move(*keys));
}

Result<std::vector<DeviceId>> RocksStore::TxnCurrentDevices(WriteTxn& txn, UserId user) {
  std::vector<DeviceId> out;
  Status bad = Ok();
  auto s = txn.ScanPrefix(cf(Cf::kDeviceKeys), IdKey(user).view(),
                          [&](std::string_view key, std::string_view) {
                            auto id = SecondId(key);
                            if (!id) {
                              bad = std::unexpected(id.error());
                              return false;
                            }
                            out.push_back(*id);
                            return true;
                          });
  if (!s) return std::unexpected(s.error());
  if (!bad) return std::unexpected(bad.error());
  return out;
}

Result<std::vector<UserId>> RocksStore::TxnContacts(WriteTxn& txn, UserId user) {
  std::vector<UserId> out;
  std::vector<GroupId> groups;
  Status bad = Ok();
  for (auto [which, into] : {std::pair{Cf::kPeers, &out}, std::pair{Cf::kUserGroups, &groups}}) {
    auto s = txn.ScanPrefix(cf(which), IdKey(user).view(),
                            [&, into = into](std::string_view key, std::string_view) {
                              auto id = SecondId(key);
                              if (!id) {
                                bad = std::unexpected(id.error());
                                return false;
                              }
                              into->push_back(*id);
                              return true;
                            });
    if (!s) return std::unexpected(s.error());
    if (!bad) return std::unexpected(bad.error());
  }
  for (GroupId g : groups) {
    auto state = TxnGroup(txn, g);
    if (!state) return Failed(state);
    if (!state->group) continue;
    for (const auto& m : state->group->members) out.push_back(m.user);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::erase(out, user);
  return out;
}

Status RocksStore::AppendKeysChanged(WriteTxn& txn, UserId user, DeviceId device, KeysChange change,
                                     std::int64_t now_ms, const KeysChangedRenderer& render,
                                     std::vector<Appended>& appended) {
  if (!render) return Ok();
  KeysChangedInfo info{.user = user, .device = device, .change = change, .ts_ms = now_ms};
  auto current = TxnCurrentDevices(txn, user);
  if (!current) return Failed(current);
  info.current = std::move(*current);
  auto contacts = TxnContacts(txn, user);
  if (!contacts) return Failed(contacts);
  const MailboxEvent event{
      .type = EventType::kKeysChanged, .ts_ms = now_ms, .payload = render(info)};
  appended.reserve(appended.size() + contacts->size() + 1);
  if (auto seq = AppendEventRow(txn, user, event, appended); !seq) return Failed(seq);
  for (UserId u : *contacts) {
    if (auto seq = AppendEventRow(txn, u, event, appended); !seq) return Failed(seq);
  }
  return Ok();
}

Status RocksStore::DeletePrekeys(WriteTxn& txn, UserId user, DeviceId device) {
  std::vector<std::string> keys;
  auto s = txn.ScanPrefix(cf(Cf::kPrekeys), Pair64Key(user, device).view(),
                          [&](std::string_view key, std::string_view) {
                            keys.emplace_back(key);
                            return true;
                          });
  if (!s) return s;
  for (const auto& key : keys) {
    if (auto d = txn.Delete(cf(Cf::kPrekeys), key); !d) return d;
  }
  return Ok();
}

Result<KeysUploadResult> RocksStore::ApplyUploadKeys(WriteTxn& txn, const KeysUpload& up) {
  auto device = TxnDevice(txn, up.user, up.device);
  if (!device) return Failed(device);
  if (!*device) return Fail(Errc::kNotFound, "no such device");
  auto stored = TxnDeviceKeys(txn, up.user, up.device);
  if (!stored) return Failed(stored);

  std::optional<KeysChange> change;
  DeviceKeys keys;
  if (!*stored) {
    if (!up.identity_key) {
      return Fail(Errc::kInvalid, "identity_key: required on a device's first upload");
    }
    if (!up.signed_prekey) {
      return Fail(Errc::kInvalid, "signed_prekey: required on a device's first upload");
    }
    keys = DeviceKeys{.user = up.user, .device = up.device};
    change = KeysChange::kAdded;
  } else {
    keys = std::move(**stored);
    if (up.identity_key && *up.identity_key != keys.identity_key) {
      if (!up.signed_prekey) {
        return Fail(Errc::kInvalid, "signed_prekey: required with a new identity_key");
      }
      // Prekeys made under the old identity are of no use to anyone now.
      if (auto s = DeletePrekeys(txn, up.user, up.device); !s) return Failed(s);
      keys.one_time_prekeys = 0;
      change = KeysChange::kIdentityChanged;
    }
  }
  if (up.identity_key) keys.identity_key = *up.identity_key;
  if (up.registration_id) keys.registration_id = *up.registration_id;
  if (up.signed_prekey) keys.signed_prekey = *up.signed_prekey;

  std::uint32_t added = 0;
  for (const auto& p : up.one_time_prekeys) {
    const auto key = PrekeyKey(up.user, up.device, p.id);
    auto existing = txn.Get(cf(Cf::kPrekeys), key);
    if (!existing) return Failed(existing);
    if (!*existing) ++added;
    if (auto s = txn.Put(cf(Cf::kPrekeys), key, EncodePrekey(p.key)); !s) return Failed(s);
  }
  if (static_cast<std::uint64_t>(keys.one_time_prekeys) + added > up.max_one_time_prekeys) {
    return Fail(Errc::kInvalid, "one_time_prekeys: at most " +
                                    std::to_string(up.max_one_time_prekeys) +
                                    " may be stored per device");
  }
  keys.one_time_prekeys += added;
  if (auto s = txn.Put(cf(Cf::kDeviceKeys), Pair64Key(up.user, up.device), EncodeDeviceKeys(keys));
      !s) {
    return Failed(s);
  }
  KeysUploadResult result{.one_time_prekeys_left = keys.one_time_prekeys};
  if (change) {
    if (auto s = AppendKeysChanged(txn, up.user, up.device, *change, up.now_ms, up.render,
                                   result.appended);
        !s) {
      return Failed(s);
    }
  }
  return result;
}

Result<std::vector<PrekeyBundle>> RocksStore::ApplyClaimPrekeys(WriteTxn& txn, UserId user,
                                                                DeviceId except) {
  std::vector<DeviceKeys> devices;
  Status bad = Ok();
  auto s = txn.ScanPrefix(cf(Cf::kDeviceKeys), IdKey(user).view(),
                          [&](std::string_view key, std::string_view value) {
                            auto keys = DecodeKeysEntry(key, value);
                            if (!keys) {
                              bad = std::unexpected(keys.error());
                              return false;
                            }
                            if (keys->device != except) devices.push_back(std::move(*keys));
                            return true;
                          });
  if (!s) return Failed(s);
  if (!bad) return Failed(bad);

  std::vector<PrekeyBundle> out;
  out.reserve(devices.size());
  for (auto& keys : devices) {
    PrekeyBundle bundle;
    if (keys.one_time_prekeys > 0) {
      std::string found_key;
      std::string found_value;
      auto scan = txn.ScanPrefix(cf(Cf::kPrekeys), Pair64Key(user, keys.device).view(),
                                 [&](std::string_view key, std::string_view value) {
                                   found_key = key;
                                   found_value = value;
                                   return false;
                                 });
      if (!scan) return Failed(scan);
      if (!found_key.empty()) {
        auto id = ParsePrekeyId(found_key);
        auto key = DecodePrekey(found_value);
        if (!id) return Fail(Errc::kCorruption, "malformed prekey key");
        if (!key) return Failed(key);
        bundle.one_time_prekey = OneTimePrekey{.id = *id, .key = std::move(*key)};
        if (auto d = txn.Delete(cf(Cf::kPrekeys), found_key); !d) return Failed(d);
        --keys.one_time_prekeys;
      } else {
        keys.one_time_prekeys = 0;  // the count was off: trust the rows
      }
      if (auto p =
              txn.Put(cf(Cf::kDeviceKeys), Pair64Key(user, keys.device), EncodeDeviceKeys(keys));
          !p) {
        return Failed(p);
      }
    }
    bundle.keys = std::move(keys);
    out.push_back(std::move(bundle));
  }
  return out;
}

Status RocksStore::NotePeers(WriteTxn& txn, UserId sender, UserId recipient) {
  if (sender == recipient || peers_.Known(sender, recipient)) return Ok();
  auto present = txn.Get(cf(Cf::kPeers), Pair64Key(sender, recipient));
  if (!present) return Failed(present);
  if (!*present || **present != kPeerWrote) {
    if (auto s = txn.Put(cf(Cf::kPeers), Pair64Key(sender, recipient), kPeerWrote); !s) return s;
  }
  // The rows come in pairs: without the sender's row there is no reverse one.
  if (!*present) {
    if (auto s = txn.Put(cf(Cf::kPeers), Pair64Key(recipient, sender), ""); !s) return s;
  }
  peers_.Add(sender, recipient);
  return Ok();
}

}  // namespace parley::store::rocks
