// Client::Impl, Sender Key distribution and held group messages.
//
// Design note. A sender key goes to the member devices that lack it in
// "sender_key" sends to the group, each with a pairwise ciphertext for some
// of them, packed greedily by serialized size so that a body stays under
// the server's 64 KiB limit with a margin (about a hundred devices a send).
// Which send carries the key to which device is decided once and written
// to the store (key-value namespace "sdk.sender_key_dist", one JSON record
// per group) before anything is sent; a send's client_msg_id is derived
// from the group, the key's generation and its devices, so after a crash,
// a reconnect or a lost answer the same send goes again under the same id
// (the server stores it once) and only to devices not yet confirmed. A
// device counts as having the key once the server answered ok to the send
// that carries it; the group message goes out only when every current
// member device has it (EncryptedFrame). A new key (rotation after someone
// left) starts a new generation with nobody having it.
//
// On the receiving side, a group message may be handled before the
// sender_key message that carries its key (live events overtake a
// backlog after a reconnect): it is kept in the store (namespace
// "sdk.held", keyed by group, sender and seq) instead of being shown as
// undecryptable, and decrypted, stored and delivered in order when the key
// arrives.
#include <cstdio>
#include <cstdlib>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

using detail::Str;

namespace {

constexpr std::string_view kDistNs = "sdk.sender_key_dist";
constexpr std::string_view kHeldNs = "sdk.held";
constexpr int kMaxStaleRetries = 3;
// The server refuses bodies over 64 KiB serialized; a chunk is packed to
// leave room for the envelope and for ciphertexts that grow when a send is
// encrypted again (a new session's prekey message is larger).
constexpr std::size_t kMaxBody = 64 * 1024;
constexpr std::size_t kChunkBudget = kMaxBody - 6 * 1024;

std::string AddrKey(const DeviceAddress& d) { return d.user + "." + d.device; }

std::optional<DeviceAddress> ParseAddrKey(std::string_view s) {
  const auto dot = s.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == s.size()) return std::nullopt;
  return DeviceAddress{std::string(s.substr(0, dot)), std::string(s.substr(dot + 1))};
}

// The size one ciphertext adds to an envelope's "ciphertexts" (with its comma).
std::size_t EntrySize(const Ciphertext& c) {
  const auto env = detail::EnvelopeJson("", {c});
  return json::serialize(env.at("ciphertexts").as_array().at(0)).size() + 1;
}

std::string HeldPrefix(const std::string& group_id, const DeviceAddress& sender) {
  return group_id + "|" + AddrKey(sender) + "|";
}

}  // namespace

// ---- Who has this device's sender key -----------------------------------------------

Client::Impl::KeyDist& Client::Impl::DistOf(const std::string& group_id) {
  if (auto it = dists_.find(group_id); it != dists_.end()) return it->second;
  KeyDist d;
  auto stored = store_->Get(kDistNs, group_id);
  if (stored && *stored) {
    if (auto o = detail::ParseObject(**stored)) {
      d.gen = Str(*o, "gen");
      if (const auto* devices = detail::Obj(*o, "devices")) {
        for (const auto& [k, v] : *devices) {
          auto addr = ParseAddrKey(k);
          if (!addr || !v.is_array() || v.get_array().size() != 2) continue;
          const auto& a = v.get_array();
          if (!a[0].is_string() || !a[1].is_bool()) continue;
          d.devices[*addr] = {std::string(a[0].get_string()), a[1].get_bool()};
        }
      }
    }
  }
  return dists_[group_id] = std::move(d);
}

Status Client::Impl::SaveDist(const std::string& group_id) {
  const auto& d = DistOf(group_id);
  json::object devices;
  for (const auto& [addr, state] : d.devices) {
    devices[AddrKey(addr)] = json::array{json::value(state.first), json::value(state.second)};
  }
  return store_->Put(
      kDistNs, group_id,
      json::serialize(json::object{{"gen", d.gen}, {"devices", std::move(devices)}}));
}

