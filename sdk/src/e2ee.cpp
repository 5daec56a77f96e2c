// Client::Impl, the end-to-end encryption half: key uploads, the encrypted
// send path (device lists and sessions from keys.bundle, the envelope, the
// stale_devices repair), Sender Keys for groups, safety numbers, and the
// receive side of group messages and sender key distributions.
//
// Design note. The outbox keeps the plaintext (the local store is this
// device's own); a message is encrypted when it is sent, and again when it
// is resent (the server keeps the first copy it stored, so a ratchet that
// moved on meanwhile costs nothing but a skipped message key on the
// receivers). A message whose conversation lacks a device list, a session
// or (in a group) a distributed sender key is held while Prepare fetches
// what is missing, and the messages of that conversation after it wait
// too, so that order is kept. Device lists are kept in memory per user and
// corrected by stale_devices (1:1 and sender_key sends), keys_changed and
// the user's own device events; the server checks the device set, so a
// stale list costs one round trip, never a message a device cannot read.
//
// Group messages: kind "e2ee" with {"sender_device","group":{"data"}} (one
// sender-key ciphertext for every member device, docs/protocol.md). Before
// the first one, and after each rotation (a member left or was removed),
// this device's sender key goes to the member devices (this user's other
// devices included) that lack it: "sender_key" messages to the group with
// a pairwise ciphertext for each of them, whose inner plaintext is
// {"group","distribution"}, as many as the body limit needs
// (sender_keys.cpp).
#include <algorithm>
#include <boost/asio/post.hpp>
#include <utility>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

using detail::Str;

namespace {

constexpr int kPreKeysBeforeCheck = 5;

std::string AddrKey(const DeviceAddress& d) { return d.user + "." + d.device; }

bool RetryableCode(const std::string& code) {
  return code == "disconnected" || code == "timeout" || code == "rate_limited" ||
         code == "internal" || code == "unavailable" || code == "network";
}

// One entry of keys.bundle's "devices".
std::optional<PreKeyBundle> ParseBundle(const std::string& user, const json::object& o) {
  PreKeyBundle b;
  b.device = {user, std::to_string(detail::Seq(o, "device_id"))};
  if (b.device.device == "0") b.device.device = Str(o, "device_id");
  if (o.contains("registration_id")) {
    // Ids are strings on the wire; integers are read too (older servers).
    b.registration_id = static_cast<std::uint32_t>(detail::Seq(o, "registration_id"));
  }
  auto ik = detail::Base64Decode(Str(o, "identity_key"));
  const auto* spk = detail::Obj(o, "signed_prekey");
  if (!ik || ik->empty() || spk == nullptr) return std::nullopt;
  b.identity_key = std::move(*ik);
  auto key = detail::Base64Decode(Str(*spk, "key"));
  auto sig = detail::Base64Decode(Str(*spk, "signature"));
  if (!key || !sig) return std::nullopt;
  b.signed_prekey = {static_cast<std::uint32_t>(detail::Seq(*spk, "id")), std::move(*key),
                     std::move(*sig)};
  if (const auto* otk = detail::Obj(o, "one_time_prekey")) {
    auto k = detail::Base64Decode(Str(*otk, "key"));
    if (!k) return std::nullopt;
    b.one_time_prekey =
        OneTimePreKey{static_cast<std::uint32_t>(detail::Seq(*otk, "id")), std::move(*k)};
  }
  return b;
}

json::object UploadJson(const KeyUpload& up) {
  json::object frame{{"op", "keys.upload"}};
  if (up.identity_key) frame["identity_key"] = detail::Base64Encode(*up.identity_key);
  // Every id goes out as a string, as the contract says of identifiers.
  if (up.registration_id) frame["registration_id"] = std::to_string(*up.registration_id);
  if (up.signed_prekey) {
    frame["signed_prekey"] =
        json::object{{"id", std::to_string(up.signed_prekey->id)},
                     {"key", detail::Base64Encode(up.signed_prekey->key)},
                     {"signature", detail::Base64Encode(up.signed_prekey->signature)}};
  }
  json::array otks;
  for (const auto& k : up.one_time_prekeys) {
    otks.push_back(
        json::object{{"id", std::to_string(k.id)}, {"key", detail::Base64Encode(k.key)}});
  }
  frame["one_time_prekeys"] = std::move(otks);
  return frame;
}

// Calls `done` once, after `n` parts finished, with the first failure.
struct Join {
  Join(std::size_t n, std::function<void(Status)> done) : left(n), done(std::move(done)) {}
  void Part(Status s) {
    if (!s && status) status = std::move(s);
    if (--left == 0) done(std::move(status));
  }
  std::size_t left;
  Status status;
  std::function<void(Status)> done;
};

}  // namespace

