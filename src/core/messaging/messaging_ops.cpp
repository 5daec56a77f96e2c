// Messaging ops (PROTOCOL.md section 4): send, read, typing, history,
// receipts, presence.subscribe.
#include <set>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/account/e2ee.hpp"
#include "core/messaging/groups.hpp"
#include "core/session/render.hpp"
#include "core/session/session.hpp"
#include "core/session/session_limits.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {

constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxClientMsgId = 64;
constexpr std::int64_t kMaxHistory = 100;
// The messages of one history reply, serialized, at most: the reply's frame
// then stays under kMaxReplyBytes (256 KiB, the contract's frame limit).
constexpr std::size_t kHistoryBudgetBytes = kMaxReplyBytes - 1024;
constexpr std::size_t kMaxPresenceUsers = 500;
// Refusals in a row after which a flooding device is disconnected.
constexpr std::uint32_t kRefusalsBeforeClose = 50;

constexpr std::string_view kKinds[] = {"text", "image", "video",     "audio",
                                       "file", "e2ee",  "sender_key"};

}  // namespace

bool Session::OverLimit(TokenBucket& bucket, const Rid& rid, double cost) {
  const double wait_s = bucket.Take(IdToString(identity_.device), MonoSeconds(), cost);
  if (wait_s <= 0) {
    refused_in_a_row_ = 0;
    return false;
  }
  if (++refused_in_a_row_ >= kRefusalsBeforeClose) {
    Close(proto::close_code::kRateLimit, "rate limit exceeded");
    return true;
  }
  json::object extra;
  extra["retry_after_ms"] = static_cast<std::int64_t>(wait_s * 1000) + 1;
  Error(rid, code::kRateLimited, "slow down", std::move(extra));
  return true;
}

void Session::Send(const json::object& req, const Rid& rid) {
  auto to_it = req.find("to");
  if (to_it == req.end()) return Error(rid, code::kBadRequest, "to: required");
  auto to = ParseConv(to_it->value());
  if (!to) return Error(rid, code::kBadRequest, "to: {\"user\":id} or {\"group\":id}");
  auto client_msg_id = proto::GetString(req, "client_msg_id", kMaxClientMsgId);
  if (!client_msg_id) return Error(rid, code::kBadRequest, client_msg_id.error().message);
  if (client_msg_id->empty()) return Error(rid, code::kBadRequest, "client_msg_id: empty");
  auto kind = proto::GetString(req, "kind", 16);
  if (!kind) return Error(rid, code::kBadRequest, kind.error().message);
  if (std::find(std::begin(kKinds), std::end(kKinds), *kind) == std::end(kKinds)) {
    return Error(rid, code::kBadRequest,
                 "kind: one of text, image, video, audio, file, e2ee, sender_key");
  }
  auto body_it = req.find("body");
  if (body_it == req.end()) return Error(rid, code::kBadRequest, "body: required");
  std::string body = json::serialize(body_it->value());
  if (body.size() > kMaxBodyBytes) {
    return Error(rid, code::kTooLarge, "body: at most 64 KiB serialized");
  }
  auto media = proto::GetOptId(req, "media_id");
  if (!media) return Error(rid, code::kBadRequest, media.error().message);
  if (OverLimit(core_.send_limiter, rid)) return;

  std::vector<store::UserId> recipients;
  if (to->kind == store::Conversation::Kind::kGroup) {
    // The writer takes the members at commit time; this early check only
    // spares the store a job for what is refused anyway.
    auto m = core_.groups.MembershipOf(to->id, identity_.user);
    if (!m) return StoreError(rid, m.error(), "group_membership");
    if (*m == Membership::kFormer)
      return Error(rid, code::kNotMember, "you are no longer a member");
    if (*m == Membership::kNever) return Error(rid, code::kNotFound, "no such group");
    // Fan-out is counted by recipients: each member's connected devices
    // (one at least, for the stored row), so a big group is no multiplier.
    auto g = core_.groups.Get(to->id);
    if (!g) return StoreError(rid, g.error(), "get_group");
    double cost = 0;
    if (*g) {
      for (const auto& member : (*g)->members) {
        cost += static_cast<double>(
            std::max<std::size_t>(1, core_.sessions.ForUser(member.user).size()));
      }
    }
    if (OverLimit(core_.fanout_limiter, rid, std::max(1.0, cost))) return;
  } else if (to->id != identity_.user) {
    auto exists = core_.UserExists(to->id);
    if (!exists) return StoreError(rid, exists.error(), "get_user");
    if (!*exists) return Error(rid, code::kNotFound, "no such user");
    recipients.push_back(to->id);
  }
  // After the recipient checks: an unknown peer is not_found, not stale.
  if (IsEncryptedKind(*kind) && !CheckEnvelope(body_it->value(), *kind, *to, rid)) return;

  if (*media) {
    // Media one may not read cannot be passed on (nor its existence learned).
    auto may = core_.MayReadMedia(IdToString(**media), identity_.user);
    if (!may) return StoreError(rid, may.error(), "get_media");
    if (!*may) return Error(rid, code::kNotFound, "no such media");
  }

  store::Message m;
  m.msg_id = core_.ids.Next();
  m.sender = identity_.user;
  m.sender_device = identity_.device;
  m.to = *to;
  m.client_msg_id = std::string(*client_msg_id);
  m.kind = std::string(*kind);
  m.body = std::move(body);
  if (*media) m.media_id = IdToString(**media);
  m.ts_ms = NowMs();
  m.recipients = static_cast<std::uint32_t>(recipients.size());
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  auto message = std::make_shared<const store::Message>(m);
  auto self = shared_from_this();
  core_.store.AppendMessage(std::move(m), std::move(recipients),
                            [self, rid, message, ticket](Result<store::SendResult> r) {
                              ticket->Done();
                              if (!r && r.error().code == Errc::kConflict) {
                                return self->Error(rid, code::kNotMember,
                                                   "you are no longer a member");
                              }
                              if (!r) return self->StoreError(rid, r.error(), "append_message");
                              json::object result;
                              result["msg_id"] = IdToString(r->msg_id);
                              result["seq"] = std::to_string(r->seq);
                              result["ts_ms"] = r->ts_ms;
                              result["duplicate"] = r->duplicate;
                              self->Ok(rid, std::move(result));
                              if (r->duplicate) return;
                              // The sending connection's own copy: its ok said it all.
                              const Session* skip = nullptr;
                              if (self->skip_own_copy_) {
                                self->SkipOwnCopy(r->seq);
                                skip = self.get();
                              }
                              self->core_.Deliver(message, r->appended, skip);
                            });
}

