// Client::Impl, the sync half: mailbox events (dedupe, store, watermark,
// acks), the outbox, history, typing and presence. See the design note in
// client_impl.hpp.
#include <boost/asio/steady_timer.hpp>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

using detail::Int;
using detail::Obj;
using detail::Seq;
using detail::Str;
using namespace std::chrono_literals;

namespace {

constexpr auto kTypingExpiry = 6s;
// A hole below events already handled that stays unfilled this long is
// given up (the server skips events it cannot render, e.g. purged ones).
constexpr auto kGapTimeout = 5s;
// A device that never synced and gets no event this long after hello is
// taken to be in sync.
constexpr auto kFirstSyncGrace = 2s;
constexpr std::size_t kMaxInFlightSends = 64;
constexpr std::size_t kMaxSkipped = 10000;

bool Retryable(const std::string& code) {
  return code == "disconnected" || code == "timeout" || code == "rate_limited" ||
         code == "internal" || code == "unavailable" || code == "network";
}

std::string NewClientMsgId(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "c";
  for (int i = 0; i < 2; ++i) {
    auto v = rng();
    for (int j = 0; j < 16; ++j, v >>= 4) id.push_back(kHex[v & 0xf]);
  }
  return id;
}

}  // namespace

void Client::Impl::ResetSync() {
  watermark_ = 0;
  watermark_known_ = false;
  above_.clear();
  skipped_.clear();
  acked_ = 0;
  synced_ = false;
}

void Client::Impl::AfterOnline() {
  acked_ = 0;  // acks in flight when the last connection dropped may be lost
  FlushAck();
  FlushRequests();
  keys_ready_ = false;
  CheckKeys();  // uploads keys, replenishes one-time prekeys; then the outbox goes
  if (presence_users_) {
    json::array users;
    for (const auto& u : *presence_users_) users.push_back(json::value(u));
    Call({{"op", "presence.subscribe"}, {"users", std::move(users)}}, true,
         [this](Result<json::object> r) {
           if (!r) return;
           for (auto& s : detail::ParseStatuses(*r)) events_.Push(PresenceEvent{std::move(s)});
         });
  }
  PumpOutbox();
  CheckSync();
}

// ---- Mailbox events -----------------------------------------------------------------

void Client::Impl::OnEvent(std::uint64_t seq, const json::object& event) {
  if (seq == 0) return;
  if (!watermark_known_) {
    // The first event of a device that never synced: the server started at
    // its cursor, so everything below this seq was there before the device.
    watermark_ = std::min(hello_head_, seq - 1);
    watermark_known_ = true;
  }
  const bool late = skipped_.erase(seq) > 0;  // given up as a gap, arriving after all
  if (!late && (seq <= watermark_ || above_.contains(seq))) return;  // seen: a duplicate

  std::uint64_t new_watermark = watermark_;
  if (!late && seq == watermark_ + 1) {
    new_watermark = seq;
    while (above_.contains(new_watermark + 1)) ++new_watermark;
  }
  std::vector<Event> out;
  auto s = store_->Transaction([&]() -> Status {
    if (auto h = HandleEvent(seq, event, out); !h) return h;
    if (new_watermark != watermark_) return store_->SetCursor(new_watermark);
    return {};
  });
  if (!s) {
    // Nothing is acknowledged that is not stored: drop the connection and
    // let the server send it again.
    if (ws_) ws_->Abort();
    return;
  }
  if (!late) {
    if (above_.empty() || new_watermark != watermark_) progress_at_ = Clock::now();
    if (new_watermark != watermark_) {
      above_.erase(above_.begin(), above_.upper_bound(new_watermark));
      watermark_ = new_watermark;
    } else {
      above_.insert(seq);
    }
  }
  for (auto& e : out) events_.Push(std::move(e));
  ScheduleAck();
  CheckSync();
}