// ---- Keys ---------------------------------------------------------------------------

void Client::Impl::CheckKeys() {
  if (!crypto_->Encrypts()) {
    keys_ready_ = true;
    return;
  }
  if (keys_checking_) return;
  keys_checking_ = true;
  prekeys_spent_ = 0;
  auto finish = [this](Result<int> left) {
    keys_checking_ = false;
    keys_ready_ = true;
    keys_left_ = std::move(left);
    for (auto& w : std::exchange(key_waiters_, {})) w(keys_left_);
    PumpOutbox();
  };
  Call({{"op", "keys.count"}}, true, [this, finish](Result<json::object> r) {
    if (!r) {
      // No key directory (an older server) or offline: sends find out.
      return finish(std::unexpected(r.error()));
    }
    const int count = static_cast<int>(detail::Int(*r, "one_time_prekeys_left"));
    auto uploaded = store_->GetMeta("keys_signed_prekey");
    const bool first = !(uploaded && *uploaded);
    std::optional<int> left;
    if (!first) left = static_cast<int>(detail::Int(*r, "one_time_prekeys_left"));
    auto up = crypto_->KeysToUpload(left);
    if (!up) return finish(std::unexpected(up.error()));
    const std::string spk = up->signed_prekey ? std::to_string(up->signed_prekey->id) : "";
    if (up->empty() ||
        (!first && up->one_time_prekeys.empty() && uploaded && *uploaded && **uploaded == spk)) {
      return finish(count);
    }
    Call(UploadJson(*up), true, [this, spk, finish](Result<json::object> r) {
      if (!r) return finish(std::unexpected(r.error()));
      (void)store_->SetMeta("keys_signed_prekey", spk);
      finish(static_cast<int>(detail::Int(*r, "one_time_prekeys_left")));
    });
  });
}

void Client::Impl::PublishKeys(std::function<void(Result<int>)> done) {
  if (!crypto_->Encrypts()) return done(Fail("unsupported", "this profile does not encrypt"));
  key_waiters_.push_back(std::move(done));
  // Online and checked: check again now (a caller asking wants it current).
  if (keys_ready_ && phase_ == Phase::kOnline) CheckKeys();
}

void Client::Impl::MembersLeft(const std::string& group_id) {
  group_members_.erase(group_id);
  if (!crypto_->Encrypts()) return;
  NewSenderKey(group_id);
}

// ---- Device lists and sessions ------------------------------------------------------------

void Client::Impl::FetchBundles(const std::string& user, Done done) {
  auto& waiters = fetch_waiters_[user];
  waiters.push_back(std::move(done));
  if (waiters.size() > 1) return;
  Call({{"op", "keys.bundle"}, {"user", user}}, true, [this, user](Result<json::object> r) {
    Status status;
    const auto me = AccountSnapshot();
    if (!r && me && user == me->user_id && r.error().code == "not_found") {
      // This user has no other device with keys (the server leaves the
      // asking device out of its own bundle list).
      devices_[user] = {};
    } else if (!r) {
      // For a peer, not_found: no such user, or none of its devices has
      // keys (a client that does not encrypt). Either way nothing to send.
      status = std::unexpected(r.error());
    } else if (!me) {
      status = Fail("not_logged_in");
    } else {
      std::vector<std::string> ids;
      if (const auto* list = detail::Arr(*r, "devices")) {
        for (const auto& v : *list) {
          if (!v.is_object()) continue;
          auto b = ParseBundle(user, v.get_object());
          if (!b) {
            status = Fail("protocol", "keys.bundle answered an unreadable bundle for " + user);
            continue;
          }
          if (b->device.user == me->user_id && b->device.device == me->device_id) continue;
          ids.push_back(b->device.device);
          const auto key = AddrKey(b->device);
          const auto known = identity_keys_.find(key);
          if (known != identity_keys_.end() && known->second != b->identity_key) {
            // A new identity on a device id we knew: the old session is useless.
            ForgetPeerDevice(b->device);
            events_.Push(KeysChangedEvent{b->device});
          }
          identity_keys_[key] = b->identity_key;
          if (crypto_->HasSession(b->device)) continue;
          auto s = crypto_->StartSession(*b);
          if (!s && s.error().code == "untrusted_identity") {
            // Its identity changed before we saw keys_changed: take the new
            // one (the safety number changes) rather than refuse to talk.
            (void)crypto_->ForgetDevice(b->device);
            events_.Push(KeysChangedEvent{b->device});
            s = crypto_->StartSession(*b);
          }
          if (!s) status = s;
        }
      }
      devices_[user] = std::move(ids);
    }
    auto list = std::move(fetch_waiters_[user]);
    fetch_waiters_.erase(user);
    for (auto& w : list) w(status);
  });
}

