// Delivery to one device (PROTOCOL.md section 3).
//
// Design note. The mailbox is the truth; a session only decides what to send
// next. After hello it streams the backlog (cursor, head] from the store in
// seq order, at most kWindow events beyond what the device acknowledged, and
// each ack opens the window further. An event appended while the session is
// connected is announced by Notify (from the store's writer thread, posted
// to the session's home: the connection's strand, or its read-pool strand).
// If the stream has caught up, the event is simply the next one and goes
// out at once. If the backlog is still streaming, the event is sent ahead of
// it (the contract allows that; the client orders by seq) and remembered in
// ahead_, so that the stream skips it when it gets there: no seq is sent
// twice on a connection, and no gap stays unfilled. A lost notification
// costs latency only: the next ack or append pumps the stream again from
// the store.
#include "common/clock.hpp"
#include "common/log.hpp"
#include "core/session/render.hpp"
#include "core/session/session.hpp"
#include "proto/errors.hpp"
#include "proto/json.hpp"

namespace parley::core {

namespace code = proto::code;

namespace {
constexpr store::Seq kWindow = 256;
// A device that reads but never acks cannot make ahead_ grow without bound:
// past this, live events wait for the stream like the backlog does.
constexpr std::size_t kMaxAhead = 4096;
}  // namespace

void Session::Notify(store::Seq seq, std::shared_ptr<const store::MailboxEvent> event,
                     std::shared_ptr<const std::string> frame) {
  auto self = shared_from_this();
  RunHome([self, seq, event = std::move(event), frame = std::move(frame)]() mutable {
    self->OnAppended(seq, std::move(event), std::move(frame));
  });
}

void Session::StartDelivery(store::Seq after, store::Seq head) {
  delivering_ = true;
  cursor_ = after;
  next_ = after + 1;
  head_ = head;
  Pump();
}

bool Session::SendEvent(const store::MailboxEvent& e, const std::string* frame) {
  if (frame != nullptr && !frame->empty()) {
    core_.metrics.FrameOut("event").Inc();
    return conn_->Send(*frame);
  }
  std::string rendered = EventFrame(e, identity_.user, identity_.device);
  if (rendered.empty()) return true;  // purged meanwhile: nothing to show
  core_.metrics.FrameOut("event").Inc();
  return conn_->Send(std::move(rendered));
}

void Session::OnAppended(store::Seq seq, std::shared_ptr<const store::MailboxEvent> event,
                         std::shared_ptr<const std::string> frame) {
  if (!delivering_ || closed_) return;
  if (seq > head_) head_ = seq;
  if (seq < next_ || ahead_.contains(seq)) return;  // already sent
  if (seq == next_ && ahead_.empty() && seq - cursor_ <= kWindow) {
    // Caught up: this is simply the next event.
    if (event) {
      next_ = seq + 1;
      SendEvent(*event, frame.get());
      return;
    }
    return Pump();
  }
  if (ahead_.size() >= kMaxAhead) return Pump();
  // The backlog is still streaming (or the window is full): a live event
  // goes out now, ahead of it.
  if (!event) {
    auto rows = core_.store.ReadMailbox(identity_.user, seq - 1, 1);
    if (!rows || rows->empty() || rows->front().seq != seq) return Pump();
    SendEvent(rows->front(), nullptr);
  } else {
    SendEvent(*event, frame.get());
  }
  ahead_.insert(seq);
  Pump();
}

void Session::SkipOwnCopy(store::Seq seq) {
  auto self = shared_from_this();
  // Posted before Deliver's Notify of any later seq, so the strand sees it in
  // that order; the session itself is left out of the seq's Notify. On the
  // session's home strand, like Notify: with a read pool (PostgreSQL) that
  // is not the connection's strand, and the delivery state (next_, head_,
  // ahead_) must only ever be touched from one of them (this ran on the
  // connection's strand once, racing Pump on the home strand: a parleyd on
  // PostgreSQL died in std::set's rebalance under chat at max).
  RunHome([self, seq] {
    if (!self->delivering_ || self->closed_) return;
    if (seq > self->head_) self->head_ = seq;
    if (seq < self->next_ || self->ahead_.contains(seq)) return;  // sent already
    if (seq == self->next_ && self->ahead_.empty()) {
      // Caught up: counted as sent (and against the window) as if it had been.
      self->next_ = seq + 1;
      return;
    }
    // Behind a backlog: the stream passes over it as over an event sent
    // ahead. Past kMaxAhead it is simply sent when the stream gets there.
    if (self->ahead_.size() < kMaxAhead) self->ahead_.insert(seq);
  });
}

void Session::Pump() {
  while (!closed_ && next_ <= head_ && next_ - 1 < cursor_ + kWindow) {
    const std::size_t room = static_cast<std::size_t>(cursor_ + kWindow - (next_ - 1));
    auto rows = core_.store.ReadMailbox(identity_.user, next_ - 1, room);
    if (!rows) {
      PLOG_ERROR("store read failed", "op=read_mailbox error={}", LogQuote(rows.error().message));
      return;
    }
    if (rows->empty()) {
      // Purged by retention (or not yet visible): nothing below head to send.
      next_ = head_ + 1;
      break;
    }
    for (const auto& e : *rows) {
      next_ = e.seq + 1;
      if (auto it = ahead_.find(e.seq); it != ahead_.end()) {
        ahead_.erase(it);
        continue;
      }
      if (!SendEvent(e, nullptr)) return;  // the connection is closing
    }
  }
  // Anything pushed ahead that the stream has passed is settled.
  while (!ahead_.empty() && *ahead_.begin() < next_) ahead_.erase(ahead_.begin());
}

void Session::AckOp(const json::object& req, const Rid& rid) {
  auto seq_text = proto::GetString(req, "seq", 20);
  store::Seq seq = 0;
  if (seq_text) {
    auto parsed = ParseId(*seq_text);
    if (!parsed) return Error(rid, code::kBadRequest, "seq: must be a sequence number (a string)");
    seq = *parsed;
  } else {
    auto n = proto::GetInt(req, "seq");
    if (!n || *n <= 0) return Error(rid, code::kBadRequest, "seq: required sequence number");
    seq = static_cast<store::Seq>(*n);
  }
  if (seq > head_) {
    // The session may not have heard of it yet: ask the mailbox itself.
    auto head = core_.store.HeadSeq(identity_.user);
    if (!head) return StoreError(rid, head.error(), "head_seq");
    head_ = std::max(head_, *head);
    if (seq > head_) return Error(rid, code::kBadRequest, "seq: beyond the newest event");
  }
  if (seq <= cursor_) return;  // an older ack arriving late changes nothing
  cursor_ = seq;
  if (next_ <= seq) next_ = seq + 1;
  bool submit = false;
  {
    std::lock_guard lock(acks_.mu);
    if (acks_.in_flight) {
      acks_.pending = std::max(acks_.pending, seq);
    } else {
      acks_.in_flight = submit = true;
    }
  }
  if (submit) {
    // A cursor write counts against the device's writes (fairness.hpp) when
    // a token is there; `ack` has no answer to refuse it with, and acks
    // already merge into one write in flight per device.
    (void)core_.write_limiter.Take(IdToString(identity_.device), MonoSeconds());
    SubmitAck(seq);
  }
  Pump();
}

void Session::SubmitAck(store::Seq seq) {
  // The callback keeps the session alive: an ack merged into a later one
  // is still written after the connection closed.
  core_.store.Ack(identity_.user, identity_.device, seq, NowMs(),
                  [self = shared_from_this()](Result<store::AckResult> r) {
                    // This write is over before anyone hears of it: an ack
                    // sent after its receipts reached their senders is a
                    // write of its own, never merged into this one.
                    store::Seq next = 0;
                    {
                      std::lock_guard lock(self->acks_.mu);
                      std::swap(next, self->acks_.pending);
                      self->acks_.in_flight = next != 0;
                    }
                    if (r) {
                      self->core_.Wake(r->appended);
                    } else {
                      PLOG_ERROR("store write failed", "op=ack error={}",
                                 LogQuote(r.error().message));
                    }
                    if (next != 0) self->SubmitAck(next);
                  });
}

}  // namespace parley::core
