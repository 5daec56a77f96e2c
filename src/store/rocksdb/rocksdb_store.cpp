#include "store/rocksdb/rocksdb_store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>

#include <algorithm>
#include <utility>

#include "common/clock.hpp"
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/group_writer.hpp"
#include "store/rocksdb/schema.hpp"

namespace parley::store {
namespace {

using rocks::Cf;
using rocks::FromRocks;
using rocks::WriteTxn;

// Reports a read's latency when it goes out of scope.
class ReadTimer {
 public:
  ReadTimer(const StoreObserver& observer, std::string_view op)
      : observer_(observer), op_(op), start_(observer ? MonoSeconds() : 0.0) {}
  ~ReadTimer() {
    if (observer_) observer_(op_, MonoSeconds() - start_);
  }
  ReadTimer(const ReadTimer&) = delete;
  ReadTimer& operator=(const ReadTimer&) = delete;

 private:
  const StoreObserver& observer_;
  std::string_view op_;
  double start_;
};

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocks::Database> db, const RocksOptions& options)
      : db_(std::move(db)), observer_(options.observer) {
    if (!db_->read_only()) {
      writer_ = std::make_unique<rocks::GroupWriter>(db_->db(), options.sync, options.observer);
    }
  }

  ~RocksStore() override {
    Close();
    writer_.reset();  // before db_, which it writes to
  }

  // ---- Reads ---------------------------------------------------------------

  Result<std::optional<User>> GetUser(UserId id) override {
    ReadTimer timer(observer_, "get_user");
    return ReadUser(rocksdb::ReadOptions(), id);
  }

  Result<std::optional<User>> FindUserByPhone(std::string_view phone) override {
    ReadTimer timer(observer_, "find_user_by_phone");
    // One snapshot for the index and the row it points to.
    rocksdb::ManagedSnapshot snapshot(db_->db());
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot.snapshot();
    auto id = ReadValue(ro, Cf::kPhoneIndex, phone);
    if (!id) return std::unexpected(id.error());
    if (!*id) return std::optional<User>();
    auto user_id = rocks::DecodeUserIdValue(**id);
    if (!user_id) return std::unexpected(user_id.error());
    auto user = ReadUser(ro, *user_id);
    if (user && !*user) return Fail(Errc::kCorruption, "phone index names a missing user");
    return user;
  }

  Result<std::vector<User>> GetUsers(std::span<const UserId> ids) override {
    ReadTimer timer(observer_, "get_users");
    std::vector<std::string> keys;
    keys.reserve(ids.size());
    for (UserId id : ids) keys.push_back(rocks::U64Key(id));
    std::vector<User> users;
    auto s = MultiGet(Cf::kUsers, keys, [&](std::size_t i, std::string_view value) -> Status {
      auto user = rocks::DecodeUser(ids[i], value);
      if (!user) return std::unexpected(user.error());
      users.push_back(std::move(*user));
      return Ok();
    });
    if (!s) return std::unexpected(s.error());
    return users;
  }

  Result<std::vector<std::pair<std::string, UserId>>> FindUsersByPhoneHash(
      std::span<const std::string> hashes) override {
    ReadTimer timer(observer_, "find_users_by_phone_hash");
    std::vector<std::pair<std::string, UserId>> found;
    auto s =
        MultiGet(Cf::kPhoneHashIndex, hashes, [&](std::size_t i, std::string_view value) -> Status {
          auto id = rocks::DecodeUserIdValue(value);
          if (!id) return std::unexpected(id.error());
          found.emplace_back(hashes[i], *id);
          return Ok();
        });
    if (!s) return std::unexpected(s.error());
    return found;
  }

  Result<std::optional<Device>> GetDevice(UserId user, DeviceId device) override {
    ReadTimer timer(observer_, "get_device");
    auto value = ReadValue(rocksdb::ReadOptions(), Cf::kDevices, rocks::U64PairKey(user, device));
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<Device>();
    auto decoded = rocks::DecodeDevice(user, device, **value);
    if (!decoded) return std::unexpected(decoded.error());
    return std::optional<Device>(std::move(*decoded));
  }