void Client::Impl::EnsureUsers(std::vector<std::string> users, Done done) {
  std::vector<std::string> fetch;
  for (const auto& u : users) {
    auto it = devices_.find(u);
    bool ok = it != devices_.end();
    if (ok) {
      for (const auto& d : it->second) ok = ok && crypto_->HasSession({u, d});
    }
    if (!ok && std::find(fetch.begin(), fetch.end(), u) == fetch.end()) fetch.push_back(u);
  }
  if (fetch.empty()) return done({});
  auto join = std::make_shared<Join>(fetch.size(), std::move(done));
  for (const auto& u : fetch) FetchBundles(u, [join](Status s) { join->Part(std::move(s)); });
}

std::vector<DeviceAddress> Client::Impl::DevicesOf(const std::vector<std::string>& users) const {
  std::vector<DeviceAddress> out;
  std::set<std::string> seen;
  for (const auto& u : users) {
    if (!seen.insert(u).second) continue;
    auto it = devices_.find(u);
    if (it == devices_.end()) continue;
    for (const auto& d : it->second) out.push_back({u, d});
  }
  return out;
}

void Client::Impl::ForgetPeerDevice(const DeviceAddress& d) {
  const auto me = AccountSnapshot();
  // keys_changed also names this device (its own first upload): forgetting
  // it would drop this device's own sender keys.
  if (me && d.user == me->user_id && d.device == me->device_id) return;
  (void)crypto_->ForgetDevice(d);
  if (auto it = devices_.find(d.user); it != devices_.end()) {
    std::erase(it->second, d.device);
  }
  ForgetDistributions(d);
}

void Client::Impl::RepairStale(const Error& e) {
  for (const auto& d : e.extra) ForgetPeerDevice(d);
  // A missing device: fetch that user's bundles again (sessions that exist
  // are kept).
  for (const auto& d : e.missing) devices_.erase(d.user);
}

// ---- The encrypted send path ---------------------------------------------------------------

Result<std::optional<json::object>> Client::Impl::EncryptedFrame(const Message& m) {
  const auto me = AccountSnapshot();
  if (!me) return Fail("not_logged_in", "log in first");
  const std::string inner = detail::InnerJson(m.kind, m.body_json, m.media_id);
  json::value body;
  if (!m.conv.is_group()) {
    const std::vector<std::string> users = {m.conv.id, me->user_id};
    for (const auto& u : users) {
      if (!devices_.contains(u)) return std::nullopt;
    }
    auto devices = DevicesOf(users);
    for (const auto& d : devices) {
      if (!crypto_->HasSession(d)) return std::nullopt;
    }
    if (m.conv.id != me->user_id && devices_[m.conv.id].empty()) {
      return Fail("no_keys", "user " + m.conv.id +
                                 " has no device with encryption keys (a client without "
                                 "end-to-end encryption?)");
    }
    auto cts = crypto_->Encrypt(devices, inner);
    if (!cts) return std::unexpected(cts.error());
    body = detail::EnvelopeJson(me->device_id, *cts);
  } else {
    auto members = group_members_.find(m.conv.id);
    if (members == group_members_.end()) return std::nullopt;
    auto users = members->second;
    users.push_back(me->user_id);
    for (const auto& u : users) {
      if (!devices_.contains(u)) return std::nullopt;
    }
    for (const auto& d : DevicesOf(users)) {
      if (!HasSenderKey(m.conv.id, d)) return std::nullopt;
    }
    // Makes the sender key if rotation dropped it (then nobody has it: the
    // set above was cleared with it).
    auto ct = crypto_->GroupEncrypt(m.conv.id, inner);
    if (!ct) return std::unexpected(ct.error());
    body = json::object{{"sender_device", me->device_id},
                        {"group", json::object{{"data", detail::Base64Encode(*ct)}}}};
  }
  json::object frame{{"op", "send"},
                     {"to", detail::ConvJson(m.conv)},
                     {"client_msg_id", m.client_msg_id},
                     {"kind", "e2ee"},
                     {"body", std::move(body)}};
  // The media id stays outside: the server authorizes downloads by it. The
  // media's key and digest are inside the encrypted body.
  if (!m.media_id.empty()) frame["media_id"] = m.media_id;
  return frame;
}

