#include "core/account/e2ee.hpp"

#include <set>

#include "common/ids.hpp"
#include "core/session/render.hpp"

namespace parley::core {

namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::optional<store::UserId> IdField(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return std::nullopt;
  return ParseId(it->value().get_string());
}

std::string AddrKey(std::string_view user, std::string_view device) {
  std::string k;
  k.reserve(user.size() + device.size() + 1);
  k.append(user).push_back('/');
  k.append(device);
  return k;
}

// The serialized object without its closing brace, ready for more members
// ("{" alone when it has none).
std::string OpenObject(const json::object& o) {
  std::string s = json::serialize(o);
  s.pop_back();
  return s;
}

}  // namespace

std::optional<std::size_t> Base64DecodedSize(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  for (std::size_t i = 0; i < text.size() - pad; ++i) {
    if (Base64Value(text[i]) < 0) return std::nullopt;
  }
  // Canonical: the bits the padding leaves over are zero.
  const int last = Base64Value(text[text.size() - pad - 1]);
  if (pad == 1 && (last & 0x3) != 0) return std::nullopt;
  if (pad == 2 && (last & 0xf) != 0) return std::nullopt;
  return text.size() / 4 * 3 - pad;
}

std::expected<Envelope, std::string> ParseEnvelope(const json::value& body, std::string_view kind) {
  if (!body.is_object()) return std::unexpected("body: an object {sender_device, ciphertexts}");
  const auto& o = body.get_object();
  Envelope env;
  if (!o.contains("sender_device")) return std::unexpected("body.sender_device: required");
  auto sender = IdField(o, "sender_device");
  if (!sender) return std::unexpected("body.sender_device: must be a device id (a string)");
  env.sender_device = *sender;
  auto cts = o.find("ciphertexts");
  if (cts == o.end()) return std::unexpected("body.ciphertexts: required");
  if (!cts->value().is_array()) return std::unexpected("body.ciphertexts: must be a list");
  if (kind == "e2ee") {
    for (const auto& kv : o) {
      if (kv.key() != "sender_device" && kv.key() != "ciphertexts") {
        return std::unexpected("body." + std::string(kv.key()) + ": unknown field");
      }
    }
  }
  std::set<DeviceAddr> seen;
  for (const auto& v : cts->value().get_array()) {
    if (!v.is_object()) return std::unexpected("body.ciphertexts: each entry must be an object");
    const auto& c = v.get_object();
    for (const auto& kv : c) {
      if (kv.key() != "user" && kv.key() != "device" && kv.key() != "type" && kv.key() != "data") {
        return std::unexpected("body.ciphertexts." + std::string(kv.key()) + ": unknown field");
      }
    }
    auto user = IdField(c, "user");
    if (!user) return std::unexpected("body.ciphertexts.user: must be a user id (a string)");
    auto device = IdField(c, "device");
    if (!device) return std::unexpected("body.ciphertexts.device: must be a device id (a string)");
    auto type = c.find("type");
    if (type == c.end() || !type->value().is_string() ||
        (type->value().get_string() != "prekey" && type->value().get_string() != "message")) {
      return std::unexpected("body.ciphertexts.type: \"prekey\" or \"message\"");
    }
    auto data = c.find("data");
    if (data == c.end() || !data->value().is_string() ||
        !Base64DecodedSize(data->value().get_string())) {
      return std::unexpected("body.ciphertexts.data: must be non-empty base64");
    }
    const DeviceAddr addr{*user, *device};
    if (!seen.insert(addr).second) {
      return std::unexpected("body.ciphertexts: more than one entry for device " +
                             IdToString(*device) + " of user " + IdToString(*user));
    }
    env.targets.push_back(addr);
  }
  return env;
}

std::string RenderKeysChanged(const store::KeysChangedInfo& info) {
  json::object e;
  e["type"] = "keys_changed";
  e["user"] = IdToString(info.user);
  e["device"] = IdToString(info.device);
  switch (info.change) {
    case store::KeysChange::kAdded:
      e["change"] = "added";
      break;
    case store::KeysChange::kIdentityChanged:
      e["change"] = "identity_changed";
      break;
    case store::KeysChange::kRemoved:
      e["change"] = "removed";
      break;
  }
  json::array devices;
  for (auto d : info.current) devices.push_back(json::value(IdToString(d)));
  e["devices"] = std::move(devices);
  e["ts_ms"] = info.ts_ms;
  return json::serialize(e);
}

bool EncryptedFrames::Prepare(const store::Message& m) {
  boost::system::error_code ec;
  json::value body = json::parse(m.body, ec);
  if (ec || !body.is_object()) return false;
  auto& o = body.as_object();
  auto cts = o.find("ciphertexts");
  if (cts == o.end() || !cts->value().is_array()) return false;
  for (const auto& c : cts->value().get_array()) {
    if (!c.is_object()) continue;
    const auto& co = c.get_object();
    auto u = co.find("user");
    auto d = co.find("device");
    if (u == co.end() || d == co.end() || !u->value().is_string() || !d->value().is_string()) {
      continue;
    }
    entries_.emplace(AddrKey(u->value().get_string(), d->value().get_string()), json::serialize(c));
  }
  o.erase(cts);
  body_head_ = OpenObject(o);
  if (body_head_.size() > 1) body_head_.push_back(',');
  for (int outgoing = 0; outgoing < 2; ++outgoing) {
    // The viewer only decides conv and outgoing: the sender, or anyone else.
    const store::UserId viewer = outgoing != 0 ? m.sender : (m.sender == 0 ? 1 : 0);
    json::object event = MessageJson(m, viewer, 0);
    event.erase("body");
    head_[outgoing] = OpenObject(event);
  }
  message_ = &m;
  return true;
}

std::string EncryptedFrames::EventBodyFor(store::UserId viewer, store::DeviceId device) {
  const std::string& head = head_[viewer == message_->sender ? 1 : 0];
  auto it = entries_.find(AddrKey(IdToString(viewer), IdToString(device)));
  std::string out;
  out.reserve(head.size() + body_head_.size() + (it != entries_.end() ? it->second.size() : 0) +
              32);
  out.append(head);
  if (head.size() > 1) out.push_back(',');
  out.append(R"("body":)").append(body_head_).append(R"("ciphertexts":[)");
  if (it != entries_.end()) out.append(it->second);
  out.append("]}}");
  return out;
}

}  // namespace parley::core