  Result<std::vector<Device>> ListDevices(UserId user) override {
    ReadTimer timer(observer_, "list_devices");
    const std::string prefix = rocks::U64Key(user);
    const std::string upper = rocks::PrefixUpperBound(prefix);
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, db_->cf(Cf::kDevices)));
    std::vector<Device> devices;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto device = DecodeDeviceEntry(it->key().ToStringView(), it->value().ToStringView());
      if (!device) return std::unexpected(device.error());
      devices.push_back(std::move(*device));
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "list_devices"));
    return devices;
  }

  Result<std::optional<RefreshToken>> GetRefreshToken(std::string_view hash) override {
    ReadTimer timer(observer_, "get_refresh_token");
    auto value = ReadValue(rocksdb::ReadOptions(), Cf::kRefreshTokens, hash);
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<RefreshToken>();
    auto token = rocks::DecodeRefreshToken(hash, **value);
    if (!token) return std::unexpected(token.error());
    return std::optional<RefreshToken>(std::move(*token));
  }

  Result<std::optional<OtpCode>> GetOtp(std::string_view phone) override {
    ReadTimer timer(observer_, "get_otp");
    auto value = ReadValue(rocksdb::ReadOptions(), Cf::kOtp, phone);
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<OtpCode>();
    auto code = rocks::DecodeOtp(phone, **value);
    if (!code) return std::unexpected(code.error());
    return std::optional<OtpCode>(std::move(*code));
  }

  // ---- Writes --------------------------------------------------------------

  void PutOtp(OtpCode code, Callback<void> done) override {
    Submit<void>("put_otp", std::move(done), [this, code = std::move(code)](WriteTxn& txn) {
      return txn.Put(cf(Cf::kOtp), code.phone, rocks::EncodeOtp(code));
    });
  }

  void RecordOtpFailure(std::string phone, std::uint32_t max_attempts,
                        Callback<OtpFailure> done) override {
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
            if (auto s = txn.Put(cf(Cf::kOtp), phone, rocks::EncodeOtp(**code)); !s) {
              return std::unexpected(s.error());
            }
          }
          return failure;
        });
  }

  void SignIn(SignInRequest req, Callback<SignInResult> done) override {
    Submit<SignInResult>(
        "sign_in", std::move(done),
        [this, req = std::move(req)](WriteTxn& txn) mutable { return ApplySignIn(txn, req); });
  }

  void RotateRefreshToken(std::string old_hash, RefreshToken replacement, std::int64_t now_ms,
                          Callback<RotateResult> done) override {
    Submit<RotateResult>(
        "rotate_refresh_token", std::move(done),
        [this, old_hash = std::move(old_hash), replacement = std::move(replacement), now_ms](
            WriteTxn& txn) mutable { return ApplyRotate(txn, old_hash, replacement, now_ms); });
  }

  void RemoveDevice(UserId user, DeviceId device, Callback<bool> done) override {
    Submit<bool>("remove_device", std::move(done), [this, user, device](WriteTxn& txn) {
      return ApplyRemoveDevice(txn, user, device);
    });
  }

  void TouchDevice(UserId user, DeviceId device, std::int64_t last_active_ms,
                   Callback<void> done) override {
    Submit<void>("touch_device", std::move(done),
                 [this, user, device, last_active_ms](WriteTxn& txn) -> Status {
                   auto found = TxnDevice(txn, user, device);
                   if (!found) return std::unexpected(found.error());
                   if (!*found) return Ok();
                   (*found)->last_active_ms = last_active_ms;
                   return txn.Put(cf(Cf::kDevices), rocks::U64PairKey(user, device),
                                  rocks::EncodeDevice(**found));
                 });
  }

  void UpdateProfile(UserId user, ProfilePatch patch, Callback<void> done) override {
    Submit<void>("update_profile", std::move(done),
                 [this, user, patch = std::move(patch)](WriteTxn& txn) {
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

  void SetLastSeen(UserId user, std::int64_t last_seen_ms, Callback<void> done) override {
    Submit<void>("set_last_seen", std::move(done), [this, user, last_seen_ms](WriteTxn& txn) {
      return ModifyUser(txn, user, [&](User& u) { u.last_seen_ms = last_seen_ms; });
    });
  }

  void Close() override {
    if (writer_) writer_->Close();
  }

 private:
  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return db_->cf(which); }

  template <class T, class F>
  void Submit(std::string_view op, Callback<T> done, F body) {
    if (!writer_) {
      if (done) done(Fail(Errc::kUnavailable, "store is open read-only"));
      return;
    }
    writer_->Submit(rocks::MakeJob<T>(op, std::move(body), std::move(done)));
  }

  // ---- Read helpers ----------------------------------------------------------

  Result<std::optional<std::string>> ReadValue(const rocksdb::ReadOptions& ro, Cf which,
                                               std::string_view key) {
    std::string value;
    auto s = db_->db()->Get(ro, cf(which), key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return std::unexpected(FromRocks(s, "read"));
    return std::optional<std::string>(std::move(value));
  }

  Result<std::optional<User>> ReadUser(const rocksdb::ReadOptions& ro, UserId id) {
    auto value = ReadValue(ro, Cf::kUsers, rocks::U64Key(id));
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<User>();
    auto user = rocks::DecodeUser(id, **value);
    if (!user) return std::unexpected(user.error());
    return std::optional<User>(std::move(*user));
  }

  // Looks all keys up in one call and hands each one found, with its index
  // in `keys`, to `found`, in order.
  template <class F>
  Status MultiGet(Cf which, std::span<const std::string> keys, F found) {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->db()->MultiGet(rocksdb::ReadOptions(), cf(which), slices.size(), slices.data(),
                        values.data(), statuses.data());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) return std::unexpected(FromRocks(statuses[i], "multi_get"));
      if (auto s = found(i, values[i].ToStringView()); !s) return s;
    }
    return Ok();
  }

  static Result<Device> DecodeDeviceEntry(std::string_view key, std::string_view value) {
    auto ids = rocks::ParseU64PairKey(key);
    if (!ids) return Fail(Errc::kCorruption, "malformed device key");
    return rocks::DecodeDevice(ids->first, ids->second, value);
  }

  // ---- Write helpers (inside a job) ----------------------------------------

  Result<std::optional<OtpCode>> TxnOtp(WriteTxn& txn, std::string_view phone) {
    auto value = txn.Get(cf(Cf::kOtp), phone);
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<OtpCode>();
    auto code = rocks::DecodeOtp(phone, **value);
    if (!code) return std::unexpected(code.error());
    return std::optional<OtpCode>(std::move(*code));
  }

  Result<std::optional<Device>> TxnDevice(WriteTxn& txn, UserId user, DeviceId device) {
    auto value = txn.Get(cf(Cf::kDevices), rocks::U64PairKey(user, device));
    if (!value) return std::unexpected(value.error());
    if (!*value) return std::optional<Device>();
    auto decoded = rocks::DecodeDevice(user, device, **value);
    if (!decoded) return std::unexpected(decoded.error());
    return std::optional<Device>(std::move(*decoded));
  }

  template <class F>
  Status ModifyUser(WriteTxn& txn, UserId id, F modify) {
    const std::string key = rocks::U64Key(id);
    auto value = txn.Get(cf(Cf::kUsers), key);
    if (!value) return std::unexpected(value.error());
    if (!*value) return Fail(Errc::kNotFound, "no such user");
    auto user = rocks::DecodeUser(id, **value);
    if (!user) return std::unexpected(user.error());
    modify(*user);
    return txn.Put(cf(Cf::kUsers), key, rocks::EncodeUser(*user));
  }

  Result<SignInResult> ApplySignIn(WriteTxn& txn, SignInRequest& req) {
    auto code = TxnOtp(txn, req.phone);
    if (!code) return std::unexpected(code.error());
    if (!*code || (*code)->code_hash != req.code_hash) {
      return SignInResult{.outcome = SignInResult::Outcome::kCodeGone};
    }

    SignInResult result;
    auto existing = txn.Get(cf(Cf::kPhoneIndex), req.phone);
    if (!existing) return std::unexpected(existing.error());
    if (*existing) {
      auto id = rocks::DecodeUserIdValue(**existing);
      if (!id) return std::unexpected(id.error());
      result.user_id = *id;
    } else {
      User user{.id = req.new_user_id, .phone = req.phone, .created_ms = req.now_ms};
      const std::string id_value = rocks::U64Key(user.id);
      for (auto s :
           {txn.Put(cf(Cf::kUsers), id_value, rocks::EncodeUser(user)),
            txn.Put(cf(Cf::kPhoneIndex), req.phone, id_value),
            req.phone_hash.empty() ? Ok()
                                   : txn.Put(cf(Cf::kPhoneHashIndex), req.phone_hash, id_value)}) {
        if (!s) return std::unexpected(s.error());
      }
      result.user_id = user.id;
      result.new_user = true;
    }

    std::uint32_t devices = 0;
    auto counted = txn.ScanPrefix(cf(Cf::kDevices), rocks::U64Key(result.user_id),
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

    req.device.user_id = result.user_id;
    req.refresh.user_id = result.user_id;
    req.refresh.device_id = req.device.id;
    req.refresh.token_gen = req.device.token_gen;
    for (auto s :
         {txn.Put(cf(Cf::kDevices), rocks::U64PairKey(result.user_id, req.device.id),
                  rocks::EncodeDevice(req.device)),
          txn.Put(cf(Cf::kRefreshTokens), req.refresh.hash, rocks::EncodeRefreshToken(req.refresh)),
          txn.Delete(cf(Cf::kOtp), req.phone)}) {
      if (!s) return std::unexpected(s.error());
    }
    return result;
  }

  Result<RotateResult> ApplyRotate(WriteTxn& txn, const std::string& old_hash,
                                   RefreshToken& replacement, std::int64_t now_ms) {
    using Outcome = RotateResult::Outcome;
    auto value = txn.Get(cf(Cf::kRefreshTokens), old_hash);
    if (!value) return std::unexpected(value.error());
    if (!*value) return RotateResult{.outcome = Outcome::kUnknown};
    auto old = rocks::DecodeRefreshToken(old_hash, **value);
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
      if (auto s = txn.Put(cf(Cf::kDevices), rocks::U64PairKey(old->user_id, old->device_id),
                           rocks::EncodeDevice(**device));
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
    for (auto s : {txn.Put(cf(Cf::kRefreshTokens), old_hash, rocks::EncodeRefreshToken(*old)),
                   txn.Put(cf(Cf::kRefreshTokens), replacement.hash,
                           rocks::EncodeRefreshToken(replacement))}) {
      if (!s) return std::unexpected(s.error());
    }
    result.outcome = Outcome::kRotated;
    return result;
  }

  Result<bool> ApplyRemoveDevice(WriteTxn& txn, UserId user, DeviceId device) {
    const std::string key = rocks::U64PairKey(user, device);
    auto value = txn.Get(cf(Cf::kDevices), key);
    if (!value) return std::unexpected(value.error());
    if (!*value) return false;
    if (auto s = txn.Delete(cf(Cf::kDevices), key); !s) return std::unexpected(s.error());
    return true;
  }

  std::unique_ptr<rocks::Database> db_;
  StoreObserver observer_;
  std::unique_ptr<rocks::GroupWriter> writer_;  // null when read-only
};

}  // namespace

Result<std::unique_ptr<Store>> OpenRocksStore(const RocksOptions& options) {
  auto db = rocks::Database::Open(options.path, options.read_only);
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<Store>(std::make_unique<RocksStore>(std::move(*db), options));
}

}  // namespace parley::store
