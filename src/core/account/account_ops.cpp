// Ops on the account itself: devices, profiles, contact discovery.
#include <algorithm>
#include <unordered_map>

#include "common/clock.hpp"
#include "core/account/e2ee.hpp"
#include "core/session/session.hpp"
#include "core/session/session_limits.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {

constexpr std::size_t kMaxProfileUsers = 500;
constexpr std::size_t kMaxDiscoverHashes = 1000;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxStatusLength = 140;

bool IsLowerHexSha256(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool ValidVisibility(std::string_view v) {
  return v == "everyone" || v == "contacts" || v == "nobody";
}

}  // namespace

void Session::DevicesList(const json::object&, const Rid& rid) {
  auto devices = core_.store.ListDevices(identity_.user);
  if (!devices) return StoreError(rid, devices.error(), "list_devices");
  json::array list;
  for (const auto& d : *devices) {
    json::object o;
    o["device_id"] = IdToString(d.id);
    o["name"] = d.name;
    o["platform"] = d.platform;
    o["last_active_ms"] = d.last_active_ms;
    o["current"] = d.id == identity_.device;
    list.push_back(std::move(o));
  }
  json::object result;
  result["devices"] = std::move(list);
  Ok(rid, std::move(result));
}

void Session::DevicesRemove(const json::object& req, const Rid& rid) {
  auto device = proto::GetId(req, "device_id");
  if (!device) return Error(rid, code::kBadRequest, device.error().message);
  const store::UserId user = identity_.user;
  const store::DeviceId target = *device;
  // An op that writes (fairness.hpp), and one whose keys_changed event goes
  // to every contact when the device held keys: that fan-out is its cost.
  if (OverLimit(core_.write_limiter, rid)) return;
  auto keys = core_.store.GetDeviceKeys(user, target);
  if (!keys) return StoreError(rid, keys.error(), "get_device_keys");
  if (*keys) {
    auto contacts = core_.store.ListContacts(user);
    if (!contacts) return StoreError(rid, contacts.error(), "list_contacts");
    if (OverLimit(core_.fanout_limiter, rid, static_cast<double>(contacts->size()) + 1)) return;
  }
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  auto self = shared_from_this();
  core_.store.RemoveDevice(user, target, NowMs(), RenderKeysChanged,
                           [self, rid, user, target, ticket](Result<store::RemoveDeviceResult> r) {
                             ticket->Done();
                             if (!r) return self->StoreError(rid, r.error(), "remove_device");
                             // Another user's device looks exactly like one that does not exist.
                             if (!r->removed)
                               return self->Error(rid, code::kNotFound, "no such device");
                             self->core_.Wake(r->appended);
                             // Here or on whichever node holds it (4403).
                             self->core_.CloseDevice(user, target, bus::Control::Kind::kRemoved);
                             self->core_.AnnounceDevice(user, target, "removed", "",
                                                        [self, rid] { self->Ok(rid); });
                           });
}

void Session::ProfileGet(const json::object& req, const Rid& rid) {
  auto users = proto::GetArray(req, "users", kMaxProfileUsers);
  if (!users) return Error(rid, code::kBadRequest, users.error().message);
  std::vector<store::UserId> ids;
  ids.reserve((*users)->size());
  for (const auto& v : **users) {
    auto id = v.is_string() ? ParseId(v.get_string()) : std::nullopt;
    if (!id) return Error(rid, code::kBadRequest, "users: must be a list of user ids");
    ids.push_back(*id);
  }
  if (RefusedByLimit(*this, core_.abuse.lookups, core_.config.lookup_burst,
                     static_cast<double>(ids.size()), rid, "too many profile lookups")) {
    return;
  }
  auto found = core_.store.GetUsers(ids);
  if (!found) return StoreError(rid, found.error(), "get_users");
  json::array profiles;
  for (const auto& u : *found) {
    json::object p;
    p["user"] = IdToString(u.id);
    p["name"] = u.name;
    p["status_text"] = u.status_text;
    p["avatar_media_id"] =
        u.avatar_media_id.empty() ? json::value(nullptr) : json::value(u.avatar_media_id);
    // last_seen_visibility as for presence: everyone, the contacts the user
    // chose (someone it wrote to), or nobody.
    if (core_.CanSeeLastSeen(u, identity_.user)) {
      const std::int64_t seen = core_.presence.LastSeen(u);
      if (seen > 0) p["last_seen_ms"] = seen;
    }
    profiles.push_back(std::move(p));
  }
  json::object result;
  result["profiles"] = std::move(profiles);
  Ok(rid, std::move(result));
}