Status Client::Impl::HandleEvent(std::uint64_t seq, const json::object& event,
                                 std::vector<Event>& out) {
  const std::string type = Str(event, "type");
  if (type == "message") {
    auto parsed = detail::ParseMessage(event);
    if (!parsed) {
      out.push_back(OtherEvent{seq, type, json::serialize(event)});
      return {};
    }
    parsed->seq = seq;
    if (parsed->kind == "sender_key") {
      // Key material, not a message: never stored or shown (unless unreadable).
      HandleSenderKey(*parsed, out);
      return {};
    }
    Message m = Decode(std::move(*parsed));
    // A group message ahead of its sender key: kept until the key arrives.
    auto held = HoldIfKeyMissing(seq, event, m);
    if (!held) return std::unexpected(held.error());
    if (*held) return {};
    auto put = store_->PutMessage(m);
    if (!put) return std::unexpected(put.error());
    if (*put == Store::Insert::kNew) {
      out.push_back(MessageEvent{std::move(m)});
    } else if (*put == Store::Insert::kOwnSend) {
      out.push_back(MessageStatusEvent{m.conv, m.msg_id, m.client_msg_id, MessageStatus::kSent});
    }
    return {};
  }
  if (type == "receipt") {
    ReceiptEvent r;
    if (auto it = event.find("conv"); it != event.end()) {
      r.conv = detail::ParseConv(it->value()).value_or(Conv{});
    }
    r.msg_ids = detail::StrList(event, "msg_ids");
    r.by = Str(event, "by");
    r.status = Str(event, "status") == "read" ? MessageStatus::kRead : MessageStatus::kDelivered;
    r.ts_ms = Int(event, "ts_ms");
    auto changed = store_->AdvanceStatus(r.msg_ids, r.status);
    if (!changed) return std::unexpected(changed.error());
    for (const auto& id : *changed) {
      auto stored = store_->GetMessage(id);
      std::string cmid = stored && *stored ? (*stored)->client_msg_id : std::string();
      out.push_back(MessageStatusEvent{r.conv, id, std::move(cmid), r.status, r.by});
    }
    out.push_back(std::move(r));
    return {};
  }
  if (type == "read_sync") {
    ReadSyncEvent r;
    if (auto it = event.find("conv"); it != event.end()) {
      r.conv = detail::ParseConv(it->value()).value_or(Conv{});
    }
    r.up_to_msg_id = Str(event, "up_to_msg_id");
    if (auto s = store_->MarkReadUpTo(r.conv, r.up_to_msg_id); !s) return s;
    out.push_back(std::move(r));
    return {};
  }
  if (type == "group") {
    GroupEvent g = detail::ParseGroupEvent(event);
    group_members_.erase(g.group_id);  // read again (group.info) before the next send
    if (g.change == "removed" || g.change == "left") {
      // Whoever left must not read what comes next: a new sender key, sent
      // again to every remaining member device before the next message.
      MembersLeft(g.group_id);
    }
    out.push_back(std::move(g));
    return {};
  }
  if (type == "keys_changed") {
    KeysChangedEvent k{{Str(event, "user"), Str(event, "device")}};
    if (crypto_->Encrypts()) {
      // "added": a new device (a session the SDK may have just opened with
      // it after stale_devices stays); "identity_changed", "removed": the
      // old session and sender keys are worthless.
      if (Str(event, "change") != "added") ForgetPeerDevice(k.device);
      devices_.erase(k.device.user);  // its list is fetched again before the next send
    }
    out.push_back(std::move(k));
    return {};
  }
  if (type == "device") {
    DeviceEvent d{Str(event, "change"), Str(event, "device_id"), Str(event, "name")};
    if (const auto me = AccountSnapshot(); me && crypto_->Encrypts()) {
      if (d.change == "removed") ForgetPeerDevice({me->user_id, d.device_id});
      devices_.erase(me->user_id);
    }
    out.push_back(std::move(d));
    return {};
  }
  out.push_back(OtherEvent{seq, type, json::serialize(event)});
  return {};
}

void Client::Impl::ScheduleAck() {
  if (watermark_ <= acked_) return;
  if (watermark_ - acked_ >= static_cast<std::uint64_t>(options_.ack_batch)) return FlushAck();
  if (ack_armed_) return;
  ack_armed_ = true;
  ack_timer_.expires_after(options_.ack_delay);
  ack_timer_.async_wait([this](boost::system::error_code ec) {
    ack_armed_ = false;
    if (!ec) FlushAck();
  });
}

