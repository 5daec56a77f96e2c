// The key directory ops (PROTOCOL.md section 4): keys.upload, keys.bundle,
// keys.count. Keys are public halves in standard base64; the server checks
// their sizes and never uses them.
#include <set>

#include "common/clock.hpp"
#include "core/account/e2ee.hpp"
#include "core/session/session.hpp"
#include "core/session/session_limits.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {

constexpr std::size_t kMaxPrekeysPerUpload = 100;
constexpr std::uint32_t kMaxPrekeysStored = 1000;
constexpr std::size_t kSignatureBytes = 64;

// A public key: 32 bytes of Curve25519, or 33 with libsignal's type byte.
bool IsPublicKey(const json::value& v) {
  if (!v.is_string()) return false;
  auto n = Base64DecodedSize(v.get_string());
  return n && (*n == 32 || *n == 33);
}

// An id of 0 to 2^32-1: a decimal string, as the contract wants every id to
// be, or (for compatibility) a JSON integer.
std::optional<std::uint32_t> U32(const json::value& v) {
  if (v.is_string()) {
    const auto& s = v.get_string();
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (n > UINT32_MAX) return std::nullopt;
    return static_cast<std::uint32_t>(n);
  }
  if (!v.is_int64() && !v.is_uint64()) return std::nullopt;
  if (v.is_int64() && (v.get_int64() < 0 || v.get_int64() > UINT32_MAX)) return std::nullopt;
  if (v.is_uint64() && v.get_uint64() > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(v.is_int64() ? v.get_int64()
                                                 : static_cast<std::int64_t>(v.get_uint64()));
}

// {id, key} (and signature for a signed prekey); the error names the field.
std::expected<store::SignedPrekey, std::string> ParsePrekey(const json::value& v,
                                                            std::string_view field,
                                                            bool with_signature) {
  const std::string name(field);
  if (!v.is_object()) return std::unexpected(name + ": must be an object");
  const auto& o = v.get_object();
  store::SignedPrekey p;
  auto id = o.find("id");
  auto parsed = id == o.end() ? std::nullopt : U32(id->value());
  if (!parsed) return std::unexpected(name + ".id: an id from \"0\" to \"4294967295\"");
  p.id = *parsed;
  auto key = o.find("key");
  if (key == o.end() || !IsPublicKey(key->value())) {
    return std::unexpected(name + ".key: base64 of a 32- or 33-byte public key");
  }
  p.key = std::string(key->value().get_string());
  if (with_signature) {
    auto sig = o.find("signature");
    if (sig == o.end() || !sig->value().is_string() ||
        Base64DecodedSize(sig->value().get_string()) != kSignatureBytes) {
      return std::unexpected(name + ".signature: base64 of a 64-byte signature");
    }
    p.signature = std::string(sig->value().get_string());
  }
  return p;
}

json::object PrekeyJson(std::uint32_t id, const std::string& key) {
  return json::object{{"id", std::to_string(id)}, {"key", key}};
}

json::object BundleJson(const store::PrekeyBundle& b) {
  json::object d;
  d["device_id"] = IdToString(b.keys.device);
  if (b.keys.registration_id) d["registration_id"] = std::to_string(*b.keys.registration_id);
  d["identity_key"] = b.keys.identity_key;
  d["signed_prekey"] = json::object{{"id", std::to_string(b.keys.signed_prekey.id)},
                                    {"key", b.keys.signed_prekey.key},
                                    {"signature", b.keys.signed_prekey.signature}};
  if (b.one_time_prekey) {
    d["one_time_prekey"] = PrekeyJson(b.one_time_prekey->id, b.one_time_prekey->key);
  }
  return d;
}

}  // namespace

