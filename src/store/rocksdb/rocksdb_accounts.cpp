// Users, devices, refresh tokens and one-time codes.
#include <rocksdb/snapshot.h>

#include <utility>

#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {
namespace {

Result<Device> DecodeDeviceEntry(std::string_view key, std::string_view value) {
  auto ids = ParseU64PairKey(key);
  if (!ids) return Fail(Errc::kCorruption, "malformed device key");
  return DecodeDevice(ids->first, ids->second, value);
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<User>> RocksStore::GetUser(UserId id) {
  ReadTimer timer(observer_, "get_user");
  return ReadUser(rocksdb::ReadOptions(), id);
}

Result<std::optional<User>> RocksStore::FindUserByPhone(std::string_view phone) {
  ReadTimer timer(observer_, "find_user_by_phone");
  // One snapshot for the index and the row it points to.
  rocksdb::ManagedSnapshot snapshot(db_->db());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  auto id = ReadValue(ro, Cf::kPhoneIndex, phone);
  if (!id) return std::unexpected(id.error());
  if (!*id) return std::optional<User>();
  auto user_id = DecodeUserIdValue(**id);
  if (!user_id) return std::unexpected(user_id.error());
  auto user = ReadUser(ro, *user_id);
  if (user && !*user) return Fail(Errc::kCorruption, "phone index names a missing user");
  return user;
}

Result<std::vector<User>> RocksStore::GetUsers(std::span<const UserId> ids) {
  ReadTimer timer(observer_, "get_users");
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (UserId id : ids) keys.push_back(U64Key(id));
  std::vector<User> users;
  auto s = MultiGet(Cf::kUsers, std::span<const std::string>(keys),
                    [&](std::size_t i, std::string_view value) -> Status {
                      auto user = DecodeUser(ids[i], value);
                      if (!user) return std::unexpected(user.error());
                      users.push_back(std::move(*user));
                      return Ok();
                    });
  if (!s) return std::unexpected(s.error());
  return users;
}

Result<std::vector<std::pair<std::string, UserId>>> RocksStore::FindUsersByPhoneHash(
    std::span<const std::string> hashes) {
  ReadTimer timer(observer_, "find_users_by_phone_hash");
  std::vector<std::pair<std::string, UserId>> found;
  auto s =
      MultiGet(Cf::kPhoneHashIndex, hashes, [&](std::size_t i, std::string_view value) -> Status {
        auto id = DecodeUserIdValue(value);
        if (!id) return std::unexpected(id.error());
        found.emplace_back(hashes[i], *id);
        return Ok();
      });
  if (!s) return std::unexpected(s.error());
  return found;
}

Result<std::optional<Device>> RocksStore::GetDevice(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_device");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kDevices, U64PairKey(user, device));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<Device>();
  auto decoded = DecodeDevice(user, device, **value);
  if (!decoded) return std::unexpected(decoded.error());
  return std::optional<Device>(std::move(*decoded));
}

Result<std::vector<Device>> RocksStore::ListDevices(UserId user) {
  ReadTimer timer(observer_, "list_devices");
  const std::string prefix = U64Key(user);
  const std::string upper = PrefixUpperBound(prefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kDevices)));
  std::vector<Device> devices;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto device = DecodeDeviceEntry(it->key().ToStringView(), it->value().ToStringView());
    if (!device) return std::unexpected(device.error());
    devices.push_back(std::move(*device));
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "list_devices"));
  return devices;
}

Result<std::optional<RefreshToken>> RocksStore::GetRefreshToken(std::string_view hash) {
  ReadTimer timer(observer_, "get_refresh_token");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kRefreshTokens, hash);
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<RefreshToken>();
  auto token = DecodeRefreshToken(hash, **value);
  if (!token) return std::unexpected(token.error());
  return std::optional<RefreshToken>(std::move(*token));
}

Result<std::optional<OtpCode>> RocksStore::GetOtp(std::string_view phone) {
  ReadTimer timer(observer_, "get_otp");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kOtp, phone);
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<OtpCode>();
  auto code = DecodeOtp(phone, **value);
  if (!code) return std::unexpected(code.error());
  return std::optional<OtpCode>(std::move(*code));
}

