#include "bus/codec.hpp"

#include <boost/json.hpp>

#include "common/ids.hpp"

namespace parley::bus {

namespace json = boost::json;

namespace {

constexpr std::int64_t kVersion = 1;

json::object Head(std::string_view type, const std::string& origin) {
  json::object o;
  o["v"] = kVersion;
  o["t"] = type;
  o["o"] = origin;
  return o;
}

const json::string* Str(const json::object& o, std::string_view key, std::size_t max) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return nullptr;
  const auto& s = it->value().get_string();
  return s.size() <= max ? &s : nullptr;
}

std::optional<std::uint64_t> Id(const json::object& o, std::string_view key) {
  const auto* s = Str(o, key, 20);
  if (s == nullptr) return std::nullopt;
  return ParseId(std::string_view(s->data(), s->size()));
}

// Parses and checks what every message has; the type tag comes back.
std::optional<std::pair<json::object, std::string>> Open(std::string_view payload,
                                                         std::string* origin) {
  if (payload.empty() || payload.size() > kMaxPayloadBytes) return std::nullopt;
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object()) return std::nullopt;
  auto& o = v.as_object();
  auto ver = o.find("v");
  if (ver == o.end() || !ver->value().is_int64() || ver->value().get_int64() != kVersion) {
    return std::nullopt;
  }
  const auto* t = Str(o, "t", 1);
  const auto* org = Str(o, "o", 32);
  if (t == nullptr || org == nullptr) return std::nullopt;
  *origin = std::string(org->data(), org->size());
  if (!ValidInstance(*origin)) return std::nullopt;
  std::string type(t->data(), t->size());
  return std::make_pair(std::move(o), std::move(type));
}

// A frame another node rendered for clients goes to them as it is, so it is
// checked as a client would read it: one JSON object whose "op" is `op`
// and, for an event, whose "seq" is the wake's own (a wake stands for
// exactly the seq it names) and whose "event" is an object.
bool ValidClientFrame(std::string_view frame, std::string_view op, const std::string* seq) {
  boost::system::error_code ec;
  const json::value v = json::parse(frame, ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.get_object();
  const auto* got = Str(o, "op", 16);
  if (got == nullptr || *got != op) return false;
  if (seq == nullptr) return true;
  const auto* s = Str(o, "seq", 20);
  auto event = o.find("event");
  return s != nullptr && *s == *seq && event != o.end() && event->value().is_object();
}

}  // namespace

bool ValidInstance(std::string_view instance) {
  if (instance.empty() || instance.size() > 32) return false;
  for (char c : instance) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<DeviceLocation> ParseRegistryMember(std::string_view m) {
  const auto a = m.find('/');
  const auto b = a == std::string_view::npos ? a : m.find('/', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  auto device = ParseId(m.substr(0, a));
  std::string_view instance = m.substr(a + 1, b - a - 1);
  std::string_view node = m.substr(b + 1);
  if (!device || !ValidInstance(instance) || !ValidNodeId(node)) return std::nullopt;
  return DeviceLocation{*device, std::string(node), std::string(instance)};
}

std::string UserChannel(UserId user) { return "u:" + std::to_string(user); }

std::optional<UserId> ParseUserChannel(std::string_view channel) {
  if (!channel.starts_with("u:")) return std::nullopt;
  return ParseId(channel.substr(2));
}

std::string PingChannel(std::string_view instance) {
  return "n:" + std::string(instance) + ":ping";
}

std::string Encode(const Wake& m) {
  auto o = Head("w", m.origin);
  o["s"] = std::to_string(m.seq);
  if (!m.frame.empty() && m.frame.size() <= kMaxInlineBytes) o["f"] = m.frame;
  // Optional within version 1: older receivers ignore it.
  if (m.sent_us > 0) o["us"] = m.sent_us;
  return json::serialize(o);
}

std::string Encode(const Typing& m) {
  auto o = Head("t", m.origin);
  o["from"] = std::to_string(m.from);
  o["f"] = m.frame;
  return json::serialize(o);
}

std::string Encode(const Control& m) {
  auto o = Head("c", m.origin);
  o["k"] = static_cast<std::int64_t>(m.kind);
  o["d"] = std::to_string(m.device);
  if (m.connection != 0) o["c"] = std::to_string(m.connection);
  return json::serialize(o);
}

std::string Encode(const PresenceChange& m) {
  auto o = Head("p", m.origin);
  o["u"] = std::to_string(m.user);
  o["on"] = m.online;
  o["ls"] = m.last_seen_ms;
  return json::serialize(o);
}

std::optional<UserMessage> DecodeUserMessage(UserId user, std::string_view payload) {
  std::string origin;
  auto opened = Open(payload, &origin);
  if (!opened) return std::nullopt;
  const auto& [o, type] = *opened;
  if (type == "w") {
    Wake w;
    w.user = user;
    auto seq = Id(o, "s");
    if (!seq) return std::nullopt;
    w.seq = *seq;
    if (o.contains("f")) {
      const auto* f = Str(o, "f", kMaxInlineBytes);
      const std::string seq_text = std::to_string(w.seq);
      if (f == nullptr || !ValidClientFrame(*f, "event", &seq_text)) return std::nullopt;
      w.frame.assign(f->data(), f->size());
    }
    if (auto us = o.find("us"); us != o.end()) {
      if (!us->value().is_int64() || us->value().get_int64() < 0) return std::nullopt;
      w.sent_us = us->value().get_int64();
    }
    w.origin = std::move(origin);
    return w;
  }
  if (type == "t") {
    Typing t;
    t.to = user;
    auto from = Id(o, "from");
    const auto* f = Str(o, "f", kMaxInlineBytes);
    if (!from || f == nullptr || !ValidClientFrame(*f, "typing", nullptr)) return std::nullopt;
    t.from = *from;
    t.frame.assign(f->data(), f->size());
    t.origin = std::move(origin);
    return t;
  }
  if (type == "c") {
    Control c;
    c.user = user;
    auto k = o.find("k");
    if (k == o.end() || !k->value().is_int64()) return std::nullopt;
    const auto kind = k->value().get_int64();
    if (kind < 1 || kind > 3) return std::nullopt;
    c.kind = static_cast<Control::Kind>(kind);
    auto device = Id(o, "d");
    if (!device) return std::nullopt;
    c.device = *device;
    if (o.contains("c")) {
      auto conn = Id(o, "c");
      if (!conn) return std::nullopt;
      c.connection = *conn;
    }
    if (c.kind == Control::Kind::kReplaced && c.connection == 0) return std::nullopt;
    c.origin = std::move(origin);
    return c;
  }
  return std::nullopt;
}

std::optional<PresenceChange> DecodePresence(std::string_view payload) {
  std::string origin;
  auto opened = Open(payload, &origin);
  if (!opened || opened->second != "p") return std::nullopt;
  const auto& o = opened->first;
  PresenceChange p;
  auto user = Id(o, "u");
  auto on = o.find("on");
  auto ls = o.find("ls");
  if (!user || on == o.end() || !on->value().is_bool() || ls == o.end() ||
      !ls->value().is_int64() || ls->value().get_int64() < 0) {
    return std::nullopt;
  }
  p.user = *user;
  p.online = on->value().get_bool();
  p.last_seen_ms = ls->value().get_int64();
  p.origin = std::move(origin);
  return p;
}

}  // namespace parley::bus
