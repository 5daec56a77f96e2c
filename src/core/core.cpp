#include "core/core.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/account/e2ee.hpp"
#include "core/session/render.hpp"
#include "core/session/session.hpp"
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
      typing_limiter(cfg.device_send_rate, 4.0 * cfg.device_send_rate),
      write_limiter(cfg.device_write_rate, 4.0 * cfg.device_write_rate),
      fanout_limiter(cfg.device_fanout_rate, 4.0 * cfg.device_fanout_rate),
      write_share(cfg.user_writes_in_flight),
      abuse(cfg),
      reads(st.ReadsBlock() ? StoreReaderThreads(cfg) : 0),
      clustered_(cfg.bus != "none") {}

Core::~Core() { reads.Stop(); }

void Core::Wake(const std::vector<store::Appended>& appended) {
  const bool clustered = Clustered();
  for (const auto& a : appended) {
    // With the event at hand each session renders it instead of reading it back.
    for (auto& s : sessions.ForUser(a.user)) s->Notify(a.seq, a.event, nullptr);
    if (clustered) PublishWake(a.user, a.seq, {});
  }
}

void Core::Deliver(const std::shared_ptr<const store::Message>& message,
                   const std::vector<store::Appended>& appended, const Session* skip) {
  // Encrypted kinds: the event is rendered once without ciphertexts and
  // each device's own ciphertext is spliced in (e2ee.hpp).
  EncryptedFrames encrypted;
  const bool per_device = IsEncryptedKind(message->kind) && encrypted.Prepare(*message);
  // Every recipient sees the same event (but for its seq), and the sender's
  // own copy differs only in conv and outgoing: two renders per message.
  std::string bodies[2];  // [incoming, outgoing]
  const bool clustered = Clustered();
  for (const auto& a : appended) {
    auto targets = sessions.ForUser(a.user);
    if (skip != nullptr) std::erase_if(targets, [skip](const auto& s) { return s.get() == skip; });
    if (targets.empty() && !clustered) continue;
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
      // Per-device frames travel as a bare seq: each node renders its own.
      if (clustered) PublishWake(a.user, a.seq, {});
      continue;
    }
    std::shared_ptr<const std::string> frame;
    if (!IsEncryptedKind(message->kind)) {
      std::string& body = bodies[event->outgoing ? 1 : 0];
      if (body.empty()) body = EventBody(*event, a.user, 0);
      frame = std::make_shared<const std::string>(WrapEvent(a.seq, body));
    }
    for (auto& s : targets) s->Notify(a.seq, event, frame);
    if (clustered) {
      PublishWake(a.user, a.seq,
                  frame && frame->size() <= bus::kMaxInlineBytes ? *frame : std::string());
    }
  }
}

// ---- Delivery across nodes -------------------------------------------------

void Core::PublishWake(store::UserId user, store::Seq seq, std::string frame) {
  bus->PublishWake({.user = user, .seq = seq, .frame = std::move(frame), .origin = {}});
}

void Core::SetBusHandlers(bus::Handlers& h) {
  if (!clustered_) return;  // one node: nobody else publishes anything
  h.on_wake = [this](const bus::Wake& w) { OnWake(w); };
  h.on_typing = [this](const bus::Typing& t) {
    for (auto& s : sessions.ForUser(t.to)) s->SendRaw("typing", t.frame);
  };
  h.on_control = [this](const bus::Control& c) { OnControl(c); };
  if (reads.Active() && !presence_strand_) presence_strand_.emplace(reads.MakeStrand());
  h.on_presence = [this](const bus::PresenceChange& p) {
    if (!presence_strand_) return OnPresence(p);
    boost::asio::post(*presence_strand_,
                      [this, p] { RunGuarded("bus_presence", [&] { OnPresence(p); }); });
  };
  // Whatever was published while the subscriber was away is lost: every
  // local session reads its mailbox again.
  h.on_resubscribed = [this] {
    // A head read per local user: on the read pool when reads block, so
    // that the bus's callbacks (wakes) are not held up behind them.
    if (!reads.Active()) return PumpUsers(sessions.Users());
    reads.Post([this] { PumpUsers(sessions.Users()); });
  };
}

void Core::OnPresence(const bus::PresenceChange& p) {
  if (bus != nullptr && p.origin == bus->instance()) {
    if (p.online) {
      // This node was swept for dead while it was paused, and its
      // devices are registered again: its users are back.
      if (sessions.IsOnline(p.user)) presence.CameOnline(p.user);
      return;
    }
    // The sweep of a dead node found the user offline everywhere: this
    // node stands in for the dead one (last_seen, and the others hear it).
    if (!sessions.IsOnline(p.user)) presence.WentOffline(p.user, p.last_seen_ms);
    return;
  }
  presence.Remote(p.user, p.online, p.last_seen_ms);
}