// ---- Writes --------------------------------------------------------------------

void RocksStore::PutOtp(OtpCode code, Callback<void> done) {
  Submit<void>("put_otp", std::move(done), [this, code = std::move(code)](WriteTxn& txn) {
    return txn.Put(cf(Cf::kOtp), code.phone, EncodeOtp(code));
  });
}

void RocksStore::RecordOtpFailure(std::string phone, std::uint32_t max_attempts,
                                  Callback<OtpFailure> done) {
  Submit<OtpFailure>(
      "record_otp_failure", std::move(done),
      [this, phone = std::move(phone), max_attempts](WriteTxn& txn) -> Result<OtpFailure> {
        auto code = TxnOtp(txn, phone);
        if (!code) return std::unexpected(code.error());
        if (!*code) return OtpFailure{.missing = true};
        OtpFailure failure{.attempts = (*code)->attempts + 1};
        if (failure.attempts >= max_attempts) {
          failure.burned = true;
          if (auto s = txn.Delete(cf(Cf::kOtp), phone); !s) return std::unexpected(s.error());
        } else {
          (*code)->attempts = failure.attempts;
          if (auto s = txn.Put(cf(Cf::kOtp), phone, EncodeOtp(**code)); !s) {
            return std::unexpected(s.error());
          }
        }
        return failure;
      });
}

void RocksStore::SignIn(SignInRequest req, Callback<SignInResult> done) {
  Submit<SignInResult>(
      "sign_in", std::move(done),
      [this, req = std::move(req)](WriteTxn& txn) mutable { return ApplySignIn(txn, req); });
}

void RocksStore::RotateRefreshToken(std::string old_hash, RefreshToken replacement,
                                    std::int64_t now_ms, Callback<RotateResult> done) {
  Submit<RotateResult>(
      "rotate_refresh_token", std::move(done),
      [this, old_hash = std::move(old_hash), replacement = std::move(replacement),
       now_ms](WriteTxn& txn) mutable { return ApplyRotate(txn, old_hash, replacement, now_ms); });
}

void RocksStore::RemoveDevice(UserId user, DeviceId device, std::int64_t now_ms,
                              KeysChangedRenderer render, Callback<RemoveDeviceResult> done) {
  Submit<RemoveDeviceResult>(
      "remove_device", std::move(done),
      [this, user, device, now_ms, render = std::move(render)](WriteTxn& txn) {
        return ApplyRemoveDevice(txn, user, device, now_ms, render);
      });
}

void RocksStore::TouchDevice(UserId user, DeviceId device, std::int64_t last_active_ms,
                             Callback<void> done) {
  Submit<void>("touch_device", std::move(done),
               [this, user, device, last_active_ms](WriteTxn& txn) -> Status {
                 auto found = TxnDevice(txn, user, device);
                 if (!found) return std::unexpected(found.error());
                 if (!*found) return Ok();
                 (*found)->last_active_ms = last_active_ms;
                 return txn.Put(cf(Cf::kDevices), U64PairKey(user, device), EncodeDevice(**found));
               });
}

void RocksStore::UpdateProfile(UserId user, ProfilePatch patch, Callback<void> done) {
  Submit<void>("update_profile", std::move(done),
               [this, user, patch = std::move(patch)](WriteTxn& txn) -> Status {
                 // An avatar is readable by anyone signed in.
                 if (patch.avatar_media_id && !patch.avatar_media_id->empty()) {
                   if (auto s = GrantMedia(txn, *patch.avatar_media_id, 0); !s) return s;
                 }
                 return ModifyUser(txn, user, [&](User& u) {
                   if (patch.name) u.name = *patch.name;
                   if (patch.status_text) u.status_text = *patch.status_text;
                   if (patch.avatar_media_id) u.avatar_media_id = *patch.avatar_media_id;
                   if (patch.last_seen_visibility) {
                     u.last_seen_visibility = *patch.last_seen_visibility;
                   }
                 });
               });
}