namespace {

// A group message under Sender Keys (extension, docs/protocol.md):
// {"sender_device":id,"group":{"data":b64}}, one ciphertext every member
// device reads, so there is no device set to check. Nullopt when it is that
// shape and well formed; otherwise what is wrong, naming the field.
std::optional<std::string> CheckSenderKeyGroupBody(const json::object& o, store::DeviceId sender) {
  for (const auto& kv : o) {
    if (kv.key() != "sender_device" && kv.key() != "group") {
      return "body." + std::string(kv.key()) + ": unknown field";
    }
  }
  auto sd = o.find("sender_device");
  if (sd == o.end()) return "body.sender_device: required";
  if (!sd->value().is_string() || sd->value().get_string() != IdToString(sender)) {
    return "body.sender_device: must be the sending device's id";
  }
  const auto& g = o.at("group");
  if (!g.is_object()) return "body.group: an object {data}";
  for (const auto& kv : g.get_object()) {
    if (kv.key() != "data") return "body.group." + std::string(kv.key()) + ": unknown field";
  }
  auto data = g.get_object().find("data");
  if (data == g.get_object().end()) return "body.group.data: required";
  if (!data->value().is_string()) return "body.group.data: must be base64";
  auto size = Base64DecodedSize(data->value().get_string());
  if (!size || *size == 0) return "body.group.data: must be non-empty base64";
  return std::nullopt;
}

}  // namespace