void Client::Impl::FlushAck() {
  if (phase_ != Phase::kOnline || !watermark_known_ || watermark_ <= acked_) return;
  SendFrame({{"op", "ack"}, {"seq", std::to_string(watermark_)}});
  acked_ = watermark_;
}

void Client::Impl::CheckSync() {
  if (synced_ || phase_ != Phase::kOnline) return;
  const bool caught_up =
      watermark_known_ ? watermark_ >= hello_head_ : Clock::now() - hello_at_ >= kFirstSyncGrace;
  if (!caught_up) return;
  synced_ = true;
  SetState({.state = ConnectionEvent::State::kSynced, .head_seq = hello_head_});
}

void Client::Impl::CheckGap() {
  if (above_.empty() || Clock::now() - progress_at_ < kGapTimeout) return;
  const std::uint64_t next = *above_.begin();
  for (std::uint64_t s = watermark_ + 1; s < next && skipped_.size() < kMaxSkipped; ++s) {
    skipped_.insert(s);
  }
  std::uint64_t w = next;
  while (above_.contains(w + 1)) ++w;
  if (!store_->SetCursor(w)) return;
  above_.erase(above_.begin(), above_.upper_bound(w));
  watermark_ = w;
  progress_at_ = Clock::now();
  ScheduleAck();
  CheckSync();
}

// ---- Typing --------------------------------------------------------------------------

void Client::Impl::OnTyping(const json::object& frame) {
  TypingEvent t;
  if (const auto* from = Obj(frame, "from")) t.from = {Str(*from, "user"), Str(*from, "device")};
  auto conv_it = frame.find("conv");
  if (conv_it == frame.end()) return;
  auto conv = detail::ParseConv(conv_it->value());
  if (!conv) return;
  t.conv = *conv;
  t.composing = Str(frame, "state") == "composing";
  const std::string key = t.conv.Key() + "|" + t.from.user + "|" + t.from.device;
  if (t.composing) {
    const bool known = typing_.contains(key);
    typing_[key] = Clock::now() + kTypingExpiry;
    typing_from_[key] = t;
    if (!known) events_.Push(std::move(t));
  } else if (typing_.erase(key) > 0) {
    typing_from_.erase(key);
    events_.Push(std::move(t));
  }
}

void Client::Impl::ExpireTyping() {
  const auto now = Clock::now();
  for (auto it = typing_.begin(); it != typing_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    TypingEvent t = typing_from_[it->first];
    typing_from_.erase(it->first);
    t.composing = false;
    t.expired = true;
    events_.Push(std::move(t));
    it = typing_.erase(it);
  }
}

void Client::Impl::SendTyping(const Conv& conv, bool composing) {
  if (phase_ != Phase::kOnline) return;
  SendFrame({{"op", "typing"},
             {"to", detail::ConvJson(conv)},
             {"state", composing ? "composing" : "paused"}});
}

// ---- Outbox ----------------------------------------------------------------------------

void Client::Impl::Send(const Conv& to, OutgoingMessage msg,
                        std::shared_ptr<std::promise<Result<SentMessage>>> promise) {
  const auto me = AccountSnapshot();
  if (!me) return promise->set_value(Fail("not_logged_in", "log in first"));
  if (crypto_->Encrypts() && (msg.kind == "e2ee" || msg.kind == "sender_key")) {
    return promise->set_value(
        Fail("invalid", "the SDK encrypts itself: send the plain kind (text, image, ...)"));
  }
  // With an encrypting backend the outbox keeps the plaintext and each send
  // encrypts it (e2ee.cpp). Otherwise plain kinds go as given, and so do
  // "e2ee" and "sender_key" bodies a caller built itself.
  boost::system::error_code ec;
  json::parse(msg.body_json, ec);
  if (ec) return promise->set_value(Fail("invalid", "body_json is not JSON"));
  Message m;
  m.client_msg_id = msg.client_msg_id.empty() ? NewClientMsgId(rng_) : msg.client_msg_id;
  m.conv = to;
  m.from = {me->user_id, me->device_id};
  m.outgoing = true;
  m.kind = msg.kind;
  m.body_json = msg.body_json;
  m.text = detail::TextOf(m.body_json);
  m.media_id = msg.media_id;
  m.ts_ms = WallMs();
  m.status = MessageStatus::kPending;
  if (auto s = store_->AddPending(m); !s) return promise->set_value(std::unexpected(s.error()));
  send_waiters_.emplace(m.client_msg_id,
                        SendWaiter{std::move(promise), Clock::now() + options_.request_timeout});
  PumpOutbox();
}

