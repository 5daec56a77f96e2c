// One WebSocket, plain or TLS, after a successful upgrade.
//
// Everything runs on the connection's strand. One read is always pending
// until the socket fails or closes; that read's terminal error is the one
// place OnClose comes from. Writes (text frames, pings, then the bye and the
// close frame) go through one queue, one operation at a time, which also
// keeps Beast's rule of never overlapping writes, pings and the close.
// Text frames are framed here and handed to CoalescingStream (below Beast),
// which writes everything queued on the strand, or queued while a socket
// write is in flight, as one write; pings and the close frame go through
// Beast into the same layer, in queue order.
//
// Send() is called from any thread and must answer at once, so the queued
// byte count and the closing flag are atomics; the queue itself lives on the
// strand. Timers hold only weak references: a session ends when its socket
// does, never later because a timer is still armed. The one exception is a
// paused read (the handler's cap on requests in flight): the session then
// holds itself until reading resumes or the server is destroyed.
#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <unistd.h>

#include "common/fifo.hpp"
#include "common/log.hpp"
#include "net/coalescing_stream.hpp"
#include "net/server_state.hpp"
#include "net/sessions.hpp"

namespace parley::net::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

// Beast applies this to the 101 response and to waiting for the peer's
// close frame.
constexpr auto kHandshakeTimeout = 10s;
// From Close() to the socket being gone, however stuck the writes are.
constexpr auto kCloseTimeout = 5s;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kIdleReadChunk = 512;
constexpr std::size_t kMaxCloseReason = 123;  // RFC 6455: 125 bytes less the code

std::atomic<std::uint64_t> g_next_ws_id{1};

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// RFC 6455 section 5.2: FIN, text, unmasked (server to client), the
// shortest length form. `buf` holds kMaxFrameHeader bytes.
constexpr std::size_t kMaxFrameHeader = 10;
std::string_view TextFrameHeader(std::size_t n, char* buf) {
  buf[0] = static_cast<char>(0x81);
  if (n < 126) {
    buf[1] = static_cast<char>(n);
    return {buf, 2};
  }
  if (n <= 0xFFFF) {
    buf[1] = 126;
    buf[2] = static_cast<char>(n >> 8);
    buf[3] = static_cast<char>(n & 0xFF);
    return {buf, 4};
  }
  buf[1] = 127;
  for (int i = 0; i < 8; ++i) buf[2 + i] = static_cast<char>((n >> (56 - 8 * i)) & 0xFF);
  return {buf, 10};
}

std::string ByeFrame(std::uint16_t code, std::string_view reason) {
  return R"({"op":"bye","code":)" + std::to_string(code) + R"(,"reason":")" + JsonEscape(reason) +
         "\"}";
}

// Cut at `max` bytes without splitting a UTF-8 sequence.
std::string_view TruncateUtf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// Closes the socket under a session's layers, whichever it is.
void CloseLowest(beast::tcp_stream& s) { s.close(); }
void CloseLowest(PlainWsSocket& s) {
  error_code ignored;
  s.close(ignored);
}

// What a WsConnection reaches through its weak reference. Not a template,
// so that the connection object handed to core is not one either.
class WsControl {
 public:
  virtual ~WsControl() = default;
  virtual bool TrySend(std::string frame) = 0;
  virtual void RequestClose(std::uint16_t code, std::string reason, bool drop_backlog) = 0;
  virtual void Authenticated() = 0;
  virtual void RunOnStrand(std::function<void()> fn) = 0;
  virtual void ResumeReading() = 0;
};

// Held by core. Only a weak reference to the session: core keeping its
// handle must not keep a dead socket's buffers alive.
class WsConnectionImpl final : public WsConnection {
 public:
  WsConnectionImpl(std::weak_ptr<WsControl> session, std::string remote, std::uint64_t id)
      : session_(std::move(session)), remote_(std::move(remote)), id_(id) {}

