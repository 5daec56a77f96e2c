#include "core/session/session.hpp"

#include <boost/asio/post.hpp>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {
constexpr std::size_t kMaxBadFrames = 5;  // the fifth in a minute closes with 4400
constexpr double kBadFrameWindowS = 60;
constexpr std::size_t kMaxRidLength = 64;
// Read pool: frames of one connection waiting for its strand, at most (net
// stops reading the socket past either bound, so TCP holds the client back).
constexpr std::uint32_t kMaxQueuedFrames = 32;
constexpr std::size_t kMaxQueuedBytes = 1 << 20;
}  // namespace

Session::Session(Core& core, std::shared_ptr<net::WsConnection> connection,
                 std::string header_token)
    : core_(core), conn_(std::move(connection)), header_token_(std::move(header_token)) {
  if (core_.reads.Active()) home_.emplace(core_.reads.MakeStrand());
}

void Session::RunHome(std::function<void()> fn) {
  if (!home_) return conn_->Post(std::move(fn));
  boost::asio::post(*home_, [fn = std::move(fn)] { RunGuarded("session", fn); });
}

bool Session::QueueHasRoom() const {
  // The request cap counts the frames read and not handled yet as well as
  // the writes waiting for the store: with the read pool, frames wait for
  // the session's strand after net has read them.
  const std::uint32_t queued = queued_frames_.load();
  const std::uint32_t cap = core_.config.max_requests_in_flight;
  if (cap != 0 && in_flight_.load() + queued >= cap) return false;
  return queued < kMaxQueuedFrames && queued_bytes_.load() < kMaxQueuedBytes;
}

void Session::MaybeResume() {
  // Either this sees the flag ReadyForMore set, or ReadyForMore's second
  // look sees this room: a pause is never left without its resume.
  if (QueueHasRoom() && resume_wanted_.exchange(false)) conn_->ResumeReading();
}

void Session::FrameDone(std::size_t bytes) {
  queued_bytes_.fetch_sub(bytes);
  queued_frames_.fetch_sub(1);
  MaybeResume();
}

const std::unordered_map<std::string_view, Session::Handler>& Session::Handlers() {
  static const std::unordered_map<std::string_view, Handler> handlers = {
      {"hello", &Session::Hello},
      {"ping", &Session::Ping},
      {"devices.list", &Session::DevicesList},
      {"devices.remove", &Session::DevicesRemove},
      {"profile.get", &Session::ProfileGet},
      {"profile.set", &Session::ProfileSet},
      {"contacts.discover", &Session::ContactsDiscover},
      {"send", &Session::Send},
      {"ack", &Session::AckOp},
      {"read", &Session::Read},
      {"typing", &Session::Typing},
      {"history", &Session::History},
      {"receipts", &Session::Receipts},
      {"presence.subscribe", &Session::PresenceSubscribe},
      {"group.create", &Session::GroupCreate},
      {"group.info", &Session::GroupInfo},
      {"group.add", &Session::GroupAdd},
      {"group.remove", &Session::GroupRemove},
      {"group.promote", &Session::GroupPromote},
      {"group.demote", &Session::GroupDemote},
      {"group.update", &Session::GroupUpdate},
      {"group.leave", &Session::GroupLeave},
      {"keys.upload", &Session::KeysUpload},
      {"keys.bundle", &Session::KeysBundle},
      {"keys.count", &Session::KeysCount},
  };
  return handlers;
}

void Session::OnFrame(std::string_view text) {
  if (!home_) return HandleFrame(text);
  // Read pool: the I/O thread only queues the frame on the session's strand.
  queued_frames_.fetch_add(1);
  queued_bytes_.fetch_add(text.size());
  boost::asio::post(*home_, [self = shared_from_this(), frame = std::string(text)] {
    if (!self->gone_.load()) RunGuarded("frame", [&] { self->HandleFrame(frame); });
    self->FrameDone(frame.size());
  });
}

void Session::HandleFrame(std::string_view text) {
  if (closed_) return;
  auto parsed = proto::ParseObject(text);
  if (!parsed) return BadFrame(parsed.error().message);
  const json::object& req = *parsed;

  Rid rid;
  if (auto it = req.find("rid"); it != req.end() && !it->value().is_null()) {
    if (!it->value().is_string() || it->value().get_string().size() > kMaxRidLength) {
      core_.metrics.FrameIn("other").Inc();
      return Error(std::nullopt, code::kBadRequest,
                   "rid: must be a string of at most 64 characters");
    }
    rid = std::string(it->value().get_string());
  }
  auto op = proto::GetString(req, "op", 64);
  if (!op) {
    core_.metrics.FrameIn("other").Inc();
    return Error(rid, code::kBadRequest, op.error().message);
  }
  core_.metrics.FrameIn(*op).Inc();

  const auto& handlers = Handlers();
  auto it = handlers.find(*op);
  if (it == handlers.end()) {
    return Error(rid, code::kUnknownOp, "unknown op: " + std::string(*op));
  }
  if (!authenticated_ && *op != "hello" && *op != "ping") {
    return Error(rid, code::kBadRequest, "send hello first");
  }
  (this->*(it->second))(req, rid);
}

