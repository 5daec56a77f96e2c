#include "core/session/render.hpp"

#include "common/ids.hpp"

namespace parley::core {

json::object ConvJson(const store::Conversation& conv) {
  json::object o;
  o[conv.kind == store::Conversation::Kind::kGroup ? "group" : "user"] = IdToString(conv.id);
  return o;
}

namespace {

json::value BodyFor(const store::Message& m, store::UserId viewer, store::DeviceId viewer_device) {
  boost::system::error_code ec;
  json::value body = json::parse(m.body, ec);
  if (ec) return json::value(nullptr);
  if ((m.kind != "e2ee" && m.kind != "sender_key") || !body.is_object()) return body;
  // A device is given only its own ciphertext.
  auto& obj = body.as_object();
  auto it = obj.find("ciphertexts");
  if (it == obj.end() || !it->value().is_array()) return body;
  const std::string user = IdToString(viewer);
  const std::string device = IdToString(viewer_device);
  json::array mine;
  for (auto& c : it->value().as_array()) {
    if (!c.is_object()) continue;
    const auto& co = c.as_object();
    auto u = co.find("user");
    auto d = co.find("device");
    if (u != co.end() && d != co.end() && u->value() == user.c_str() &&
        d->value() == device.c_str()) {
      mine.push_back(c);
    }
  }
  it->value() = std::move(mine);
  return body;
}

void AppendQuoted(std::string& out, std::string_view s) { out += json::serialize(s); }

void AppendConv(std::string& out, const store::Conversation& conv) {
  out += conv.kind == store::Conversation::Kind::kGroup ? R"({"group":")" : R"({"user":")";
  out += IdToString(conv.id);
  out += "\"}";
}

// MessageJson serialized, for the kinds whose body every viewer sees as it
// was stored: the body is spliced in as stored (it is what json::serialize
// made of the sender's body) rather than parsed and serialized again.
std::string PlainMessageBody(const store::Message& m, store::UserId viewer) {
  const bool outgoing = m.sender == viewer;
  std::string out;
  out.reserve(m.body.size() + m.client_msg_id.size() + m.media_id.size() + 200);
  out += R"({"type":"message","msg_id":")";
  out += IdToString(m.msg_id);
  out += R"(","client_msg_id":)";
  AppendQuoted(out, m.client_msg_id);
  out += R"(,"conv":)";
  AppendConv(out, m.to.kind == store::Conversation::Kind::kGroup || outgoing
                      ? m.to
                      : store::Conversation{store::Conversation::Kind::kUser, m.sender});
  out += R"(,"from":{"user":")";
  out += IdToString(m.sender);
  out += R"(","device":")";
  out += IdToString(m.sender_device);
  out += R"("},"kind":)";
  AppendQuoted(out, m.kind);
  out += R"(,"body":)";
  out += m.body.empty() ? std::string_view("null") : std::string_view(m.body);
  if (!m.media_id.empty()) {
    out += R"(,"media_id":)";
    AppendQuoted(out, m.media_id);
  }
  out += R"(,"ts_ms":)";
  out += std::to_string(m.ts_ms);
  out += outgoing ? R"(,"outgoing":true})" : R"(,"outgoing":false})";
  return out;
}

}  // namespace

json::object MessageJson(const store::Message& m, store::UserId viewer,
                         store::DeviceId viewer_device) {
  const bool outgoing = m.sender == viewer;
  json::object o;
  o["type"] = "message";
  o["msg_id"] = IdToString(m.msg_id);
  o["client_msg_id"] = m.client_msg_id;
  if (m.to.kind == store::Conversation::Kind::kGroup || outgoing) {
    o["conv"] = ConvJson(m.to);
  } else {
    o["conv"] = ConvJson({store::Conversation::Kind::kUser, m.sender});
  }
  o["from"] = json::object{{"user", IdToString(m.sender)}, {"device", IdToString(m.sender_device)}};
  o["kind"] = m.kind;
  o["body"] = BodyFor(m, viewer, viewer_device);
  if (!m.media_id.empty()) o["media_id"] = m.media_id;
  o["ts_ms"] = m.ts_ms;
  o["outgoing"] = outgoing;
  return o;
}

std::string EventFrame(const store::MailboxEvent& e, store::UserId viewer,
                       store::DeviceId viewer_device) {
  std::string body = EventBody(e, viewer, viewer_device);
  return body.empty() ? body : WrapEvent(e.seq, body);
}

std::string WrapEvent(store::Seq seq, std::string_view body) {
  std::string frame;
  frame.reserve(body.size() + 48);
  frame.append(R"({"op":"event","seq":")").append(std::to_string(seq)).append(R"(","event":)");
  frame.append(body).append("}");
  return frame;
}

std::string EventBody(const store::MailboxEvent& e, store::UserId viewer,
                      store::DeviceId viewer_device) {
  json::object event;
  switch (e.type) {
    case store::EventType::kMessage:
      if (!e.message) return {};
      if (e.message->kind != "e2ee" && e.message->kind != "sender_key") {
        return PlainMessageBody(*e.message, viewer);
      }
      event = MessageJson(*e.message, viewer, viewer_device);
      break;
    case store::EventType::kReceipt: {
      event["type"] = "receipt";
      event["conv"] = ConvJson(e.conv);
      json::array ids;
      for (auto id : e.msg_ids) ids.push_back(json::value(IdToString(id)));
      event["msg_ids"] = std::move(ids);
      event["by"] = IdToString(e.by);
      event["status"] = e.status == store::ReceiptStatus::kRead ? "read" : "delivered";
      event["ts_ms"] = e.ts_ms;
      break;
    }
    case store::EventType::kReadSync:
      event["type"] = "read_sync";
      event["conv"] = ConvJson(e.conv);
      event["up_to_msg_id"] = e.msg_ids.empty() ? std::string("0") : IdToString(e.msg_ids.front());
      event["ts_ms"] = e.ts_ms;
      break;
    case store::EventType::kGroup:
    case store::EventType::kKeysChanged:
    case store::EventType::kDevice: {
      boost::system::error_code ec;
      json::value v = json::parse(e.payload, ec);
      if (ec || !v.is_object()) return {};
      event = std::move(v.as_object());
      break;
    }
  }
  return json::serialize(event);
}

std::optional<store::Conversation> ParseConv(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  if (o.size() != 1) return std::nullopt;
  const auto& kv = *o.begin();
  if (!kv.value().is_string()) return std::nullopt;
  auto id = ParseId(kv.value().get_string());
  if (!id) return std::nullopt;
  if (kv.key() == "user") return store::Conversation{store::Conversation::Kind::kUser, *id};
  if (kv.key() == "group") return store::Conversation{store::Conversation::Kind::kGroup, *id};
  return std::nullopt;
}

}  // namespace parley::core