void Client::Impl::PumpOutbox() {
  if (phase_ != Phase::kOnline) return;
  const auto now = Clock::now();
  if (now < outbox_retry_at_) {
    if (outbox_timer_armed_) return;
    outbox_timer_armed_ = true;
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, outbox_retry_at_);
    timer->async_wait([this, timer](boost::system::error_code ec) {
      outbox_timer_armed_ = false;
      if (!ec) PumpOutbox();
    });
    return;
  }
  const bool encrypts = crypto_->Encrypts();
  if (encrypts && !keys_ready_) return;  // CheckKeys pumps when done
  auto pending = store_->Pending();
  if (!pending) return;
  std::set<std::string> held;  // conversations waiting for Prepare: order is kept
  for (const auto& m : *pending) {
    if (in_flight_.size() >= kMaxInFlightSends) break;
    if (in_flight_.contains(m.client_msg_id)) continue;
    if (!encrypts) {
      SendPending(m);
      continue;
    }
    const std::string key = m.conv.Key();
    if (held.contains(key) || preparing_.contains(key)) {
      held.insert(key);
      continue;
    }
    auto frame = EncryptedFrame(m);
    if (!frame) {
      FailSend(m, frame.error());
      continue;
    }
    if (!*frame) {
      held.insert(key);
      if (prepared_.erase(key) > 0) {
        // Prepared, and still not ready: it will not get better by itself.
        FailSend(m, Error{"crypto", "no session for every device of the conversation"});
        continue;
      }
      Prepare(m.conv);
      continue;
    }
    prepared_.erase(key);
    in_flight_.insert(m.client_msg_id);
    Call(std::move(**frame), false,
         [this, m](Result<json::object> r) { OnSendAnswer(m, std::move(r)); });
  }
}

void Client::Impl::SendPending(const Message& m) {
  boost::system::error_code ec;
  json::value body = json::parse(m.body_json, ec);
  json::object frame{{"op", "send"},
                     {"to", detail::ConvJson(m.conv)},
                     {"client_msg_id", m.client_msg_id},
                     {"kind", m.kind},
                     {"body", ec ? json::value(nullptr) : std::move(body)}};
  if (!m.media_id.empty()) frame["media_id"] = m.media_id;
  in_flight_.insert(m.client_msg_id);
  Call(std::move(frame), false,
       [this, m](Result<json::object> r) { OnSendAnswer(m, std::move(r)); });
}

void Client::Impl::OnSendAnswer(const Message& m, Result<json::object> r) {
  // A full window left messages pending: this answer frees a place for them.
  const bool was_full = in_flight_.size() >= kMaxInFlightSends;
  in_flight_.erase(m.client_msg_id);
  if (r) {
    stale_retries_.erase(m.client_msg_id);
    SentMessage sent{Str(*r, "msg_id"), m.client_msg_id, Seq(*r, "seq"), Int(*r, "ts_ms"),
                     detail::Bool(*r, "duplicate")};
    auto changed = store_->MarkSent(m.client_msg_id, sent);
    if (changed && *changed) {
      events_.Push(MessageStatusEvent{m.conv, sent.msg_id, m.client_msg_id, MessageStatus::kSent});
    }
    ResolveSend(m.client_msg_id, std::move(sent));
    if (was_full) PumpOutbox();
    return;
  }
  const Error& e = r.error();
  if (e.code == "stale_devices" && crypto_->Encrypts() && ++stale_retries_[m.client_msg_id] <= 3) {
    // Sessions for the missing devices, none for the extra ones, then the
    // same client_msg_id again (PumpOutbox encrypts it anew).
    RepairStale(e);
    return PumpOutbox();
  }
  if (Retryable(e.code)) {
    // It stays pending; the pump sends it again (now, after a reconnect, or
    // once the rate limit allows).
    const auto delay = e.code == "disconnected" ? 0ms
                       : e.retry_after_ms > 0   ? std::chrono::milliseconds(e.retry_after_ms)
                                                : std::chrono::milliseconds(1000);
    outbox_retry_at_ = std::max(outbox_retry_at_, Clock::now() + delay);
    return PumpOutbox();
  }
  FailSend(m, e);
  if (was_full) PumpOutbox();
}