bool Client::Impl::HasSenderKey(const std::string& group_id, const DeviceAddress& d) {
  const auto& dist = DistOf(group_id);
  auto it = dist.devices.find(d);
  return it != dist.devices.end() && it->second.second;
}

void Client::Impl::NewSenderKey(const std::string& group_id) {
  (void)crypto_->RotateSenderKey(group_id);
  auto& d = DistOf(group_id);
  static constexpr char kHex[] = "0123456789abcdef";
  d.gen.clear();
  auto v = rng_();
  for (int j = 0; j < 16; ++j, v >>= 4) d.gen.push_back(kHex[v & 0xf]);
  d.devices.clear();
  (void)SaveDist(group_id);
}

void Client::Impl::ForgetDistributions(const DeviceAddress& d) {
  auto groups = store_->Keys(kDistNs, "");
  if (!groups) return;
  for (const auto& g : *groups) {
    if (DistOf(g).devices.erase(d) > 0) (void)SaveDist(g);
  }
}

// ---- Sending the key ------------------------------------------------------------------

void Client::Impl::DistributeSenderKey(const std::string& group_id, int attempt, Done done) {
  const auto me = AccountSnapshot();
  if (!me) return done(Fail("not_logged_in"));
  auto users = group_members_[group_id];
  users.push_back(me->user_id);
  auto& dist = DistOf(group_id);
  if (dist.gen.empty()) NewSenderKey(group_id);  // a group this profile never sent to
  std::vector<DeviceAddress> unplanned;
  std::map<std::string, std::vector<DeviceAddress>> planned;  // client_msg_id -> devices
  for (const auto& d : DevicesOf(users)) {
    auto it = dist.devices.find(d);
    if (it == dist.devices.end() || it->second.first.empty()) {
      unplanned.push_back(d);
    } else if (!it->second.second) {
      planned[it->second.first].push_back(d);
    }
  }
  if (unplanned.empty() && planned.empty()) return done({});
  auto own = crypto_->OwnSenderKey(group_id);
  if (!own) return done(std::unexpected(own.error()));
  const std::string inner = json::serialize(
      json::object{{"group", group_id}, {"distribution", detail::Base64Encode(*own)}});

  std::map<std::string, std::vector<Ciphertext>> chunks;
  if (!unplanned.empty()) {
    auto cts = crypto_->Encrypt(unplanned, inner);
    if (!cts) return done(std::unexpected(cts.error()));
    std::vector<std::vector<Ciphertext>> packs;
    std::size_t used = 0;
    for (auto& c : *cts) {
      const std::size_t size = EntrySize(c);
      if (packs.empty() || used + size > kChunkBudget) {
        packs.emplace_back();
        used = 0;
      }
      packs.back().push_back(std::move(c));
      used += size;
    }
    for (auto& pack : packs) {
      std::string ids = group_id + "\n" + dist.gen + "\n";
      for (const auto& c : pack) ids += AddrKey(c.device) + "\n";
      const std::string client_msg_id = "k" + detail::Sha256Hex(ids).substr(0, 32);
      for (const auto& c : pack) dist.devices[c.device] = {client_msg_id, false};
      chunks[client_msg_id] = std::move(pack);
    }
    // The plan is durable before any of it is sent.
    if (auto s = SaveDist(group_id); !s) return done(s);
  }
  for (const auto& [client_msg_id, devices] : planned) {
    auto cts = crypto_->Encrypt(devices, inner);
    if (!cts) return done(std::unexpected(cts.error()));
    chunks[client_msg_id] = std::move(*cts);
  }

  struct Round {
    std::size_t left = 0;
    Status status;
    bool stale = false;  // a send was refused with stale_devices (repaired)
    bool again = false;  // devices were left for another round
  };
  auto round = std::make_shared<Round>();
  round->left = chunks.size();
  const std::string gen = dist.gen;
  auto finish = [this, group_id, attempt, done, round, gen] {
    if (--round->left > 0) return;
    if (!round->status) return done(round->status);
    if (round->stale) {
      if (attempt + 1 >= kMaxStaleRetries) {
        return done(Fail("stale_devices", "the group's devices kept changing"));
      }
      // A device went away (or a member): the lists again, then resend.
      group_members_.erase(group_id);
      return PrepareConv(Conv::Group(group_id), done, attempt + 1);
    }
    if (round->again || DistOf(group_id).gen != gen) {
      return DistributeSenderKey(group_id, attempt, done);
    }
    done({});
  };
  for (auto& [id, cts] : chunks) {
    const std::string client_msg_id = id;
    json::object body = detail::EnvelopeJson(me->device_id, cts);
    // Encrypted again, a chunk may have grown (a session started anew):
    // devices that no longer fit go to another send.
    while (cts.size() > 1 && json::serialize(body).size() > kMaxBody - 1024) {
      dist.devices[cts.back().device].first.clear();
      cts.pop_back();
      round->again = true;
      body = detail::EnvelopeJson(me->device_id, cts);
    }
    if (round->again) (void)SaveDist(group_id);
    std::vector<DeviceAddress> devices;
    for (const auto& c : cts) devices.push_back(c.device);
    json::object frame{{"op", "send"},
                       {"to", json::object{{"group", group_id}}},
                       {"client_msg_id", client_msg_id},
                       {"kind", "sender_key"},
                       {"body", std::move(body)}};
    Call(std::move(frame), false,
         [this, group_id, client_msg_id, devices, round, finish](Result<json::object> r) {
           if (r) {
             auto& d = DistOf(group_id);
             for (const auto& dev : devices) {
               // Only devices still waiting for this very send (not forgotten
               // meanwhile, not planned again under a new key).
               auto it = d.devices.find(dev);
               if (it != d.devices.end() && it->second.first == client_msg_id) {
                 it->second.second = true;
               }
             }
             if (auto s = SaveDist(group_id); !s && round->status) round->status = s;
           } else if (r.error().code == "stale_devices") {
             RepairStale(r.error());
             round->stale = true;
           } else if (round->status) {
             round->status = std::unexpected(r.error());
           }
           finish();
         });
  }
}