bool Session::ReadyForMore() {
  if (QueueHasRoom()) return true;
  resume_wanted_.store(true);
  // An answer or the strand may have made room meanwhile without seeing
  // the flag.
  return QueueHasRoom() && resume_wanted_.exchange(false);
}

std::shared_ptr<Session::WriteTicket> Session::BeginWrite(const Rid& rid) {
  if (!core_.write_share.Acquire(identity_.user)) {
    json::object extra;
    extra["retry_after_ms"] = 100;
    Error(rid, code::kRateLimited, "too many writes in flight", std::move(extra));
    return nullptr;
  }
  in_flight_.fetch_add(1);
  return std::make_shared<WriteTicket>(shared_from_this());
}

void Session::WriteTicket::Done() {
  if (done_) return;
  done_ = true;
  Session& s = *session_;
  s.core_.write_share.Release(s.identity_.user);
  s.in_flight_.fetch_sub(1);
  // Net may have stopped reading at the cap: this answer makes room.
  s.MaybeResume();
}

void Session::OnClose() {
  if (!home_) return HandleClose();
  // Behind the frames already queued, which now only drop their answers.
  gone_.store(true);
  RunHome([self = shared_from_this()] { self->HandleClose(); });
}

void Session::HandleClose() {
  if (closed_) return;
  closed_ = true;
  if (authenticated_) {
    bool went_offline = false;
    const bool was_registered =
        core_.sessions.Detach(identity_.user, identity_.device, this, &went_offline);
    core_.metrics.sessions_authenticated.Add(-1);
    core_.presence.Unsubscribe(this);
    if (core_.Clustered()) {
      const store::UserId user = identity_.user;
      core_.bus->Unsubscribe(user);
      // A session replaced by a newer one of the device here leaves the
      // registration to that one.
      if (!was_registered) return;
      // Offline when that was the user's last device on every node; without
      // the bus, as far as this node knows.
      core_.bus->Unregister(user, identity_.device,
                            [core = &core_, user, went_offline](Result<bool> last) {
                              if (last ? *last : went_offline) {
                                core->presence.WentOffline(user, NowMs());
                              }
                            });
      return;
    }
    if (went_offline) core_.presence.WentOffline(identity_.user, NowMs());
  }
}

void Session::BadFrame(std::string_view why) {
  core_.metrics.FrameIn("other").Inc();
  const double now = MonoSeconds();
  std::erase_if(bad_frames_, [&](double t) { return t <= now - kBadFrameWindowS; });
  bad_frames_.push_back(now);
  if (bad_frames_.size() >= kMaxBadFrames) {
    return Close(proto::close_code::kProtocol, "too many unparseable frames");
  }
  Error(std::nullopt, code::kBadFrame, why);
}

void Session::SendFrame(std::string_view op, json::object frame) {
  core_.metrics.FrameOut(op).Inc();
  conn_->Send(json::serialize(frame));
}

void Session::SendRaw(std::string_view op, const std::string& text) {
  core_.metrics.FrameOut(op).Inc();
  conn_->Send(text);
}

void Session::Ok(const Rid& rid, json::object result) {
  json::object frame;
  frame.reserve(result.size() + 2);
  frame["op"] = "ok";
  if (rid) frame["rid"] = *rid;
  for (auto& kv : result) frame[kv.key()] = std::move(kv.value());
  std::string text = json::serialize(frame);
  if (text.size() > kMaxReplyBytes) {
    // A bug, not an input: every reply that can grow is paged below this.
    PLOG_ERROR("reply too large", "bytes={}", text.size());
    return Error(rid, code::kInternal, "the reply would exceed the frame limit");
  }
  core_.metrics.FrameOut("ok").Inc();
  conn_->Send(std::move(text));
}

void Session::Error(const Rid& rid, std::string_view error_code, std::string_view message,
                    json::object extra) {
  json::object frame;
  frame["op"] = "error";
  if (rid) frame["rid"] = *rid;
  frame["code"] = error_code;
  frame["message"] = message;
  for (auto& kv : extra) frame[kv.key()] = std::move(kv.value());
  SendFrame("error", std::move(frame));
}

void Session::StoreError(const Rid& rid, const parley::Error& e, std::string_view op) {
  if (e.code != Errc::kNotFound && e.code != Errc::kInvalid) {
    PLOG_ERROR("store failure", "op={} error={}", op, LogQuote(e.message));
  }
  const auto wire = proto::ToWire(e);
  Error(rid, wire.code, wire.message);
}

void Session::Close(std::uint16_t close_code, std::string reason) {
  core_.metrics.FrameOut("bye").Inc();
  conn_->Close(close_code, std::move(reason));
}

void CloseSession(Session& session, std::uint16_t close_code, std::string reason) {
  session.Close(close_code, std::move(reason));
}

void Session::Ping(const json::object&, const Rid& rid) {
  json::object frame;
  frame["op"] = "pong";
  if (rid) frame["rid"] = *rid;
  SendFrame("pong", std::move(frame));
}