void Session::KeysUpload(const json::object& req, const Rid& rid) {
  store::KeysUpload up;
  up.user = identity_.user;
  up.device = identity_.device;
  up.max_one_time_prekeys = kMaxPrekeysStored;
  if (auto it = req.find("identity_key"); it != req.end() && !it->value().is_null()) {
    if (!IsPublicKey(it->value())) {
      return Error(rid, code::kBadRequest, "identity_key: base64 of a 32- or 33-byte public key");
    }
    up.identity_key = std::string(it->value().get_string());
  }
  if (auto it = req.find("registration_id"); it != req.end() && !it->value().is_null()) {
    auto id = U32(it->value());
    if (!id)
      return Error(rid, code::kBadRequest, "registration_id: an id from \"0\" to \"4294967295\"");
    up.registration_id = *id;
  }
  if (auto it = req.find("signed_prekey"); it != req.end() && !it->value().is_null()) {
    auto p = ParsePrekey(it->value(), "signed_prekey", true);
    if (!p) return Error(rid, code::kBadRequest, p.error());
    up.signed_prekey = std::move(*p);
  }
  if (auto it = req.find("one_time_prekeys"); it != req.end() && !it->value().is_null()) {
    if (!it->value().is_array()) {
      return Error(rid, code::kBadRequest, "one_time_prekeys: must be a list of {id, key}");
    }
    const auto& list = it->value().get_array();
    if (list.size() > kMaxPrekeysPerUpload) {
      return Error(rid, code::kBadRequest, "one_time_prekeys: at most 100 per upload");
    }
    std::set<std::uint32_t> ids;
    for (const auto& v : list) {
      auto p = ParsePrekey(v, "one_time_prekeys", false);
      if (!p) return Error(rid, code::kBadRequest, p.error());
      if (!ids.insert(p->id).second) {
        return Error(rid, code::kBadRequest,
                     "one_time_prekeys: id " + std::to_string(p->id) + " is given twice");
      }
      up.one_time_prekeys.push_back({p->id, std::move(p->key)});
    }
  }
  if (OverLimit(core_.write_limiter, rid)) return;
  // A first or changed identity key is announced to every contact: it costs
  // that fan-out (fairness.hpp).
  if (up.identity_key) {
    auto current = core_.store.GetDeviceKeys(identity_.user, identity_.device);
    if (!current) return StoreError(rid, current.error(), "get_device_keys");
    if (!*current || (*current)->identity_key != *up.identity_key) {
      auto contacts = core_.store.ListContacts(identity_.user);
      if (!contacts) return StoreError(rid, contacts.error(), "list_contacts");
      if (OverLimit(core_.fanout_limiter, rid, static_cast<double>(contacts->size()) + 1)) return;
    }
  }
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  up.now_ms = NowMs();
  up.render = RenderKeysChanged;
  auto self = shared_from_this();
  core_.store.UploadKeys(std::move(up), [self, rid, ticket](Result<store::KeysUploadResult> r) {
    ticket->Done();
    if (!r) return self->StoreError(rid, r.error(), "upload_keys");
    json::object result;
    result["one_time_prekeys_left"] = r->one_time_prekeys_left;
    self->Ok(rid, std::move(result));
    self->core_.Wake(r->appended);
  });
}

void Session::KeysBundle(const json::object& req, const Rid& rid) {
  auto user = proto::GetId(req, "user");
  if (!user) return Error(rid, code::kBadRequest, user.error().message);
  const auto& cfg = core_.config;
  if (RefusedByLimit(*this, core_.abuse.bundles, cfg.keys_bundle_per_minute, 1, rid,
                     "too many keys.bundle requests")) {
    return;
  }
  // Asking for one's own user serves the other devices, never this one.
  const store::DeviceId except = *user == identity_.user ? identity_.device : 0;
  // One-time prekeys are limited per requester and target (abuse_limits.hpp):
  // past a limit the bundle is served without one, never drained.
  bool claim = true;
  const std::string target_key = IdToString(*user);
  const std::string pair_key = IdToString(identity_.user) + ":" + target_key;
  if (*user != identity_.user) {
    const double now_s = MonoSeconds();
    auto& pair = core_.abuse.prekeys_per_pair;
    auto& target = core_.abuse.prekeys_per_target;
    claim = pair.RetryAfter(pair_key, now_s) <= 0 && target.RetryAfter(target_key, now_s) <= 0;
    if (claim) {
      pair.Add(pair_key, now_s);
      target.Add(target_key, now_s);
    }
  }
  auto answer = [](Session& s, const Rid& rid, const std::vector<store::PrekeyBundle>& bundles) {
    if (bundles.empty()) return s.Error(rid, code::kNotFound, "no devices with keys");
    json::array devices;
    for (const auto& b : bundles) devices.push_back(BundleJson(b));
    json::object result;
    result["devices"] = std::move(devices);
    s.Ok(rid, std::move(result));
  };
  if (!claim) {
    auto keys = core_.store.ListDeviceKeys(*user);
    if (!keys) return StoreError(rid, keys.error(), "list_device_keys");
    std::vector<store::PrekeyBundle> bundles;
    for (auto& k : *keys) {
      if (k.device == except) continue;
      bundles.push_back(store::PrekeyBundle{std::move(k), std::nullopt});
    }
    return answer(*this, rid, bundles);
  }
  auto self = shared_from_this();
  core_.store.ClaimPrekeys(*user, except,
                           [self, rid, answer](Result<std::vector<store::PrekeyBundle>> r) {
                             if (!r) return self->StoreError(rid, r.error(), "claim_prekeys");
                             answer(*self, rid, *r);
                           });
}

void Session::KeysCount(const json::object&, const Rid& rid) {
  auto keys = core_.store.GetDeviceKeys(identity_.user, identity_.device);
  if (!keys) return StoreError(rid, keys.error(), "get_device_keys");
  json::object result;
  result["one_time_prekeys_left"] = *keys ? (*keys)->one_time_prekeys : 0u;
  Ok(rid, std::move(result));
}

}  // namespace parley::core