  bool Send(std::string frame) override {
    auto s = session_.lock();
    return s && s->TrySend(std::move(frame));
  }
  void Close(std::uint16_t code, std::string reason) override {
    if (auto s = session_.lock()) s->RequestClose(code, std::move(reason), false);
  }
  void MarkAuthenticated() override {
    if (auto s = session_.lock()) s->Authenticated();
  }
  void Post(std::function<void()> fn) override {
    if (auto s = session_.lock()) s->RunOnStrand(std::move(fn));
  }
  void ResumeReading() override {
    if (auto s = session_.lock()) s->ResumeReading();
  }
  const std::string& RemoteAddress() const override { return remote_; }
  std::uint64_t Id() const override { return id_; }

 private:
  const std::weak_ptr<WsControl> session_;
  const std::string remote_;
  const std::uint64_t id_;
};

template <class Stream>
class WsSession final : public Connection,
                        public WsControl,
                        public std::enable_shared_from_this<WsSession<Stream>> {
  using Clock = std::chrono::steady_clock;
  using Timer =
      asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, typename Stream::executor_type>;

  struct Outgoing {
    std::string data;
    bool ping = false;
    bool counted = false;  // part of queued_bytes_ (the bye is not)
  };

 public:
  WsSession(ServerState& state, Stream&& stream, HttpRequest upgrade,
            std::shared_ptr<ConnectionSlot> slot)
      : slot_(std::move(slot)),
        state_(state),
        ws_(std::move(stream)),
        executor_(ws_.get_executor()),
        upgrade_(std::make_unique<HttpRequest>(std::move(upgrade))),
        id_(g_next_ws_id.fetch_add(1)),
        heartbeat_timer_(executor_) {
    state_.ws_open.Add(1);
  }

  ~WsSession() override {
    state_.ws_open.Add(-1);
    state_.Unregister(key_);
    // Only when the io_context was destroyed with our handlers pending.
    NotifyClosed();
  }

  void Start(UpgradeRequest&& upgrade) {
    key_ = state_.Register(this->weak_from_this());
    ws_.next_layer().SetOwner(this->weak_from_this());
    ws_.set_option(
        websocket::stream_base::timeout{kHandshakeTimeout, websocket::stream_base::none(), false});
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "parleyd"); }));
    websocket::permessage_deflate deflate;
    deflate.server_enable = false;
    deflate.client_enable = false;
    ws_.set_option(deflate);
    // Beast's own limit would close with 1009 and no bye; OnRead enforces
    // max_frame_bytes instead, so that the close carries 4400.
    ws_.read_message_max(0);
    ws_.auto_fragment(false);
    ws_.text(true);
    ws_.control_callback(
        [this](websocket::frame_type, beast::string_view) { last_received_ = Clock::now(); });
    ws_.async_accept(upgrade,
                     [self = this->shared_from_this()](error_code ec) { self->OnAccept(ec); });
  }

  // Connection
  void BeginShutdown() override {
    if (state_.destroying()) return;
    asio::post(executor_, [self = this->shared_from_this()] { self->Drain(); });
  }
  void ReleaseSelf() override { paused_self_.reset(); }
  void ForceClose() override {
    if (state_.destroying()) return;
    asio::post(executor_, [self = this->shared_from_this()] {
      self->CloseSocket();
      self->Unpause();  // the read that fails is what ends the session
    });
  }

  // WsControl: any thread.
  bool TrySend(std::string frame) override {
    if (closing_.load() || state_.destroying()) return false;
    const std::size_t n = frame.size();
    if (queued_bytes_.fetch_add(n) + n > state_.options.max_queue_bytes) {
      queued_bytes_.fetch_sub(n);
      RequestClose(1013, "slow consumer", true);
      return false;
    }
    // On the strand already (core answering a frame, or delivering an event
    // posted there) the frame is queued at once, with no second trip through
    // the strand: frames queued by one handler then leave in one write.
    asio::dispatch(executor_, [self = this->shared_from_this(), f = std::move(frame)]() mutable {
      self->Enqueue(Outgoing{std::move(f), false, true});
    });
    return true;
  }

  void RequestClose(std::uint16_t code, std::string reason, bool drop_backlog) override {
    closing_.store(true);
    if (state_.destroying()) return;
    asio::post(executor_, [self = this->shared_from_this(), code, r = std::move(reason),
                           drop_backlog] { self->DoClose(code, r, drop_backlog); });
  }

  void RunOnStrand(std::function<void()> fn) override {
    if (state_.destroying()) return;
    asio::post(executor_, [self = this->shared_from_this(), fn = std::move(fn)] {
      if (self->finished_) return;
      try {
        fn();
      } catch (const std::exception& e) {
        PLOG_ERROR("posted connection task threw", "conn={} error={}", self->id_,
                   LogQuote(e.what()));
      }
    });
  }

  void ResumeReading() override {
    if (state_.destroying()) return;
    asio::post(executor_, [self = this->shared_from_this()] {
      if (!self->paused_ || self->finished_) return;
      self->paused_ = false;
      self->paused_self_.reset();  // `self` holds us to the end of this handler
      // The quiet while paused was ours, not the peer's.
      self->last_received_ = Clock::now();
      self->DoRead();
    });
  }

  void Authenticated() override {
    authenticated_.store(true);
    if (slot_) slot_->Authenticated();
    // The heartbeat timer, armed for the hello deadline, finds it met.
  }

 private:
  // Fails whatever is in flight on the socket; the read loop ends next.
  void CloseSocket() { CloseLowest(beast::get_lowest_layer(ws_)); }

  // The timers only a closing or draining session needs, made on first use.
  Timer& Later(std::unique_ptr<Timer>& t) {
    if (!t) t = std::make_unique<Timer>(executor_);
    return *t;
  }

  void OnAccept(error_code ec) {
    if (ec) {
      // Beast has already answered a bad upgrade; no handler was opened.
      PLOG_DEBUG("websocket upgrade failed", "error={}", LogQuote(ec.message()));
      return;
    }
    accepted_ = true;
    state_.Responses(101).Inc();
    last_received_ = last_ping_ = Clock::now();
    auto connection = std::make_shared<WsConnectionImpl>(
        std::weak_ptr<WsControl>(this->weak_from_this()), upgrade_->remote_address, id_);
    try {
      handler_ = state_.service.OpenWebSocket(std::move(connection), *upgrade_);
    } catch (const std::exception& e) {
      PLOG_ERROR("OpenWebSocket threw", "error={}", LogQuote(e.what()));
    }
    upgrade_.reset();
    DoRead();
    if (!handler_) return DoClose(1011, "internal error", false);
    // A shutdown that began during the handshake found us not yet accepted.
    if (state_.shutting_down()) return DoClose(1001, "server shutting down", false);
    if (!authenticated_.load() && state_.options.auth_timeout.count() > 0) {
      auth_deadline_ = Clock::now() + state_.options.auth_timeout;
    }
    ArmHeartbeat();
  }

  void DoRead() {
    const std::size_t max = state_.options.max_frame_bytes;
    // Never buffer more than one byte past the limit: that byte is the proof.
    // Between messages the read waits with a small buffer (Beast sizes it
    // before any byte arrives, and it stays allocated while the session
    // idles): most frames fit, and a larger one continues with big reads.
    const std::size_t chunk = read_buf_.size() == 0 ? kIdleReadChunk : kReadChunk;
    const std::size_t limit = close_started_ ? chunk : std::min(chunk, max + 1 - read_buf_.size());
    ws_.async_read_some(
        read_buf_, limit,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(error_code ec) {
    if (ec) return Finish(ec);
    last_received_ = Clock::now();
    if (close_started_) {
      // Closing: what still arrives is read only to reach the peer's close frame.
      read_buf_.clear();
      return DoRead();
    }
    if (read_buf_.size() > state_.options.max_frame_bytes) {
      read_buf_.clear();
      DoClose(4400, "frame too large", false);
      return DoRead();
    }
    if (ws_.is_message_done()) {
      // Draining: the client sends it again to another node.
      if (handler_ && !draining_) {
        const std::string_view text(static_cast<const char*>(read_buf_.data().data()),
                                    read_buf_.size());
        try {
          handler_->OnFrame(text);
        } catch (const std::exception& e) {
          PLOG_ERROR("OnFrame threw", "conn={} error={}", id_, LogQuote(e.what()));
        }
      }
      read_buf_.clear();
      // A large message's buffer is not kept for the idle time after it.
      if (read_buf_.capacity() > kIdleReadChunk) read_buf_.shrink_to_fit();
      if (handler_ && !close_started_ && !handler_->ReadyForMore()) {
        // Until ResumeReading. With no read pending, nothing else may hold
        // this session (a write, if any, ends soon; timers and core hold
        // weak references): without this reference the session, and its
        // socket, would be destroyed right here, the requests in flight
        // answered to no one, and the peer reset (issue 14: a pipelining
        // client with max_requests_in_flight set lost its connection).
        paused_ = true;
        paused_self_ = this->shared_from_this();
        return;
      }
    }
    DoRead();
  }

  // Shutdown: frames read from now on go unanswered (the client retries
  // them elsewhere, the same client_msg_id answering duplicate), requests
  // already taken are answered, then the close is 1001. Idle is to hold on
  // two checks in a row: a store callback marks its write done just before
  // it sends the answer. The server's shutdown timeout bounds the wait.
  void Drain() {
    if (finished_ || close_started_) return;
    draining_ = true;
    if (!accepted_) return;  // OnAccept sees the shutdown
    const bool idle = !handler_ || handler_->Idle();
    idle_checks_ = idle ? idle_checks_ + 1 : 0;
    if (idle_checks_ >= 2) return DoClose(1001, "server shutting down", false);
    Timer& drain = Later(drain_timer_);
    drain.expires_after(std::chrono::milliseconds(idle ? 2 : 10));
    drain.async_wait([weak = this->weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->Drain();
    });
  }

  // Reads again after a pause, so that a close or a failure reaches Finish.
  void Unpause() {
    if (!paused_ || finished_) return;
    paused_ = false;
    const auto keep = std::move(paused_self_);  // the read holds us from here on
    DoRead();
  }

  // The read loop is over: the socket is closed or failing.
  void Finish(error_code ec) {
    if (finished_) return;
    finished_ = true;
    closing_.store(true);
    heartbeat_timer_.cancel();
    if (close_timer_) close_timer_->cancel();
    if (drain_timer_) drain_timer_->cancel();
    queue_.clear();
    queued_bytes_.store(0);
    if (ec != websocket::error::closed) {
      // Fail any write still in flight rather than wait for it.
      CloseSocket();
      PLOG_DEBUG("websocket read ended", "conn={} error={}", id_, LogQuote(ec.message()));
    }
    NotifyClosed();
  }

  void NotifyClosed() {
    if (auto h = std::move(handler_)) {
      handler_.reset();
      try {
        h->OnClose();
      } catch (const std::exception& e) {
        PLOG_ERROR("OnClose threw", "conn={} error={}", id_, LogQuote(e.what()));
      }
    }
  }

  void Enqueue(Outgoing o) {
    if (close_started_ || finished_) {
      if (o.counted) queued_bytes_.fetch_sub(o.data.size());
      return;
    }
    queue_.push_back(std::move(o));
    DoWrite();
  }

  void DoClose(std::uint16_t code, std::string_view reason, bool drop_backlog) {
    // Before the handshake completes nothing may be written; OnAccept
    // re-checks for a shutdown.
    if (!accepted_ || close_started_ || finished_) return;
    close_started_ = true;
    closing_.store(true);
    heartbeat_timer_.cancel();
    if (drop_backlog) {
      // A slow consumer would not read the backlog anyway; dropping it lets
      // the bye and the close frame reach it. Frames already handed to the
      // coalescing layer (at most its bound) still go first.
      while (!queue_.empty()) {
        if (queue_.back().counted) queued_bytes_.fetch_sub(queue_.back().data.size());
        queue_.pop_back();
      }
    }
    close_code_ = code;
    close_text_ = TruncateUtf8(reason, kMaxCloseReason);
    queue_.push_back(Outgoing{ByeFrame(code, reason), false, false});
    Unpause();  // the peer's close frame must be read
    Timer& close = Later(close_timer_);
    close.expires_after(kCloseTimeout);
    close.async_wait([weak = this->weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->CloseSocket();
    });
    DoWrite();
  }

  void DoWrite() {
    if (writing_ || finished_) return;
    auto& out = ws_.next_layer();
    // Text frames go straight to the coalescing layer, framed here, as many
    // as it takes: everything queued now leaves in one socket write.
    while (!queue_.empty() && !queue_.front().ping) {
      if (out.Full()) {
        writing_ = true;
        out.WhenRoom([self = this->shared_from_this()](error_code ec) { self->OnWrite(ec); });
        return;
      }
      Outgoing o = std::move(queue_.front());
      queue_.pop_front();
      char head[kMaxFrameHeader];
      const bool ok = out.Append(TextFrameHeader(o.data.size(), head), o.data);
      if (o.counted) queued_bytes_.fetch_sub(o.data.size());
      if (!ok) {
        CloseSocket();  // the read loop fails next and finishes the session
        Unpause();
        return;
      }
    }
    if (queue_.empty()) {
      if (close_started_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        // Completes once the close frame is out; the read loop then sees
        // the peer's close frame (error::closed) and ends the session.
        // Beast writes the close frame before async_close returns.
        const websocket::close_reason reason(static_cast<websocket::close_code>(close_code_),
                                             close_text_);
        ws_.async_close(reason, [self = this->shared_from_this()](error_code ec) {
          self->writing_ = false;
          if (ec && !self->finished_) self->CloseSocket();
        });
      }
      return;
    }
    // A ping: through Beast, which writes it to the same layer, in order.
    writing_ = true;
    queue_.pop_front();
    ws_.async_ping({}, [self = this->shared_from_this()](error_code ec) {
      self->ping_queued_ = false;
      self->OnWrite(ec);
    });
  }

  void OnWrite(error_code ec) {
    writing_ = false;
    if (finished_) return;
    if (ec) {
      CloseSocket();  // the read loop fails next and finishes the session
      Unpause();
      return;
    }
    DoWrite();
  }

  // One timer serves the pings (after ping_interval of quiet), the idle
  // deadline (idle_timeout without anything received, pongs included) and,
  // until hello succeeds, the auth deadline (auth_timeout after the upgrade).
  void ArmHeartbeat() {
    const auto& o = state_.options;
    const bool ping = o.ping_interval.count() > 0;
    const bool idle = o.idle_timeout.count() > 0;
    const bool auth = AuthPending();
    if (!ping && !idle && !auth) return;
    Clock::time_point next = Clock::time_point::max();
    if (ping) next = std::max(last_received_, last_ping_) + o.ping_interval;
    if (idle) next = std::min(next, last_received_ + o.idle_timeout);
    if (auth) next = std::min(next, auth_deadline_);
    heartbeat_timer_.expires_at(next);
    heartbeat_timer_.async_wait([weak = this->weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->OnHeartbeat();
    });
  }

  bool AuthPending() const {
    return auth_deadline_ != Clock::time_point::max() && !authenticated_.load();
  }

  void OnHeartbeat() {
    if (close_started_ || finished_) return;
    const auto& o = state_.options;
    const auto now = Clock::now();
    if (AuthPending() && now >= auth_deadline_) return DoClose(4401, "not authenticated", false);
    if (o.idle_timeout.count() > 0 && now - last_received_ >= o.idle_timeout) {
      return DoClose(4408, "heartbeat timeout", false);
    }
    if (o.ping_interval.count() > 0 &&
        now - std::max(last_received_, last_ping_) >= o.ping_interval) {
      last_ping_ = now;
      if (!ping_queued_) {
        ping_queued_ = true;
        queue_.push_back(Outgoing{{}, true, false});
        DoWrite();
      }
    }
    ArmHeartbeat();
  }

  const std::shared_ptr<ConnectionSlot> slot_;  // the place under the connection caps
  ServerState& state_;
  websocket::stream<CoalescingStream<Stream>> ws_;  // frames gather while one write is out
  const typename Stream::executor_type executor_;
  std::unique_ptr<HttpRequest> upgrade_;  // until OpenWebSocket has seen it
  const std::uint64_t id_;
  std::uint64_t key_ = 0;
  std::shared_ptr<WsHandler> handler_;

  // Any thread.
  std::atomic<bool> closing_{false};  // no more Send()
  std::atomic<bool> authenticated_{false};
  std::atomic<std::size_t> queued_bytes_{0};

  // The strand only. (Laid out without padding: an idle session's object
  // stays within jemalloc's 448-byte class.)
  beast::flat_buffer read_buf_;
  Fifo<Outgoing> queue_;
  std::string close_text_;  // with close_code_: the close frame's, once close_started_
  Clock::time_point last_received_{};
  Clock::time_point last_ping_{};
  Clock::time_point auth_deadline_ = Clock::time_point::max();  // none: max
  Timer heartbeat_timer_;                   // ArmHeartbeat: pings, idle and auth deadlines
  std::unique_ptr<Timer> close_timer_;      // Later()
  std::unique_ptr<Timer> drain_timer_;      // Later()
  std::shared_ptr<WsSession> paused_self_;  // while paused_: what keeps the session alive
  int idle_checks_ = 0;
  std::uint16_t close_code_ = 0;
  bool draining_ = false;  // shutdown: no more frames to the handler
  bool accepted_ = false;
  bool writing_ = false;
  bool ping_queued_ = false;
  bool close_started_ = false;  // bye queued
  bool close_sent_ = false;     // close frame handed to Beast
  bool paused_ = false;         // no read pending: the handler is not ReadyForMore
  bool finished_ = false;       // read loop over, OnClose called
};

template <class Stream>
void Launch(ServerState& state, Stream&& stream, UpgradeRequest&& upgrade, HttpRequest request,
            std::shared_ptr<ConnectionSlot> slot) {
  auto s = std::make_shared<WsSession<Stream>>(state, std::move(stream), std::move(request),
                                               std::move(slot));
  s->Start(std::move(upgrade));
}

}  // namespace