bool Session::CheckEnvelope(const json::value& body, std::string_view kind,
                            const store::Conversation& to, const Rid& rid) {
  if (kind == "e2ee" && body.is_object() && body.get_object().contains("group")) {
    if (to.kind != store::Conversation::Kind::kGroup) {
      Error(rid, code::kBadRequest, "body.group: only in a message to a group");
      return false;
    }
    if (auto bad = CheckSenderKeyGroupBody(body.get_object(), identity_.device)) {
      Error(rid, code::kBadRequest, *bad);
      return false;
    }
    return true;  // membership is checked with the append, as for any kind
  }
  auto env = ParseEnvelope(body, kind);
  if (!env) {
    Error(rid, code::kBadRequest, env.error());
    return false;
  }
  if (env->sender_device != identity_.device) {
    Error(rid, code::kBadRequest, "body.sender_device: must be the sending device's id");
    return false;
  }
  // The users the message reaches: the peer, or the group's members now.
  std::vector<store::UserId> users;
  const bool group = to.kind == store::Conversation::Kind::kGroup;
  if (group) {
    auto g = core_.groups.Get(to.id);
    if (!g) {
      StoreError(rid, g.error(), "get_group");
      return false;
    }
    // Not a member: the append answers not_found or not_member as for any kind.
    if (!*g || !IsMember(**g, identity_.user)) return true;
    for (const auto& m : (*g)->members) users.push_back(m.user);
  } else {
    users.push_back(identity_.user);
    if (to.id != identity_.user) users.push_back(to.id);
  }
  std::set<DeviceAddr> current;
  for (auto u : users) {
    auto keys = core_.store.ListDeviceKeys(u);
    if (!keys) {
      StoreError(rid, keys.error(), "list_device_keys");
      return false;
    }
    for (const auto& k : *keys) {
      if (u != identity_.user || k.device != identity_.device) current.insert({u, k.device});
    }
  }
  json::array missing;
  json::array extra;
  auto addr = [](const DeviceAddr& a) {
    return json::object{{"user", IdToString(a.user)}, {"device", IdToString(a.device)}};
  };
  std::set<DeviceAddr> given;
  for (const auto& t : env->targets) {
    if (t.user == identity_.user && t.device == identity_.device) {
      Error(rid, code::kBadRequest, "body.ciphertexts: the sending device needs no ciphertext");
      return false;
    }
    if (!group && std::find(users.begin(), users.end(), t.user) == users.end()) {
      // The users of a 1:1 chat never change: this is no stale view.
      Error(rid, code::kBadRequest,
            "body.ciphertexts: user " + IdToString(t.user) + " is not in this conversation");
      return false;
    }
    given.insert(t);
    if (!current.contains(t)) extra.push_back(addr(t));
  }
  // A sender_key message goes to the devices it names (one, usually): only
  // devices that are not current are wrong. An e2ee message goes to all.
  if (kind == "e2ee") {
    for (const auto& c : current) {
      if (!given.contains(c)) missing.push_back(addr(c));
    }
  }
  if (missing.empty() && extra.empty()) return true;
  json::object details;
  details["missing"] = std::move(missing);
  details["extra"] = std::move(extra);
  Error(rid, code::kStaleDevices, "the ciphertexts do not match the current devices",
        std::move(details));
  return false;
}

void Session::Read(const json::object& req, const Rid& rid) {
  auto conv_it = req.find("conv");
  if (conv_it == req.end()) return Error(rid, code::kBadRequest, "conv: required");
  auto conv = ParseConv(conv_it->value());
  if (!conv) return Error(rid, code::kBadRequest, "conv: {\"user\":id} or {\"group\":id}");
  auto up_to = proto::GetId(req, "up_to_msg_id");
  if (!up_to) return Error(rid, code::kBadRequest, up_to.error().message);
  if (OverLimit(core_.write_limiter, rid)) return;
  auto ticket = BeginWrite(rid);
  if (!ticket) return;
  auto self = shared_from_this();
  core_.store.MarkRead(identity_.user, *conv, *up_to, NowMs(),
                       [self, rid, ticket](Result<std::vector<store::Appended>> r) {
                         ticket->Done();
                         if (!r) return self->StoreError(rid, r.error(), "mark_read");
                         self->Ok(rid);
                         self->core_.Wake(*r);
                       });
}

void Session::Typing(const json::object& req, const Rid& rid) {
  auto to_it = req.find("to");
  auto to = to_it == req.end() ? std::nullopt : ParseConv(to_it->value());
  if (!to) return Error(rid, code::kBadRequest, "to: {\"user\":id} or {\"group\":id}");
  auto state = proto::GetString(req, "state", 16);
  if (!state || (*state != "composing" && *state != "paused")) {
    return Error(rid, code::kBadRequest, "state: composing or paused");
  }
  if (OverLimit(core_.typing_limiter, rid)) return;
  json::object frame;
  frame["op"] = "typing";
  frame["from"] =
      json::object{{"user", IdToString(identity_.user)}, {"device", IdToString(identity_.device)}};
  std::vector<store::UserId> targets;
  if (to->kind == store::Conversation::Kind::kGroup) {
    auto g = core_.groups.Get(to->id);
    if (!g) return StoreError(rid, g.error(), "get_group");
    if (!*g || !IsMember(**g, identity_.user)) return Error(rid, code::kNotFound, "no such group");
    for (const auto& m : (*g)->members) {
      if (m.user != identity_.user) targets.push_back(m.user);
    }
    frame["conv"] = ConvJson(*to);
  } else {
    if (to->id == identity_.user) return;
    targets.push_back(to->id);
    frame["conv"] = ConvJson({store::Conversation::Kind::kUser, identity_.user});
  }
  frame["state"] = *state;
  const std::string text = json::serialize(frame);
  for (auto user : targets) core_.SendTyping(user, identity_.user, text);
}