void Client::Impl::Prepare(const Conv& conv) {
  const std::string key = conv.Key();
  if (!preparing_.insert(key).second) return;
  PrepareConv(conv, [this, conv, key](Status s) {
    preparing_.erase(key);
    if (!s) {
      if (s.error().code == "stopped") {
        // The client is stopping (a Prepare cut short): the messages stay
        // queued for the next Client on this profile, which resumes.
      } else if (RetryableCode(s.error().code)) {
        outbox_retry_at_ = std::max(outbox_retry_at_, Clock::now() + std::chrono::seconds(1));
      } else if (auto pending = store_->Pending()) {
        // Nothing in this conversation can be encrypted: say so.
        for (const auto& m : *pending) {
          if (m.conv == conv && !in_flight_.contains(m.client_msg_id)) FailSend(m, s.error());
        }
      }
    } else {
      prepared_.insert(key);
    }
    PumpOutbox();
  });
}

void Client::Impl::PrepareConv(const Conv& conv, Done done, int attempt) {
  const auto me = AccountSnapshot();
  if (!me) return done(Fail("not_logged_in", "log in first"));
  if (!conv.is_group()) return EnsureUsers({conv.id, me->user_id}, std::move(done));
  const std::string g = conv.id;
  auto with_members = [this, g, me, done, attempt](Status s) {
    if (!s) return done(s);
    auto users = group_members_[g];
    users.push_back(me->user_id);
    EnsureUsers(users, [this, g, done, attempt](Status s) {
      if (!s) return done(s);
      DistributeSenderKey(g, attempt, done);
    });
  };
  if (group_members_.contains(g)) return with_members({});
  Call({{"op", "group.info"}, {"group_id", g}}, true,
       [this, g, me, with_members](Result<json::object> r) {
         if (!r) return with_members(std::unexpected(r.error()));
         std::vector<std::string> users;
         for (const auto& member : detail::ParseGroupInfo(*r).members) {
           if (member.user != me->user_id) users.push_back(member.user);
         }
         group_members_[g] = std::move(users);
         with_members({});
       });
}

// ---- Receiving ------------------------------------------------------------------------------

Message Client::Impl::Decode(Message m) {
  if (m.kind != "e2ee") return m;
  m.encrypted = true;
  if (!crypto_->Encrypts()) return m;  // unreadable here: kept as it came
  const auto me = AccountSnapshot();
  if (!me) return m;
  // This device's own message coming back: it has the plaintext already.
  if (m.from.user == me->user_id && m.from.device == me->device_id) return m;
  const std::string from = "message " + (m.msg_id.empty() ? std::string("?") : m.msg_id) +
                           " from " + m.from.user + "/" + m.from.device;
  auto failed = [&m, &from](const std::string& code, const std::string& why) {
    m.decrypt_error = Error{code, "could not decrypt " + from + ": " + why};
    return m;
  };
  boost::system::error_code ec;
  auto body = json::parse(m.body_json, ec);
  if (ec || !body.is_object()) return failed("crypto", "the body is not an e2ee envelope");
  if (const auto* group = detail::Obj(body.get_object(), "group")) {
    if (!m.conv.is_group()) return failed("crypto", "a group ciphertext outside a group");
    auto data = detail::Base64Decode(Str(*group, "data"));
    if (!data) return failed("crypto", "the group ciphertext is not base64");
    auto plain = crypto_->GroupDecrypt(m.conv.id, m.from, *data);
    if (!plain) return failed(plain.error().code, plain.error().message);
    auto inner = detail::ParseObject(*plain);
    if (!inner) return failed("crypto", "the decrypted message is not JSON");
    m.kind = Str(*inner, "kind");
    auto b = inner->find("body");
    m.body_json = b != inner->end() ? json::serialize(b->value()) : "null";
    m.media_id = Str(*inner, "media_id");
    m.text = detail::TextOf(m.body_json);
    return m;
  }
  auto envelope = detail::ParseEnvelope(body);
  if (!envelope) return failed("crypto", "the body is not an e2ee envelope");
  for (const auto& c : envelope->ciphertexts) {
    if (c.device.user != me->user_id || c.device.device != me->device_id) continue;
    auto plain = crypto_->Decrypt(m.from, c);
    if (!plain) return failed(plain.error().code, plain.error().message);
    if (c.type == Ciphertext::Type::kPreKey && ++prekeys_spent_ >= kPreKeysBeforeCheck) {
      boost::asio::post(io_, [this] { CheckKeys(); });
    }
    auto inner = detail::ParseObject(*plain);
    if (!inner) return failed("crypto", "the decrypted message is not JSON");
    m.kind = Str(*inner, "kind");
    auto b = inner->find("body");
    m.body_json = b != inner->end() ? json::serialize(b->value()) : "null";
    m.media_id = Str(*inner, "media_id");
    m.text = detail::TextOf(m.body_json);
    return m;
  }
  return failed("crypto", "it holds no ciphertext for this device");
}