void RocksStore::SetLastSeen(UserId user, std::int64_t last_seen_ms, Callback<void> done) {
  Submit<void>("set_last_seen", std::move(done), [this, user, last_seen_ms](WriteTxn& txn) {
    return ModifyUser(txn, user, [&](User& u) { u.last_seen_ms = last_seen_ms; });
  });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<std::optional<OtpCode>> RocksStore::TxnOtp(WriteTxn& txn, std::string_view phone) {
  auto value = txn.Get(cf(Cf::kOtp), phone);
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<OtpCode>();
  auto code = DecodeOtp(phone, **value);
  if (!code) return std::unexpected(code.error());
  return std::optional<OtpCode>(std::move(*code));
}

Result<std::optional<Device>> RocksStore::TxnDevice(WriteTxn& txn, UserId user, DeviceId device) {
  auto value = txn.Get(cf(Cf::kDevices), U64PairKey(user, device));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<Device>();
  auto decoded = DecodeDevice(user, device, **value);
  if (!decoded) return std::unexpected(decoded.error());
  return std::optional<Device>(std::move(*decoded));
}

template <class F>
Status RocksStore::ModifyUser(WriteTxn& txn, UserId id, F modify) {
  const std::string key = U64Key(id);
  auto value = txn.Get(cf(Cf::kUsers), key);
  if (!value) return std::unexpected(value.error());
  if (!*value) return Fail(Errc::kNotFound, "no such user");
  auto user = DecodeUser(id, **value);
  if (!user) return std::unexpected(user.error());
  modify(*user);
  return txn.Put(cf(Cf::kUsers), key, EncodeUser(*user));
}

Result<SignInResult> RocksStore::ApplySignIn(WriteTxn& txn, SignInRequest& req) {
  auto code = TxnOtp(txn, req.phone);
  if (!code) return std::unexpected(code.error());
  // An expired or burned code is as gone as a missing one; the caller counts
  // the attempt or sends a new code, so nothing is written here.
  if (!*code || (*code)->code_hash != req.code_hash || (*code)->expires_ms <= req.now_ms ||
      (*code)->attempts >= req.max_otp_attempts) {
    return SignInResult{.outcome = SignInResult::Outcome::kCodeGone};
  }

  SignInResult result;
  auto existing = txn.Get(cf(Cf::kPhoneIndex), req.phone);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) {
    auto id = DecodeUserIdValue(**existing);
    if (!id) return std::unexpected(id.error());
    result.user_id = *id;
  } else {
    User user{.id = req.new_user_id, .phone = req.phone, .created_ms = req.now_ms};
    const std::string id_value = U64Key(user.id);
    for (auto s :
         {txn.Put(cf(Cf::kUsers), id_value, EncodeUser(user)),
          txn.Put(cf(Cf::kPhoneIndex), req.phone, id_value),
          req.phone_hash.empty() ? Ok()
                                 : txn.Put(cf(Cf::kPhoneHashIndex), req.phone_hash, id_value)}) {
      if (!s) return std::unexpected(s.error());
    }
    result.user_id = user.id;
    result.new_user = true;
  }

  std::uint32_t devices = 0;
  auto counted = txn.ScanPrefix(cf(Cf::kDevices), U64Key(result.user_id),
                                [&](std::string_view, std::string_view) {
                                  ++devices;
                                  return true;
                                });
  if (!counted) return std::unexpected(counted.error());
  if (devices >= req.max_devices) {
    // Nothing of this sign-in may stick: not the account, not the code's use.
    txn.Discard();
    return SignInResult{.outcome = SignInResult::Outcome::kDeviceLimit,
                        .user_id = result.new_user ? 0 : result.user_id};
  }

  // The head as of this job, rows that earlier jobs of the batch appended
  // included: the device starts after everything that existed when it joined.
  auto head = heads_.Current(result.user_id);
  if (!head) return std::unexpected(head.error());

  req.device.user_id = result.user_id;
  req.refresh.user_id = result.user_id;
  req.refresh.device_id = req.device.id;
  req.refresh.token_gen = req.device.token_gen;
  for (auto s :
       {txn.Put(cf(Cf::kDevices), U64PairKey(result.user_id, req.device.id),
                EncodeDevice(req.device)),
        txn.Put(cf(Cf::kCursors), CursorKey(result.user_id, req.device.id), EncodeSeqValue(*head)),
        txn.Put(cf(Cf::kRefreshTokens), req.refresh.hash, EncodeRefreshToken(req.refresh)),
        txn.Delete(cf(Cf::kOtp), req.phone)}) {
    if (!s) return std::unexpected(s.error());
  }
  return result;
}