void StartWebSocket(ServerState& state, PlainStream&& stream, UpgradeRequest&& upgrade,
                    HttpRequest request, std::shared_ptr<ConnectionSlot> slot) {
  // The same descriptor, re-homed on a socket typed on the connection's
  // strand (the listener accepts each socket onto a strand of its own).
  using Strand = PlainWsSocket::executor_type;
  asio::ip::tcp::socket socket = stream.release_socket();
  const auto* strand = socket.get_executor().target<Strand>();
  PlainWsSocket ws(strand ? *strand : asio::make_strand(state.ioc));
  error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  if (!ec) {
    const auto fd = socket.release(ec);
    if (!ec) {
      ws.assign(protocol, fd, ec);
      if (ec) ::close(fd);
    }
  }
  if (ec) {
    // The peer is already gone (or the descriptor could not be taken over):
    // nothing was answered yet, so closing is all there is to do.
    PLOG_DEBUG("websocket upgrade dropped", "error={}", LogQuote(ec.message()));
    return;
  }
  Launch(state, std::move(ws), std::move(upgrade), std::move(request), std::move(slot));
}

void StartWebSocket(ServerState& state, TlsStream&& stream, UpgradeRequest&& upgrade,
                    HttpRequest request, std::shared_ptr<ConnectionSlot> slot) {
  Launch(state, std::move(stream), std::move(upgrade), std::move(request), std::move(slot));
}

}  // namespace parley::net::detail