void Session::ProfileSet(const json::object& req, const Rid& rid) {
  store::ProfilePatch patch;
  auto name = proto::GetOptString(req, "name", kMaxNameLength);
  if (!name) return Error(rid, code::kBadRequest, name.error().message);
  auto status = proto::GetOptString(req, "status_text", kMaxStatusLength);
  if (!status) return Error(rid, code::kBadRequest, status.error().message);
  auto avatar = proto::GetOptId(req, "avatar_media_id");
  if (!avatar) return Error(rid, code::kBadRequest, avatar.error().message);
  auto visibility = proto::GetOptString(req, "last_seen_visibility", 16);
  if (!visibility) return Error(rid, code::kBadRequest, visibility.error().message);
  if (*visibility && !ValidVisibility(**visibility)) {
    return Error(rid, code::kBadRequest, "last_seen_visibility: one of everyone, contacts, nobody");
  }
  if (*name) patch.name = std::string(**name);
  if (*status) patch.status_text = std::string(**status);
  if (*avatar) {
    // Making media an avatar makes it readable by anyone: only one's own (or
    // what one may read already) qualifies.
    auto may = core_.MayReadMedia(IdToString(**avatar), identity_.user);
    if (!may) return StoreError(rid, may.error(), "get_media");
    if (!*may) return Error(rid, code::kNotFound, "avatar_media_id: no such media");
    patch.avatar_media_id = IdToString(**avatar);
  }
  if (*visibility) patch.last_seen_visibility = std::string(**visibility);
  if (OverLimit(core_.write_limiter, rid)) return;
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  auto self = shared_from_this();
  core_.store.UpdateProfile(identity_.user, std::move(patch), [self, rid, ticket](Status st) {
    ticket->Done();
    if (!st) return self->StoreError(rid, st.error(), "update_profile");
    self->Ok(rid);
  });
}

void Session::ContactsDiscover(const json::object& req, const Rid& rid) {
  auto hashes = proto::GetArray(req, "hashes", kMaxDiscoverHashes);
  if (!hashes) return Error(rid, code::kBadRequest, hashes.error().message);
  std::vector<std::string> wanted;
  wanted.reserve((*hashes)->size());
  for (const auto& v : **hashes) {
    if (!v.is_string() || !IsLowerHexSha256(v.get_string())) {
      return Error(rid, code::kBadRequest,
                   "hashes: each must be the lowercase hex SHA-256 of an E.164 number");
    }
    wanted.emplace_back(v.get_string());
  }
  if (RefusedByLimit(*this, core_.abuse.lookups, core_.config.lookup_burst,
                     static_cast<double>(wanted.size()), rid, "too many contact lookups")) {
    return;
  }
  const std::int64_t wait_ms = core_.contacts_per_day.Take(
      IdToString(identity_.user), NowMs(), static_cast<std::uint64_t>(wanted.size()));
  if (wait_ms > 0) {
    json::object extra;
    extra["retry_after_ms"] = wait_ms;
    return Error(rid, code::kRateLimited, "contact discovery quota for today is used up",
                 std::move(extra));
  }
  auto matches = core_.store.FindUsersByPhoneHash(wanted);
  if (!matches) return StoreError(rid, matches.error(), "find_users_by_phone_hash");
  std::vector<store::UserId> ids;
  for (const auto& [_, id] : *matches) ids.push_back(id);
  auto users = core_.store.GetUsers(ids);
  if (!users) return StoreError(rid, users.error(), "get_users");
  std::unordered_map<store::UserId, const store::User*> by_id;
  for (const auto& u : *users) by_id.emplace(u.id, &u);
  json::array out;
  for (const auto& [hash, id] : *matches) {
    auto it = by_id.find(id);
    const store::User* u = it == by_id.end() ? nullptr : it->second;
    json::object m;
    m["hash"] = hash;
    m["user_id"] = IdToString(id);
    m["name"] = u != nullptr ? u->name : "";
    m["avatar_media_id"] = (u == nullptr || u->avatar_media_id.empty())
                               ? json::value(nullptr)
                               : json::value(u->avatar_media_id);
    out.push_back(std::move(m));
  }
  json::object result;
  result["matches"] = std::move(out);
  Ok(rid, std::move(result));
}

}  // namespace parley::core
