#include "core/core.hpp"

#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/e2ee.hpp"
#include "core/render.hpp"
#include "core/session.hpp"
#include "proto/errors.hpp"

namespace parley::core {

namespace {

// Label values are bounded: anything else counts as "other".
constexpr std::string_view kOpsIn[] = {"hello",
                                       "ping",
                                       "send",
                                       "ack",
                                       "read",
                                       "typing",
                                       "history",
                                       "receipts",
                                       "presence.subscribe",
                                       "group.create",
                                       "group.info",
                                       "group.add",
                                       "group.remove",
                                       "group.promote",
                                       "group.demote",
                                       "group.update",
                                       "group.leave",
                                       "keys.upload",
                                       "keys.bundle",
                                       "keys.count",
                                       "profile.get",
                                       "profile.set",
                                       "contacts.discover",
                                       "devices.list",
                                       "devices.remove",
                                       "push.register"};
constexpr std::string_view kOpsOut[] = {"ok",       "error", "event", "typing",
                                        "presence", "pong",  "bye"};

}  // namespace

CoreMetrics::CoreMetrics(Registry& r)
    : registry(r),
      sessions_authenticated(
          r.GetGauge("parley_sessions_authenticated", "WebSocket sessions that completed hello")),
      otp_sent(r.GetCounter("parley_otp_sent_total", "One-time codes handed to the SMS provider")),
      sign_ins(r.GetCounter("parley_sign_ins_total", "Successful /v1/auth/verify calls")),
      in_other_(r.GetCounter("parley_ws_frames_in_total", "WebSocket frames received, by op",
                             {{"op", "other"}})),
      out_other_(r.GetCounter("parley_ws_frames_out_total", "WebSocket frames sent, by op",
                              {{"op", "other"}})) {
  for (auto op : kOpsIn) {
    in_[op] = &r.GetCounter("parley_ws_frames_in_total", "WebSocket frames received, by op",
                            {{"op", std::string(op)}});
  }
  for (auto op : kOpsOut) {
    out_[op] = &r.GetCounter("parley_ws_frames_out_total", "WebSocket frames sent, by op",
                             {{"op", std::string(op)}});
  }
}

Counter& CoreMetrics::FrameIn(std::string_view op) {
  auto it = in_.find(op);
  return it == in_.end() ? in_other_ : *it->second;
}

Counter& CoreMetrics::FrameOut(std::string_view op) {
  auto it = out_.find(op);
  return it == out_.end() ? out_other_ : *it->second;
}

Core::Core(const Config& cfg, store::Store& st, Registry& registry, TokenService& tok,
           SmsSender& sms_sender, std::string node)
    : config(cfg),
      store(st),
      tokens(tok),
      sms(sms_sender),
      metrics(registry),
      ids(NodeNumber(cfg.node_id)),
      node_name(std::move(node)),
      presence(*this),
      groups(st),
      otp_per_phone(cfg.otp_per_phone, 600),
      otp_per_address(cfg.otp_per_address_per_hour, 3600),
      contacts_per_day(cfg.contacts_per_day, 86400000),
      send_limiter(cfg.device_send_rate, 4.0 * cfg.device_send_rate),
      typing_limiter(cfg.device_send_rate, 4.0 * cfg.device_send_rate) {}

void Core::Wake(const std::vector<store::Appended>& appended) {
  for (const auto& a : appended) {
    for (auto& s : sessions.ForUser(a.user)) s->Notify(a.seq, nullptr, nullptr);
  }
}

void Core::Deliver(const std::shared_ptr<const store::Message>& message,
                   const std::vector<store::Appended>& appended) {
  // Encrypted kinds: the event is rendered once without ciphertexts and
  // each device's own ciphertext is spliced in (e2ee.hpp).
  EncryptedFrames encrypted;
  const bool per_device = IsEncryptedKind(message->kind) && encrypted.Prepare(*message);
  // Every recipient sees the same event (but for its seq), and the sender's
  // own copy differs only in conv and outgoing: two renders per message.
  std::string bodies[2];  // [incoming, outgoing]
  for (const auto& a : appended) {
    auto targets = sessions.ForUser(a.user);
    if (targets.empty()) continue;
    auto event = std::make_shared<store::MailboxEvent>();
    event->seq = a.seq;
    event->type = store::EventType::kMessage;
    event->ts_ms = message->ts_ms;
    event->msg_id = message->msg_id;
    event->outgoing = message->sender == a.user;
    event->message = message;
    if (per_device) {
      for (auto& s : targets) {
        auto frame = std::make_shared<const std::string>(
            WrapEvent(a.seq, encrypted.EventBodyFor(a.user, s->identity().device)));
        s->Notify(a.seq, event, std::move(frame));
      }
      continue;
    }
    std::shared_ptr<const std::string> frame;
    if (!IsEncryptedKind(message->kind)) {
      std::string& body = bodies[event->outgoing ? 1 : 0];
      if (body.empty()) body = EventBody(*event, a.user, 0);
      frame = std::make_shared<const std::string>(WrapEvent(a.seq, body));
    }
    for (auto& s : targets) s->Notify(a.seq, event, frame);
  }
}

void Core::PurgeExpired() {
  if (purging_.exchange(true)) return;
  PurgeBatch(NowMs() - static_cast<std::int64_t>(config.retention_days) * 86400000);
}

void Core::PurgeBatch(std::int64_t cutoff_ms) {
  constexpr std::size_t kBatch = 2000;
  store.Purge(cutoff_ms, kBatch, [this, cutoff_ms](Result<std::size_t> r) {
    if (!r) {
      PLOG_ERROR("retention purge failed", "error={}", LogQuote(r.error().message));
    } else if (*r == kBatch) {
      return PurgeBatch(cutoff_ms);  // more to do; other writes interleave between batches
    } else if (*r > 0) {
      PLOG_INFO("retention purge done", "rows={}", *r);
    }
    purging_ = false;
  });
}

void Core::AnnounceDevice(store::UserId user, store::DeviceId device, std::string_view change,
                          std::string_view name, std::function<void()> then) {
  boost::json::object e;
  e["type"] = "device";
  e["change"] = change;
  e["device_id"] = IdToString(device);
  e["name"] = name;
  store.AppendEvents({user}, store::EventType::kDevice, boost::json::serialize(e), NowMs(),
                     [this, then = std::move(then)](Result<std::vector<store::Appended>> r) {
                       if (r) {
                         Wake(*r);
                       } else {
                         PLOG_ERROR("store write failed", "op=append_events error={}",
                                    LogQuote(r.error().message));
                       }
                       then();
                     });
}

bool Core::AreContacts(store::UserId a, store::UserId b) {
  auto page = store.History(a, {store::Conversation::Kind::kUser, b}, 0, 1);
  return page && !page->empty();
}

bool Core::CanSeeLastSeen(const store::User& target, store::UserId viewer) {
  if (target.id == viewer || target.last_seen_visibility == "everyone") return true;
  if (target.last_seen_visibility == "contacts") return AreContacts(target.id, viewer);
  return false;
}

Result<bool> Core::MayReadMedia(std::string_view media_id, store::UserId user) {
  auto id = ParseId(media_id);
  if (!id) return false;
  auto media = store.GetMedia(*id);
  if (!media) return std::unexpected(media.error());
  if (!*media || (*media)->status == store::MediaStatus::kUploading) return false;
  if ((*media)->owner == user) return true;
  return store.MediaGranted(*id, user);
}

std::expected<Identity, AuthFailure> Core::Authenticate(std::string_view token) {
  auto claims = tokens.VerifyAccess(token, NowMs());
  if (!claims) {
    if (claims.error() == TokenError::kExpired) {
      return std::unexpected(AuthFailure{proto::code::kTokenExpired, 401,
                                         proto::close_code::kUnauthenticated,
                                         "the access token has expired; refresh it"});
    }
    return std::unexpected(AuthFailure{proto::code::kInvalidToken, 401,
                                       proto::close_code::kUnauthenticated,
                                       "the access token is not valid"});
  }
  auto device = store.GetDevice(claims->user, claims->device);
  if (!device) {
    PLOG_ERROR("store read failed", "op=get_device error={}", LogQuote(device.error().message));
    return std::unexpected(
        AuthFailure{proto::code::kInternal, 500, proto::close_code::kTryAgainLater, "try again"});
  }
  if (!*device) {
    return std::unexpected(AuthFailure{proto::code::kDeviceRevoked, 403,
                                       proto::close_code::kRevoked, "this device was removed"});
  }
  if ((*device)->token_gen != claims->gen) {
    return std::unexpected(AuthFailure{proto::code::kInvalidToken, 401,
                                       proto::close_code::kUnauthenticated,
                                       "the access token was revoked"});
  }
  return Identity{claims->user, claims->device};
}

}  // namespace parley::core