void Client::Impl::HandleSenderKey(const Message& m, std::vector<Event>& out) {
  const auto me = AccountSnapshot();
  if (!crypto_->Encrypts() || !me) return;
  if (m.from.user == me->user_id && m.from.device == me->device_id) return;
  Message shown = m;
  shown.encrypted = true;
  auto fail = [&](const std::string& code, const std::string& why) {
    shown.decrypt_error = Error{code, "could not read the sender key " + m.msg_id + " from " +
                                          m.from.user + "/" + m.from.device + ": " + why};
    out.push_back(MessageEvent{std::move(shown)});
  };
  boost::system::error_code ec;
  auto envelope = detail::ParseEnvelope(json::parse(m.body_json, ec));
  if (!envelope) return fail("crypto", "the body is not an e2ee envelope");
  for (const auto& c : envelope->ciphertexts) {
    if (c.device.user != me->user_id || c.device.device != me->device_id) continue;
    auto plain = crypto_->Decrypt(m.from, c);
    if (!plain) return fail(plain.error().code, plain.error().message);
    auto inner = detail::ParseObject(*plain);
    auto dist = inner ? detail::Base64Decode(Str(*inner, "distribution")) : std::nullopt;
    const std::string group = inner ? Str(*inner, "group") : std::string();
    if (!dist || group.empty()) return fail("crypto", "not a sender key distribution");
    if (auto s = crypto_->ProcessSenderKey(group, m.from, *dist); !s) {
      return fail(s.error().code, s.error().message);
    }
    // Group messages of this sender that came before its key.
    ReleaseHeld(group, m.from, out);
    return;
  }
  // Nothing for this device: it has the key already (or had no keys yet).
}

// ---- Safety numbers ---------------------------------------------------------------------

void Client::Impl::SafetyNumber(const std::string& user,
                                std::function<void(Result<Fingerprint>)> done) {
  const auto me = AccountSnapshot();
  if (!me) return done(Fail("not_logged_in", "log in first"));
  if (!crypto_->Encrypts()) return done(Fail("unsupported", "this profile does not encrypt"));
  auto join = std::make_shared<Join>(user == me->user_id ? 1 : 2, [this, user, me, done](Status s) {
    if (!s) return done(std::unexpected(s.error()));
    auto keys_of = [this](const std::string& u) {
      std::vector<std::string> keys;
      for (const auto& d : DevicesOf({u})) keys.push_back(identity_keys_[AddrKey(d)]);
      return keys;
    };
    auto local = keys_of(me->user_id);
    auto remote = keys_of(user);
    if (remote.empty() && user != me->user_id) {
      return done(Fail("no_keys", "user " + user + " has no device with encryption keys"));
    }
    done(crypto_->ComputeFingerprint(me->user_id, local, user, remote));
  });
  FetchBundles(me->user_id, [join](Status s) { join->Part(std::move(s)); });
  if (user != me->user_id) FetchBundles(user, [join](Status s) { join->Part(std::move(s)); });
}

}  // namespace parley::sdk