// ---- Group messages that came before their key --------------------------------------------

Result<bool> Client::Impl::HoldIfKeyMissing(std::uint64_t seq, const json::object& event,
                                            const Message& m) {
  if (!m.conv.is_group() || !m.decrypt_error || m.decrypt_error->code != "no_sender_key") {
    return false;
  }
  // Seen before and kept already (or stored): nothing more to do.
  if (auto known = store_->GetMessage(m.msg_id); known && *known) return false;
  char seq_key[24];
  std::snprintf(seq_key, sizeof seq_key, "%020llu", static_cast<unsigned long long>(seq));
  auto s = store_->Put(kHeldNs, HeldPrefix(m.conv.id, m.from) + seq_key, json::serialize(event));
  if (!s) return std::unexpected(s.error());
  return true;
}

void Client::Impl::ReleaseHeld(const std::string& group_id, const DeviceAddress& sender,
                               std::vector<Event>& out) {
  const std::string prefix = HeldPrefix(group_id, sender);
  auto keys = store_->Keys(kHeldNs, prefix);
  if (!keys) return;
  for (const auto& key : *keys) {  // in seq order (zero-padded)
    auto raw = store_->Get(kHeldNs, key);
    if (!raw || !*raw) continue;
    auto event = detail::ParseObject(**raw);
    auto parsed = event ? detail::ParseMessage(*event) : std::nullopt;
    if (!parsed) {
      (void)store_->Delete(kHeldNs, key);
      continue;
    }
    parsed->seq = std::strtoull(key.c_str() + prefix.size(), nullptr, 10);
    Message m = Decode(std::move(*parsed));
    // Under a key that is still to come (rotated again): kept.
    if (m.decrypt_error && m.decrypt_error->code == "no_sender_key") continue;
    if (auto s = store_->Delete(kHeldNs, key); !s) return;
    auto put = store_->PutMessage(m);
    if (put && *put == Store::Insert::kNew) out.push_back(MessageEvent{std::move(m)});
  }
}

}  // namespace parley::sdk