void Core::OnWake(const bus::Wake& w) {
  auto targets = sessions.ForUser(w.user);
  if (targets.empty()) return;
  // The inline frame stands for exactly the seq it names; without one the
  // sessions read the mailbox.
  std::shared_ptr<store::MailboxEvent> event;
  std::shared_ptr<const std::string> frame;
  if (!w.frame.empty()) {
    event = std::make_shared<store::MailboxEvent>();
    event->seq = w.seq;
    frame = std::make_shared<const std::string>(w.frame);
  }
  for (auto& s : targets) s->Notify(w.seq, event, frame);
}

void Core::OnControl(const bus::Control& c) {
  auto s = sessions.Find(c.user, c.device);
  if (!s) return;
  switch (c.kind) {
    case bus::Control::Kind::kRemoved:
      return s->Close(proto::close_code::kRevoked, "this device was removed");
    case bus::Control::Kind::kRevoked:
      return s->Close(proto::close_code::kUnauthenticated, "tokens revoked");
    case bus::Control::Kind::kReplaced:
      // The newer connection is on the publishing node: the one here is older.
      return s->Close(proto::close_code::kReplaced,
                      "replaced by a newer connection of this device");
  }
}

void Core::CloseDevice(store::UserId user, store::DeviceId device, bus::Control::Kind kind) {
  if (auto s = sessions.Find(user, device)) {
    if (kind == bus::Control::Kind::kRemoved) {
      s->Close(proto::close_code::kRevoked, "this device was removed");
    } else {
      s->Close(proto::close_code::kUnauthenticated, "tokens revoked");
    }
  }
  if (Clustered()) {
    bus->PublishControl(
        {.kind = kind, .user = user, .device = device, .connection = 0, .origin = {}});
  }
}

void Core::SendTyping(store::UserId to, store::UserId from, const std::string& frame) {
  for (auto& s : sessions.ForUser(to)) s->SendRaw("typing", frame);
  if (Clustered()) bus->PublishTyping({.to = to, .from = from, .frame = frame, .origin = {}});
}

bool Core::OnlineAnywhere(store::UserId user) {
  if (sessions.IsOnline(user)) return true;
  if (!Clustered()) return false;
  std::lock_guard lock(online_mu_);
  return online_elsewhere_.contains(user);
}

void Core::MarkOnline(store::UserId user, bool online) {
  std::lock_guard lock(online_mu_);
  if (online) {
    online_elsewhere_.insert(user);
  } else {
    online_elsewhere_.erase(user);
  }
}

void Core::PumpUsers(const std::vector<store::UserId>& users) {
  // The heads are read a thousand users at a time, one read each (the head
  // check of a clustered node read them one by one: on PostgreSQL a round
  // trip per user with a device here, every second).
  constexpr std::size_t kChunk = 1000;
  for (std::size_t at = 0; at < users.size(); at += kChunk) {
    const std::span<const store::UserId> chunk(users.data() + at,
                                               std::min(kChunk, users.size() - at));
    auto heads = store.HeadSeqs(chunk);
    if (!heads) {
      PLOG_WARN("store read failed", "op=head_seqs error={}", LogQuote(heads.error().message));
      return;  // the next check tries again
    }
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      if ((*heads)[i] == 0) continue;
      for (auto& s : sessions.ForUser(chunk[i])) s->CatchUp((*heads)[i]);
    }
  }
}

void Core::CheckHeads(std::size_t max_users) {
  if (reads.Active()) {
    // Up to max_users round trips: never on the I/O thread whose timer
    // calls this, and never two checks at once.
    if (head_check_running_.exchange(true)) return;
    reads.Post([this, max_users] {
      RunGuarded("check_heads", [&] { CheckHeadsNow(max_users); });
      head_check_running_.store(false);
    });
    return;
  }
  CheckHeadsNow(max_users);
}

void Core::CheckHeadsNow(std::size_t max_users) {
  std::vector<store::UserId> batch;
  {
    std::lock_guard lock(head_check_mu_);
    if (head_check_queue_.empty()) head_check_queue_ = sessions.Users();
    const std::size_t n = std::min(max_users, head_check_queue_.size());
    batch.assign(head_check_queue_.end() - static_cast<std::ptrdiff_t>(n), head_check_queue_.end());
    head_check_queue_.resize(head_check_queue_.size() - n);
  }
  PumpUsers(batch);
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

bool Core::ChoseContact(store::UserId user, store::UserId contact) {
  auto wrote = store.HasWrittenTo(user, contact);
  if (!wrote) {
    PLOG_WARN("store read failed", "op=has_written_to error={}", LogQuote(wrote.error().message));
    return false;  // hide rather than show
  }
  return *wrote;
}

bool Core::CanSeeLastSeen(const store::User& target, store::UserId viewer) {
  if (target.id == viewer || target.last_seen_visibility == "everyone") return true;
  if (target.last_seen_visibility == "contacts") return ChoseContact(target.id, viewer);
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

Result<bool> Core::UserExists(store::UserId user) {
  if (known_users.Contains(user)) return true;
  auto found = store.GetUser(user);
  if (!found) return std::unexpected(found.error());
  if (!*found) return false;
  known_users.Remember(user);
  return true;
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