void Client::Impl::FailSend(const Message& m, const Error& e) {
  stale_retries_.erase(m.client_msg_id);
  (void)store_->MarkFailed(m.client_msg_id);
  events_.Push(MessageStatusEvent{m.conv, {}, m.client_msg_id, MessageStatus::kFailed, {}, e});
  ResolveSend(m.client_msg_id, std::unexpected(e));
}

void Client::Impl::ResolveSend(const std::string& client_msg_id, Result<SentMessage> r) {
  auto [begin, end] = send_waiters_.equal_range(client_msg_id);
  for (auto it = begin; it != end; ++it) it->second.promise->set_value(r);
  send_waiters_.erase(begin, end);
}

void Client::Impl::ExpireSendWaiters() {
  const auto now = Clock::now();
  for (auto it = send_waiters_.begin(); it != send_waiters_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    it->second.promise->set_value(
        Fail("timeout",
             "not confirmed yet: the message stays queued and goes out when the "
             "device is online"));
    it = send_waiters_.erase(it);
  }
}

// ---- Reads, history, presence ----------------------------------------------------------

void Client::Impl::MarkRead(const Conv& conv, const std::string& up_to,
                            std::function<void(Status)> done) {
  Call({{"op", "read"}, {"conv", detail::ConvJson(conv)}, {"up_to_msg_id", up_to}}, true,
       [this, conv, up_to, done](Result<json::object> r) {
         if (!r) return done(std::unexpected(r.error()));
         (void)store_->MarkReadUpTo(conv, up_to);
         done({});
       });
}

void Client::Impl::History(const Conv& conv, const std::string& before, int limit,
                           std::function<void(Result<HistoryPage>)> done) {
  json::object frame{{"op", "history"}, {"conv", detail::ConvJson(conv)}, {"limit", limit}};
  if (!before.empty()) frame["before_msg_id"] = before;
  Call(std::move(frame), true, [this, done](Result<json::object> r) {
    if (!r) return done(std::unexpected(r.error()));
    HistoryPage page;
    page.more = detail::Bool(*r, "more");
    if (const auto* list = detail::Arr(*r, "messages")) {
      for (const auto& v : *list) {
        if (!v.is_object()) continue;
        auto parsed = detail::ParseMessage(v.get_object());
        if (!parsed || parsed->kind == "sender_key") continue;  // key material
        // What this device already has (decrypted, with its status) wins:
        // an e2ee message decrypts only once.
        if (auto stored = store_->GetMessage(parsed->msg_id); stored && *stored) {
          page.messages.push_back(std::move(**stored));
          continue;
        }
        Message m = Decode(std::move(*parsed));
        if (m.decrypt_error && m.decrypt_error->code == "no_sender_key") {
          // Its key has not come yet: shown as it is, not stored (the
          // mailbox copy is kept until the key arrives).
          page.messages.push_back(std::move(m));
          continue;
        }
        auto put = store_->PutMessage(m);
        if (put && *put != Store::Insert::kNew) {
          if (auto stored = store_->GetMessage(m.msg_id); stored && *stored) {
            m = std::move(**stored);
          }
        }
        page.messages.push_back(std::move(m));
      }
    }
    done(std::move(page));
  });
}

void Client::Impl::SubscribePresence(
    std::vector<std::string> users, std::function<void(Result<std::vector<PresenceStatus>>)> done) {
  presence_users_ = users;
  json::array list;
  for (const auto& u : users) list.push_back(json::value(u));
  Call({{"op", "presence.subscribe"}, {"users", std::move(list)}}, true,
       [done](Result<json::object> r) {
         if (!r) return done(std::unexpected(r.error()));
         done(detail::ParseStatuses(*r));
       });
}

}  // namespace parley::sdk