Result<RotateResult> RocksStore::ApplyRotate(WriteTxn& txn, const std::string& old_hash,
                                             RefreshToken& replacement, std::int64_t now_ms) {
  using Outcome = RotateResult::Outcome;
  auto value = txn.Get(cf(Cf::kRefreshTokens), old_hash);
  if (!value) return std::unexpected(value.error());
  if (!*value) return RotateResult{.outcome = Outcome::kUnknown};
  auto old = DecodeRefreshToken(old_hash, **value);
  if (!old) return std::unexpected(old.error());

  RotateResult result{
      .user_id = old->user_id, .device_id = old->device_id, .token_gen = old->token_gen};
  if (old->expires_ms <= now_ms) {
    result.outcome = Outcome::kExpired;
    return result;
  }
  auto device = TxnDevice(txn, old->user_id, old->device_id);
  if (!device) return std::unexpected(device.error());
  if (!*device || (*device)->token_gen != old->token_gen) {
    result.outcome = Outcome::kRevoked;
    if (*device) result.token_gen = (*device)->token_gen;
    return result;
  }
  if (old->used) {
    // Someone holds a copy of a token that was already exchanged: cut off
    // every token of the device. This is a result to commit, not a failure.
    ++(*device)->token_gen;
    if (auto s = txn.Put(cf(Cf::kDevices), U64PairKey(old->user_id, old->device_id),
                         EncodeDevice(**device));
        !s) {
      return std::unexpected(s.error());
    }
    result.outcome = Outcome::kReused;
    result.token_gen = (*device)->token_gen;
    return result;
  }

  old->used = true;
  replacement.user_id = old->user_id;
  replacement.device_id = old->device_id;
  replacement.token_gen = old->token_gen;
  replacement.used = false;
  for (auto s :
       {txn.Put(cf(Cf::kRefreshTokens), old_hash, EncodeRefreshToken(*old)),
        txn.Put(cf(Cf::kRefreshTokens), replacement.hash, EncodeRefreshToken(replacement))}) {
    if (!s) return std::unexpected(s.error());
  }
  result.outcome = Outcome::kRotated;
  return result;
}

Result<RemoveDeviceResult> RocksStore::ApplyRemoveDevice(WriteTxn& txn, UserId user,
                                                         DeviceId device, std::int64_t now_ms,
                                                         const KeysChangedRenderer& render) {
  const auto key = Pair64Key(user, device);
  auto value = txn.Get(cf(Cf::kDevices), key);
  if (!value) return std::unexpected(value.error());
  if (!*value) return RemoveDeviceResult{};
  auto keys = txn.Get(cf(Cf::kDeviceKeys), key);
  if (!keys) return std::unexpected(keys.error());
  for (auto s :
       {txn.Delete(cf(Cf::kDevices), key), txn.Delete(cf(Cf::kCursors), CursorKey(user, device)),
        txn.Delete(cf(Cf::kDeviceKeys), key), DeletePrekeys(txn, user, device)}) {
    if (!s) return std::unexpected(s.error());
  }
  RemoveDeviceResult result{.removed = true};
  if (*keys) {
    // It was current: whoever encrypts for this user must drop it.
    if (auto s = AppendKeysChanged(txn, user, device, KeysChange::kRemoved, now_ms, render,
                                   result.appended);
        !s) {
      return std::unexpected(s.error());
    }
  }
  return result;
}

}  // namespace parley::store::rocks
