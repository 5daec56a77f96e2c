// Users, devices, refresh tokens and one-time codes.
#include <utility>

#include "common/ids.hpp"
#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {
namespace {

User UserAt(const Rows& r, int i) {
  return User{.id = r.U64(i, 0),
              .phone = r.Bytes(i, 1),
              .created_ms = r.I64(i, 2),
              .name = r.Bytes(i, 3),
              .status_text = r.Bytes(i, 4),
              .avatar_media_id = r.Bytes(i, 5),
              .last_seen_visibility = r.Bytes(i, 6),
              .last_seen_ms = r.I64(i, 7)};
}

Device DeviceAt(const Rows& r, int i) {
  return Device{.user_id = r.U64(i, 0),
                .id = r.U64(i, 1),
                .name = r.Bytes(i, 2),
                .platform = r.Bytes(i, 3),
                .created_ms = r.I64(i, 4),
                .last_active_ms = r.I64(i, 5),
                .token_gen = static_cast<std::uint32_t>(r.I64(i, 6))};
}

RefreshToken TokenAt(const Rows& r, int i) {
  return RefreshToken{.hash = r.Bytes(i, 0),
                      .user_id = r.U64(i, 1),
                      .device_id = r.U64(i, 2),
                      .token_gen = static_cast<std::uint32_t>(r.I64(i, 3)),
                      .expires_ms = r.I64(i, 4),
                      .used = r.Bool(i, 5)};
}

OtpCode OtpAt(const Rows& r, int i) {
  return OtpCode{.phone = r.Bytes(i, 0),
                 .code_hash = r.Bytes(i, 1),
                 .expires_ms = r.I64(i, 2),
                 .attempts = static_cast<std::uint32_t>(r.I64(i, 3))};
}

#define PG_USER_SELECT(where)                                                                     \
  "SELECT user_id, phone, created_ms, name, status_text, avatar_media_id, last_seen_visibility, " \
  "last_seen_ms FROM users " where
#define PG_DEVICE_SELECT(where)                                                            \
  "SELECT user_id, device_id, name, platform, created_ms, last_active_ms, token_gen FROM " \
  "devices " where

Params& PutUser(Params& p, const User& u) {
  return p.U64(u.id)
      .Bytes(u.phone)
      .I64(u.created_ms)
      .Bytes(u.name)
      .Bytes(u.status_text)
      .Bytes(u.avatar_media_id)
      .Bytes(u.last_seen_visibility)
      .I64(u.last_seen_ms);
}

constexpr const char* kUpsertDevice =
    "INSERT INTO devices (user_id, device_id, name, platform, created_ms, last_active_ms, "
    "token_gen) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, device_id) DO UPDATE "
    "SET name = excluded.name, platform = excluded.platform, created_ms = excluded.created_ms, "
    "last_active_ms = excluded.last_active_ms, token_gen = excluded.token_gen";

Params DeviceParams(const Device& d) {
  Params p;
  p.U64(d.user_id)
      .U64(d.id)
      .Bytes(d.name)
      .Bytes(d.platform)
      .I64(d.created_ms)
      .I64(d.last_active_ms)
      .I64(d.token_gen);
  return p;
}

constexpr const char* kUpsertToken =
    "INSERT INTO refresh_tokens (hash, user_id, device_id, token_gen, expires_ms, used) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO UPDATE SET user_id = "
    "excluded.user_id, device_id = excluded.device_id, token_gen = excluded.token_gen, "
    "expires_ms = excluded.expires_ms, used = excluded.used";

Params TokenParams(const RefreshToken& t) {
  Params p;
  p.Bytes(t.hash).U64(t.user_id).U64(t.device_id).I64(t.token_gen).I64(t.expires_ms).Bool(t.used);
  return p;
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<std::optional<User>> PgStore::GetUser(UserId id) {
  ReadTimer timer(observer_, "get_user");
  auto r = reads_->Exec(PG_USER_SELECT("WHERE user_id = $1"), Params().U64(id));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<User>();
  return std::optional<User>(UserAt(*r, 0));
}

Result<std::optional<User>> PgStore::FindUserByPhone(std::string_view phone) {
  ReadTimer timer(observer_, "find_user_by_phone");
  auto r = reads_->Exec(PG_USER_SELECT("WHERE phone = $1"), Params().Bytes(phone));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<User>();
  return std::optional<User>(UserAt(*r, 0));
}

Result<std::vector<User>> PgStore::GetUsers(std::span<const UserId> ids) {
  ReadTimer timer(observer_, "get_users");
  std::vector<User> users;
  if (ids.empty()) return users;
  auto r = reads_->Exec(
      "SELECT u.user_id, u.phone, u.created_ms, u.name, u.status_text, u.avatar_media_id, "
      "u.last_seen_visibility, u.last_seen_ms FROM unnest($1::int8[]) WITH ORDINALITY AS a(id, n) "
      "JOIN users u ON u.user_id = a.id ORDER BY a.n",
      Params().U64Array(ids));
  if (!r) return Failed(r);
  for (int i = 0; i < r->size(); ++i) users.push_back(UserAt(*r, i));
  return users;
}

Result<std::vector<std::pair<std::string, UserId>>> PgStore::FindUsersByPhoneHash(
    std::span<const std::string> hashes) {
  ReadTimer timer(observer_, "find_users_by_phone_hash");
  std::vector<std::pair<std::string, UserId>> found;
  for (const auto& h : hashes) {
    auto r =
        reads_->Exec("SELECT user_id FROM users WHERE phone_hash = $1 LIMIT 1", Params().Bytes(h));
    if (!r) return Failed(r);
    if (!r->empty()) found.emplace_back(h, r->U64(0, 0));
  }
  return found;
}

Result<std::optional<Device>> PgStore::GetDevice(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_device");
  auto r = reads_->Exec(PG_DEVICE_SELECT("WHERE user_id = $1 AND device_id = $2"),
                        Params().U64(user).U64(device));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<Device>();
  return std::optional<Device>(DeviceAt(*r, 0));
}

Result<std::vector<Device>> PgStore::ListDevices(UserId user) {
  ReadTimer timer(observer_, "list_devices");
  auto r =
      reads_->Exec(PG_DEVICE_SELECT("WHERE user_id = $1 ORDER BY device_id"), Params().U64(user));
  if (!r) return Failed(r);
  std::vector<Device> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(DeviceAt(*r, i));
  return out;
}

Result<std::optional<RefreshToken>> PgStore::GetRefreshToken(std::string_view hash) {
  ReadTimer timer(observer_, "get_refresh_token");
  auto r = reads_->Exec(
      "SELECT hash, user_id, device_id, token_gen, expires_ms, used FROM refresh_tokens "
      "WHERE hash = $1",
      Params().Bytes(hash));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<RefreshToken>();
  return std::optional<RefreshToken>(TokenAt(*r, 0));
}

Result<std::optional<OtpCode>> PgStore::GetOtp(std::string_view phone) {
  ReadTimer timer(observer_, "get_otp");
  auto r = reads_->Exec("SELECT phone, code_hash, expires_ms, attempts FROM otp WHERE phone = $1",
                        Params().Bytes(phone));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<OtpCode>();
  return std::optional<OtpCode>(OtpAt(*r, 0));
}

// ---- Writes --------------------------------------------------------------------

void PgStore::PutOtp(OtpCode code, Callback<void> done) {
  Submit<void>("put_otp", {}, std::move(done), [code = std::move(code)](Tx& tx) -> Status {
    tx.Write(
        "INSERT INTO otp (phone, code_hash, expires_ms, attempts) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, "
        "expires_ms = excluded.expires_ms, attempts = excluded.attempts",
        Params().Bytes(code.phone).Bytes(code.code_hash).I64(code.expires_ms).I64(code.attempts));
    return Ok();
  });
}

void PgStore::RecordOtpFailure(std::string phone, std::uint32_t max_attempts,
                               Callback<OtpFailure> done) {
  Submit<OtpFailure>("record_otp_failure", {}, std::move(done),
                     [phone = std::move(phone), max_attempts](Tx& tx) -> Result<OtpFailure> {
                       auto r = tx.Read("SELECT attempts FROM otp WHERE phone = $1 FOR UPDATE",
                                        Params().Bytes(phone));
                       if (!r) return Failed(r);
                       if (r->empty()) return OtpFailure{.missing = true};
                       OtpFailure failure{.attempts = static_cast<std::uint32_t>(r->I64(0, 0)) + 1};
                       if (failure.attempts >= max_attempts) {
                         failure.burned = true;
                         tx.Write("DELETE FROM otp WHERE phone = $1", Params().Bytes(phone));
                       } else {
                         tx.Write("UPDATE otp SET attempts = $2 WHERE phone = $1",
                                  Params().Bytes(phone).I64(failure.attempts));
                       }
                       return failure;
                     });
}

void PgStore::SignIn(SignInRequest req, Callback<SignInResult> done) {
  Submit<SignInResult>(
      "sign_in", {}, std::move(done),
      [this, req = std::move(req)](Tx& tx) mutable { return ApplySignIn(tx, req); });
}

void PgStore::RotateRefreshToken(std::string old_hash, RefreshToken replacement,
                                 std::int64_t now_ms, Callback<RotateResult> done) {
  Submit<RotateResult>(
      "rotate_refresh_token", {}, std::move(done),
      [this, old_hash = std::move(old_hash), replacement = std::move(replacement),
       now_ms](Tx& tx) mutable { return ApplyRotate(tx, old_hash, replacement, now_ms); });
}

void PgStore::RemoveDevice(UserId user, DeviceId device, std::int64_t now_ms,
                           KeysChangedRenderer render, Callback<RemoveDeviceResult> done) {
  Submit<RemoveDeviceResult>("remove_device", {user}, std::move(done),
                             [this, user, device, now_ms, render = std::move(render)](Tx& tx) {
                               return ApplyRemoveDevice(tx, user, device, now_ms, render);
                             });
}

void PgStore::TouchDevice(UserId user, DeviceId device, std::int64_t last_active_ms,
                          Callback<void> done) {
  Submit<void>(
      "touch_device", {}, std::move(done), [user, device, last_active_ms](Tx& tx) -> Status {
        // A missing device is not an error: the update then changes nothing.
        tx.Write("UPDATE devices SET last_active_ms = $3 WHERE user_id = $1 AND device_id = $2",
                 Params().U64(user).U64(device).I64(last_active_ms));
        return Ok();
      });
}

void PgStore::UpdateProfile(UserId user, ProfilePatch patch, Callback<void> done) {
  Submit<void>("update_profile", {}, std::move(done),
               [this, user, patch = std::move(patch)](Tx& tx) -> Status {
                 auto r =
                     tx.Read(PG_USER_SELECT("WHERE user_id = $1 FOR UPDATE"), Params().U64(user));
                 if (!r) return Failed(r);
                 if (r->empty()) return Fail(Errc::kNotFound, "no such user");
                 User u = UserAt(*r, 0);
                 // An avatar is readable by anyone signed in.
                 if (patch.avatar_media_id && !patch.avatar_media_id->empty()) {
                   GrantMedia(tx, *patch.avatar_media_id, 0);
                 }
                 if (patch.name) u.name = *patch.name;
                 if (patch.status_text) u.status_text = *patch.status_text;
                 if (patch.avatar_media_id) u.avatar_media_id = *patch.avatar_media_id;
                 if (patch.last_seen_visibility)
                   u.last_seen_visibility = *patch.last_seen_visibility;
                 tx.Write(
                     "UPDATE users SET name = $2, status_text = $3, avatar_media_id = $4, "
                     "last_seen_visibility = $5 WHERE user_id = $1",
                     Params()
                         .U64(user)
                         .Bytes(u.name)
                         .Bytes(u.status_text)
                         .Bytes(u.avatar_media_id)
                         .Bytes(u.last_seen_visibility));
                 return Ok();
               });
}

void PgStore::SetLastSeen(UserId user, std::int64_t last_seen_ms, Callback<void> done) {
  Submit<void>("set_last_seen", {}, std::move(done), [user, last_seen_ms](Tx& tx) -> Status {
    auto r = tx.Read("SELECT 1 FROM users WHERE user_id = $1", Params().U64(user));
    if (!r) return Failed(r);
    if (r->empty()) return Fail(Errc::kNotFound, "no such user");
    tx.Write("UPDATE users SET last_seen_ms = $2 WHERE user_id = $1",
             Params().U64(user).I64(last_seen_ms));
    return Ok();
  });
}

// ---- Write helpers (inside a job) ----------------------------------------------

void PgStore::GrantMedia(Tx& tx, std::string_view media_id, UserId user) {
  auto id = ParseId(media_id);
  if (!id) return;  // not a media id this store made: nothing to grant
  tx.Write("INSERT INTO media_access (media_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
           Params().U64(*id).U64(user));
}

Result<std::optional<Device>> PgStore::TxnDevice(Tx& tx, UserId user, DeviceId device) {
  auto r = tx.Read(PG_DEVICE_SELECT("WHERE user_id = $1 AND device_id = $2 FOR UPDATE"),
                   Params().U64(user).U64(device));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<Device>();
  return std::optional<Device>(DeviceAt(*r, 0));
}

Result<SignInResult> PgStore::ApplySignIn(Tx& tx, SignInRequest& req) {
  auto code = tx.Read(
      "SELECT phone, code_hash, expires_ms, attempts FROM otp WHERE phone = $1 "
      "FOR UPDATE",
      Params().Bytes(req.phone));
  if (!code) return Failed(code);
  if (code->empty()) return SignInResult{.outcome = SignInResult::Outcome::kCodeGone};
  const OtpCode stored = OtpAt(*code, 0);
  // An expired or burned code is as gone as a missing one.
  if (stored.code_hash != req.code_hash || stored.expires_ms <= req.now_ms ||
      stored.attempts >= req.max_otp_attempts) {
    return SignInResult{.outcome = SignInResult::Outcome::kCodeGone};
  }

  SignInResult result;
  auto existing = tx.Read("SELECT user_id FROM users WHERE phone = $1", Params().Bytes(req.phone));
  if (!existing) return Failed(existing);
  std::uint32_t devices = 0;
  if (!existing->empty()) {
    result.user_id = existing->U64(0, 0);
    auto counted =
        tx.Read("SELECT count(*) FROM devices WHERE user_id = $1", Params().U64(result.user_id));
    if (!counted) return Failed(counted);
    devices = static_cast<std::uint32_t>(counted->I64(0, 0));
  } else {
    result.user_id = req.new_user_id;
    result.new_user = true;
  }
  if (devices >= req.max_devices) {
    // Nothing of this sign-in may stick: not the account, not the code's use.
    return SignInResult{.outcome = SignInResult::Outcome::kDeviceLimit,
                        .user_id = result.new_user ? 0 : result.user_id};
  }
  if (result.new_user) {
    User user{.id = req.new_user_id, .phone = req.phone, .created_ms = req.now_ms};
    Params p;
    PutUser(p, user).Bytes(req.phone_hash);
    tx.Write(
        "INSERT INTO users (user_id, phone, created_ms, name, status_text, avatar_media_id, "
        "last_seen_visibility, last_seen_ms, phone_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "NULLIF($9, ''::bytea))",
        std::move(p));
  }
  // The head as of this job: the device starts after everything that
  // existed when it joined.
  auto head = tx.Head(result.user_id);
  if (!head) return Failed(head);

  req.device.user_id = result.user_id;
  req.refresh.user_id = result.user_id;
  req.refresh.device_id = req.device.id;
  req.refresh.token_gen = req.device.token_gen;
  tx.Write(kUpsertDevice, DeviceParams(req.device));
  tx.Write(
      "INSERT INTO cursors (user_id, device_id, seq) VALUES ($1, $2, $3) ON CONFLICT "
      "(user_id, device_id) DO UPDATE SET seq = excluded.seq",
      Params().U64(result.user_id).U64(req.device.id).U64(*head));
  tx.Write(kUpsertToken, TokenParams(req.refresh));
  tx.Write("DELETE FROM otp WHERE phone = $1", Params().Bytes(req.phone));
  return result;
}

Result<RotateResult> PgStore::ApplyRotate(Tx& tx, const std::string& old_hash,
                                          RefreshToken& replacement, std::int64_t now_ms) {
  using Outcome = RotateResult::Outcome;
  auto r = tx.Read(
      "SELECT hash, user_id, device_id, token_gen, expires_ms, used FROM refresh_tokens "
      "WHERE hash = $1 FOR UPDATE",
      Params().Bytes(old_hash));
  if (!r) return Failed(r);
  if (r->empty()) return RotateResult{.outcome = Outcome::kUnknown};
  RefreshToken old = TokenAt(*r, 0);

  RotateResult result{
      .user_id = old.user_id, .device_id = old.device_id, .token_gen = old.token_gen};
  if (old.expires_ms <= now_ms) {
    result.outcome = Outcome::kExpired;
    return result;
  }
  auto device = TxnDevice(tx, old.user_id, old.device_id);
  if (!device) return Failed(device);
  if (!*device || (*device)->token_gen != old.token_gen) {
    result.outcome = Outcome::kRevoked;
    if (*device) result.token_gen = (*device)->token_gen;
    return result;
  }
  if (old.used) {
    // Someone holds a copy of a token that was already exchanged: cut off
    // every token of the device. This is a result to commit, not a failure.
    ++(*device)->token_gen;
    tx.Write("UPDATE devices SET token_gen = $3 WHERE user_id = $1 AND device_id = $2",
             Params().U64(old.user_id).U64(old.device_id).I64((*device)->token_gen));
    result.outcome = Outcome::kReused;
    result.token_gen = (*device)->token_gen;
    return result;
  }

  replacement.user_id = old.user_id;
  replacement.device_id = old.device_id;
  replacement.token_gen = old.token_gen;
  replacement.used = false;
  tx.Write("UPDATE refresh_tokens SET used = true WHERE hash = $1", Params().Bytes(old_hash));
  tx.Write(kUpsertToken, TokenParams(replacement));
  result.outcome = Outcome::kRotated;
  return result;
}

Result<RemoveDeviceResult> PgStore::ApplyRemoveDevice(Tx& tx, UserId user, DeviceId device,
                                                      std::int64_t now_ms,
                                                      const KeysChangedRenderer& render) {
  auto found = TxnDevice(tx, user, device);
  if (!found) return Failed(found);
  if (!*found) return RemoveDeviceResult{};
  auto keys = tx.Read("SELECT 1 FROM device_keys WHERE user_id = $1 AND device_id = $2",
                      Params().U64(user).U64(device));
  if (!keys) return Failed(keys);
  RemoveDeviceResult result{.removed = true};
  if (!keys->empty()) {
    // It was current: whoever encrypts for this user must drop it.
    auto current = TxnCurrentDevices(tx, user);
    if (!current) return Failed(current);
    std::erase(*current, device);
    if (auto s = AppendKeysChanged(tx, user, device, KeysChange::kRemoved, std::move(*current),
                                   now_ms, render, result.appended);
        !s) {
      return Failed(s);
    }
  }
  const Params ids = Params().U64(user).U64(device);
  tx.Write("DELETE FROM devices WHERE user_id = $1 AND device_id = $2", ids);
  tx.Write("DELETE FROM cursors WHERE user_id = $1 AND device_id = $2", ids);
  tx.Write("DELETE FROM device_keys WHERE user_id = $1 AND device_id = $2", ids);
  tx.Write("DELETE FROM prekeys WHERE user_id = $1 AND device_id = $2", ids);
  return result;
}

}  // namespace parley::store::pg