void Session::History(const json::object& req, const Rid& rid) {
  auto conv_it = req.find("conv");
  if (conv_it == req.end()) return Error(rid, code::kBadRequest, "conv: required");
  auto conv = ParseConv(conv_it->value());
  if (!conv) return Error(rid, code::kBadRequest, "conv: {\"user\":id} or {\"group\":id}");
  auto before = proto::GetOptId(req, "before_msg_id");
  if (!before) return Error(rid, code::kBadRequest, before.error().message);
  std::int64_t limit = 50;
  if (req.contains("limit")) {
    auto l = proto::GetInt(req, "limit");
    if (!l || *l < 1 || *l > kMaxHistory) {
      return Error(rid, code::kBadRequest, "limit: from 1 to 100");
    }
    limit = *l;
  }
  if (conv->kind == store::Conversation::Kind::kGroup) {
    // A former member still reads what reached it before it left: its
    // conversation index holds exactly that.
    auto m = core_.groups.MembershipOf(conv->id, identity_.user);
    if (!m) return StoreError(rid, m.error(), "group_membership");
    if (*m == Membership::kNever) return Error(rid, code::kNotFound, "no such group");
  }
  auto page = core_.store.History(identity_.user, *conv, before->value_or(0),
                                  static_cast<std::size_t>(limit) + 1);
  if (!page) return StoreError(rid, page.error(), "history");
  bool more = page->size() > static_cast<std::size_t>(limit);
  if (more) page->resize(static_cast<std::size_t>(limit));
  // Paged by bytes as well as by count: the reply fits one outgoing frame
  // (kMaxReplyBytes); what does not fit is the next page (more = true).
  json::array messages;
  std::size_t bytes = 0;
  for (const auto& m : *page) {
    json::object one = MessageJson(*m, identity_.user, identity_.device);
    const std::size_t size = json::serialize(one).size() + 1;
    if (!messages.empty() && bytes + size > kHistoryBudgetBytes) {
      more = true;
      break;
    }
    bytes += size;
    messages.push_back(std::move(one));
  }
  json::object result;
  result["messages"] = std::move(messages);
  result["more"] = more;
  Ok(rid, std::move(result));
}

void Session::Receipts(const json::object& req, const Rid& rid) {
  auto msg_id = proto::GetId(req, "msg_id");
  if (!msg_id) return Error(rid, code::kBadRequest, msg_id.error().message);
  auto m = core_.store.GetMessage(*msg_id);
  if (!m) return StoreError(rid, m.error(), "get_message");
  // Only the sender learns who received its message.
  if (!*m || (*m)->sender != identity_.user) return Error(rid, code::kNotFound, "no such message");
  auto receipts = core_.store.GetReceipts(*msg_id);
  if (!receipts) return StoreError(rid, receipts.error(), "get_receipts");
  auto list = [](const std::vector<store::ReceiptEntry>& entries) {
    json::array a;
    for (const auto& e : entries) {
      a.push_back(json::object{{"user", IdToString(e.user)}, {"ts_ms", e.ts_ms}});
    }
    return a;
  };
  json::object result;
  result["delivered"] = list(receipts->delivered);
  result["read"] = list(receipts->read);
  result["members"] = (*m)->recipients;
  Ok(rid, std::move(result));
}

void Session::PresenceSubscribe(const json::object& req, const Rid& rid) {
  auto users = proto::GetArray(req, "users", kMaxPresenceUsers);
  if (!users) return Error(rid, code::kBadRequest, users.error().message);
  std::vector<store::UserId> ids;
  for (const auto& v : **users) {
    auto id = v.is_string() ? ParseId(v.get_string()) : std::nullopt;
    if (!id) return Error(rid, code::kBadRequest, "users: must be a list of user ids");
    ids.push_back(*id);
  }
  if (RefusedByLimit(*this, core_.abuse.lookups, core_.config.lookup_burst,
                     static_cast<double>(ids.size()), rid, "too many presence lookups")) {
    return;
  }
  auto statuses = core_.presence.Subscribe(shared_from_this(), identity_.user, ids);
  if (!statuses) return StoreError(rid, statuses.error(), "presence");
  json::object result;
  result["statuses"] = std::move(*statuses);
  Ok(rid, std::move(result));
}

}  // namespace parley::core
