#include "wire.hpp"

#include <openssl/evp.h>

#include <charconv>

namespace parley::sdk::detail {

std::string Str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return {};
  if (it->value().is_string()) return std::string(it->value().get_string());
  if (it->value().is_int64()) return std::to_string(it->value().get_int64());
  if (it->value().is_uint64()) return std::to_string(it->value().get_uint64());
  return {};
}

std::int64_t Int(const json::object& o, std::string_view key, std::int64_t fallback) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().get_uint64());
  if (it->value().is_double()) {
    // A number past what int64 holds is no time or count (and converting it
    // would be undefined behaviour): the fuzzer's sdk_frames finding.
    const double d = it->value().get_double();
    if (!(d >= -0x1p63 && d < 0x1p63)) return fallback;
    return static_cast<std::int64_t>(d);
  }
  return fallback;
}

bool Bool(const json::object& o, std::string_view key, bool fallback) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_bool() ? it->value().get_bool() : fallback;
}

std::uint64_t Seq(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_string()) {
    auto s = it->value().get_string();
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() ? v : 0;
  }
  if (it->value().is_uint64()) return it->value().get_uint64();
  if (it->value().is_int64() && it->value().get_int64() > 0) {
    return static_cast<std::uint64_t>(it->value().get_int64());
  }
  return 0;
}

const json::object* Obj(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

const json::array* Arr(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_array() ? &it->value().get_array() : nullptr;
}

std::vector<std::string> StrList(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* a = Arr(o, key)) {
    for (const auto& v : *a) {
      if (v.is_string()) out.emplace_back(v.get_string());
    }
  }
  return out;
}

std::optional<json::object> ParseObject(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

json::object ConvJson(const Conv& conv) {
  json::object o;
  o[conv.is_group() ? "group" : "user"] = conv.id;
  return o;
}

std::optional<Conv> ParseConv(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  if (auto g = Str(o, "group"); !g.empty()) return Conv::Group(g);
  if (auto u = Str(o, "user"); !u.empty()) return Conv::User(u);
  return std::nullopt;
}

std::string TextOf(std::string_view body_json) {
  auto body = ParseObject(body_json);
  if (!body) return {};
  auto it = body->find("text");
  return it != body->end() && it->value().is_string() ? std::string(it->value().get_string())
                                                      : std::string();
}

std::optional<Message> ParseMessage(const json::object& o) {
  Message m;
  m.msg_id = Str(o, "msg_id");
  if (m.msg_id.empty()) return std::nullopt;
  m.client_msg_id = Str(o, "client_msg_id");
  auto conv_it = o.find("conv");
  if (conv_it == o.end()) return std::nullopt;
  auto conv = ParseConv(conv_it->value());
  if (!conv) return std::nullopt;
  m.conv = *conv;
  if (const auto* from = Obj(o, "from")) m.from = {Str(*from, "user"), Str(*from, "device")};
  m.outgoing = Bool(o, "outgoing");
  m.kind = Str(o, "kind");
  if (auto it = o.find("body"); it != o.end()) m.body_json = json::serialize(it->value());
  m.text = TextOf(m.body_json);
  m.media_id = Str(o, "media_id");
  m.ts_ms = Int(o, "ts_ms");
  m.status = m.outgoing ? MessageStatus::kSent : MessageStatus::kReceived;
  return m;
}

Error ErrorFromFrame(const json::object& frame) {
  Error e;
  e.code = Str(frame, "code");
  if (e.code.empty()) e.code = "protocol";
  e.message = Str(frame, "message");
  e.retry_after_ms = Int(frame, "retry_after_ms");
  e.missing = ParseAddresses(frame, "missing");
  e.extra = ParseAddresses(frame, "extra");
  return e;
}

Error ErrorFromHttp(int status, std::string_view body,
                    const std::map<std::string, std::string>& headers) {
  Error e;
  e.http_status = status;
  if (auto o = ParseObject(body)) {
    if (const auto* err = Obj(*o, "error")) {
      e.code = Str(*err, "code");
      e.message = Str(*err, "message");
    }
  }
  if (e.code.empty()) e.code = status >= 500 ? "unavailable" : "protocol";
  if (e.message.empty()) e.message = "HTTP " + std::to_string(status);
  if (auto it = headers.find("retry-after"); it != headers.end()) {
    std::int64_t s = 0;
    std::from_chars(it->second.data(), it->second.data() + it->second.size(), s);
    e.retry_after_ms = s * 1000;
  }
  return e;
}

GroupInfo ParseGroupInfo(const json::object& o) {
  GroupInfo g;
  g.group_id = Str(o, "group_id");
  g.name = Str(o, "name");
  g.created_ms = Int(o, "created_ms");
  g.avatar_media_id = Str(o, "avatar_media_id");
  if (const auto* members = Arr(o, "members")) {
    for (const auto& v : *members) {
      if (!v.is_object()) continue;
      g.members.push_back({Str(v.get_object(), "user"), Str(v.get_object(), "role")});
    }
  }
  return g;
}

std::vector<DeviceInfo> ParseDevices(const json::object& o) {
  std::vector<DeviceInfo> out;
  if (const auto* list = Arr(o, "devices")) {
    for (const auto& v : *list) {
      if (!v.is_object()) continue;
      const auto& d = v.get_object();
      out.push_back({Str(d, "device_id"), Str(d, "name"), Str(d, "platform"),
                     Int(d, "last_active_ms"), Bool(d, "current")});
    }
  }
  return out;
}

namespace {
std::optional<std::int64_t> OptInt(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !(it->value().is_int64() || it->value().is_uint64())) return std::nullopt;
  return Int(o, key);
}
}  // namespace