void Session::Hello(const json::object& req, const Rid& rid) {
  if (authenticated_) return Error(rid, code::kBadRequest, "already authenticated");
  auto token = proto::GetOptString(req, "token", 4096);
  if (!token) return Error(rid, code::kBadRequest, token.error().message);
  std::string_view presented = *token ? **token : std::string_view(header_token_);
  if (presented.empty()) {
    Error(rid, code::kInvalidToken, "token: required (or an Authorization header)");
    return Close(proto::close_code::kUnauthenticated, "not authenticated");
  }
  std::optional<store::Seq> resume_after;
  if (auto it = req.find("resume_after"); it != req.end() && !it->value().is_null()) {
    auto r = proto::GetInt(req, "resume_after");
    if (!r || *r < 0) return Error(rid, code::kBadRequest, "resume_after: a sequence number");
    resume_after = static_cast<store::Seq>(*r);
  }
  bool skip_own_copy = false;
  if (auto it = req.find("skip_own_copy"); it != req.end() && !it->value().is_null()) {
    if (!it->value().is_bool()) return Error(rid, code::kBadRequest, "skip_own_copy: a boolean");
    skip_own_copy = it->value().get_bool();
  }
  auto id = core_.Authenticate(presented);
  if (!id) {
    Error(rid, id.error().code, id.error().message);
    return Close(id.error().close_code, id.error().message);
  }
  identity_ = *id;
  authenticated_ = true;
  skip_own_copy_ = skip_own_copy;
  conn_->MarkAuthenticated();
  core_.metrics.sessions_authenticated.Add(1);
  bool came_online = false;
  if (auto old = core_.sessions.Attach(identity_.user, identity_.device, shared_from_this(),
                                       &came_online)) {
    old->Close(proto::close_code::kReplaced, "replaced by a newer connection of this device");
  }
  // A removal that commits between Authenticate and Attach finds no session
  // to close: FinishHello looks for the device once more, now that this
  // session is findable.
  if (core_.Clustered()) {
    const store::UserId user = identity_.user;
    // An older connection of this device on another node closes (4409).
    core_.bus->PublishControl({.kind = bus::Control::Kind::kReplaced,
                               .user = user,
                               .device = identity_.device,
                               .connection = conn_->Id(),
                               .origin = {}});
    // Online when this is the user's first device on every node; without
    // the bus, as far as this node knows.
    // hello is answered once both the registration (so that anyone asking
    // for this user's presence from now on hears "online") and the
    // subscription are in place. Subscribe before read: the head is read
    // once the subscription is in place (or the bus is down, and
    // on_resubscribed pumps later).
    auto self = shared_from_this();
    auto pending = std::make_shared<std::atomic<int>>(2);
    auto finish = [self, rid, resume_after, pending] {
      if (pending->fetch_sub(1) != 1) return;
      self->RunHome([self, rid, resume_after] { self->FinishHello(rid, resume_after); });
    };
    core_.bus->Register(user, identity_.device,
                        [core = &core_, user, came_online, finish](Result<bool> first) {
                          if (first ? *first : came_online) core->presence.CameOnline(user);
                          finish();
                        });
    core_.bus->Subscribe(user, [finish](bool) { finish(); });
    return;
  }
  if (came_online) core_.presence.CameOnline(identity_.user);
  FinishHello(rid, resume_after);
}

void Session::CatchUp(store::Seq head) {
  // The periodic head check asks every session of a node in turn: most have
  // everything, and a post to each costs a thread wake-up.
  if (head < next_.load(std::memory_order_relaxed)) return;
  auto self = shared_from_this();
  RunHome([self, head] {
    if (!self->delivering_ || self->closed_) return;
    if (head > self->head_) self->head_ = head;
    self->Pump();
  });
}

void Session::FinishHello(const Rid& rid, std::optional<store::Seq> resume_after) {
  if (closed_) return;
  // Read after Attach: whatever is appended from now on is also announced to
  // this session, so nothing falls between the head read here and the stream;
  // and a removal of the device from now on finds this session and closes it.
  // One read: head, cursor, and whether the device still exists.
  auto state = core_.store.ReadHello(identity_.user, identity_.device);
  if (!state) {
    StoreError(rid, state.error(), "hello");
    return Close(proto::close_code::kTryAgainLater, "try again");
  }
  if (!*state) {
    Error(rid, code::kDeviceRevoked, "this device was removed");
    return Close(proto::close_code::kRevoked, "this device was removed");
  }
  const store::Seq head = (*state)->head;
  const store::Seq cursor = (*state)->cursor;
  const std::int64_t now = NowMs();
  core_.store.TouchDevice(identity_.user, identity_.device, now, [](Status) {});

  json::object result;
  result["user_id"] = IdToString(identity_.user);
  result["device_id"] = IdToString(identity_.device);
  result["head_seq"] = std::to_string(head);
  result["server_time_ms"] = now;
  if (skip_own_copy_) result["skip_own_copy"] = true;  // granted: the client may rely on it
  Ok(rid, std::move(result));
  // The answer goes first, then the stream: a client sees hello's ok before
  // any event.
  StartDelivery(std::min(resume_after.value_or(cursor), head), head);
}

}  // namespace parley::core