std::vector<Profile> ParseProfiles(const json::object& o) {
  std::vector<Profile> out;
  if (const auto* list = Arr(o, "profiles")) {
    for (const auto& v : *list) {
      if (!v.is_object()) continue;
      const auto& p = v.get_object();
      out.push_back({Str(p, "user"), Str(p, "name"), Str(p, "status_text"),
                     Str(p, "avatar_media_id"), OptInt(p, "last_seen_ms")});
    }
  }
  return out;
}

PresenceStatus ParsePresence(const json::object& o) {
  return {Str(o, "user"), Bool(o, "online"), OptInt(o, "last_seen_ms")};
}

std::vector<PresenceStatus> ParseStatuses(const json::object& o) {
  std::vector<PresenceStatus> out;
  if (const auto* list = Arr(o, "statuses")) {
    for (const auto& v : *list) {
      if (v.is_object()) out.push_back(ParsePresence(v.get_object()));
    }
  }
  return out;
}

ReceiptInfo ParseReceipts(const json::object& o) {
  ReceiptInfo r;
  auto list = [&](std::string_view key, std::vector<ReceiptEntry>& into) {
    if (const auto* a = Arr(o, key)) {
      for (const auto& v : *a) {
        if (v.is_object())
          into.push_back({Str(v.get_object(), "user"), Int(v.get_object(), "ts_ms")});
      }
    }
  };
  list("delivered", r.delivered);
  list("read", r.read);
  r.members = static_cast<int>(Int(o, "members"));
  return r;
}

GroupEvent ParseGroupEvent(const json::object& o) {
  GroupEvent g;
  g.group_id = Str(o, "group_id");
  g.change = Str(o, "change");
  g.by = Str(o, "by");
  g.users = StrList(o, "users");
  if (auto it = o.find("name"); it != o.end() && it->value().is_string()) {
    g.name = std::string(it->value().get_string());
  }
  g.ts_ms = Int(o, "ts_ms");
  return g;
}

// ---- Envelope, base64, hashes --------------------------------------------------

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the bytes the padding stands for.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

json::object EnvelopeJson(const std::string& sender_device, const std::vector<Ciphertext>& list) {
  json::array cts;
  for (const auto& c : list) {
    cts.push_back(json::object{{"user", c.device.user},
                               {"device", c.device.device},
                               {"type", c.type == Ciphertext::Type::kPreKey ? "prekey" : "message"},
                               {"data", Base64Encode(c.data)}});
  }
  return json::object{{"sender_device", sender_device}, {"ciphertexts", std::move(cts)}};
}

std::optional<Envelope> ParseEnvelope(const json::value& body) {
  if (!body.is_object()) return std::nullopt;
  const auto& o = body.get_object();
  Envelope e;
  e.sender_device = Str(o, "sender_device");
  const auto* cts = Arr(o, "ciphertexts");
  if (e.sender_device.empty() || cts == nullptr) return std::nullopt;
  for (const auto& v : *cts) {
    if (!v.is_object()) return std::nullopt;
    const auto& c = v.get_object();
    const std::string type = Str(c, "type");
    if (type != "prekey" && type != "message") return std::nullopt;
    auto data = Base64Decode(Str(c, "data"));
    if (!data) return std::nullopt;
    e.ciphertexts.push_back(
        {{Str(c, "user"), Str(c, "device")},
         type == "prekey" ? Ciphertext::Type::kPreKey : Ciphertext::Type::kMessage,
         std::move(*data)});
  }
  return e;
}

std::vector<DeviceAddress> ParseAddresses(const json::object& o, std::string_view key) {
  std::vector<DeviceAddress> out;
  if (const auto* a = Arr(o, key)) {
    for (const auto& v : *a) {
      if (v.is_object())
        out.push_back({Str(v.get_object(), "user"), Str(v.get_object(), "device")});
    }
  }
  return out;
}

std::string InnerJson(const std::string& kind, const std::string& body_json,
                      const std::string& media_id) {
  json::object inner;
  inner["kind"] = kind;
  boost::system::error_code ec;
  inner["body"] = json::parse(body_json, ec);
  if (ec) inner["body"] = nullptr;
  if (!media_id.empty()) inner["media_id"] = media_id;
  return json::serialize(inner);
}

}  // namespace parley::sdk::detail
