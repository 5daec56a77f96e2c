#include "client.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <deque>
#include <future>
#include <set>
#include <thread>
#include <vector>

namespace parley::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Acks are batched: the contiguous watermark (every seq up to it received)
// goes out once 64 events are unacknowledged or 10 ms after the first of
// them, whichever is sooner. The server keeps 256 events in flight, so 64
// never stalls its window. Never the highest seq seen: an ack covers every
// event up to it, and one not yet here (a send's own copy, counted from its
// `ok`, can overtake another node's message to this user) would never come.
constexpr std::uint64_t kAckEvery = 64;
constexpr auto kAckTick = std::chrono::milliseconds(10);
constexpr auto kGapTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxFrame = 1024 * 1024;

Target g_target;
std::vector<asio::ip::address> g_sources;
std::atomic<std::uint32_t> g_next_source{0};

std::uint64_t ToU64(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string_view StrOf(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

class SessionImpl;

}  // namespace

void SetTarget(const Target& target) {
  g_target = target;
  if (g_target.nodes.empty()) g_target.nodes.emplace_back();
  g_sources.clear();
  if (!target.ipv6 && target.source_addrs > 1) {
    for (int i = 0; i < target.source_addrs; ++i) {
      g_sources.push_back(asio::ip::address_v4(0x7f000001u + static_cast<std::uint32_t>(i)));
    }
  }
}

int TargetNodes() { return static_cast<int>(g_target.nodes.size()); }

struct Loop::Impl {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
  asio::steady_timer tick{ioc};
  std::thread thread;
  std::vector<std::shared_ptr<SessionImpl>> ack_due;

  void Tick();
};

namespace {

class SessionImpl final : public Session, public std::enable_shared_from_this<SessionImpl> {
 public:
  SessionImpl(Loop::Impl& loop, const Account& a, std::uint32_t id, SessionListener* listener,
              int node, std::uint64_t resume_after, std::vector<std::uint64_t> seen_above)
      : Session(id),
        loop_(loop),
        ws_(loop.ioc),
        timer_(loop.ioc),
        token_(a.access_token),
        listener_(listener),
        resume_after_(resume_after),
        watermark_known_(resume_after > 0),
        watermark_(resume_after),
        above_(seen_above.begin(), seen_above.end()),
        acked_(resume_after) {
    this->node = (node < 0 ? a.node : node) % TargetNodes();
  }

  void Start(std::chrono::milliseconds timeout) override {
    if (state_ != State::kIdle) return;
    state_ = State::kConnecting;
    started_at = Clock::now();
    auto self = shared_from_this();
    timer_.expires_after(timeout);
    timer_.async_wait([self](error_code ec) {
      if (!ec && self->state_ < State::kOpen) self->Fail("timeout");
    });
    const bool v6 = g_target.ipv6;
    auto& sock = ws_.next_layer();
    error_code ec;
    sock.open(v6 ? tcp::v6() : tcp::v4(), ec);
    if (!ec && !g_sources.empty()) {
      // Choose the port at connect() time, per destination, instead of at
      // bind() time (which would reserve it for every destination).
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      const auto& src = g_sources[g_next_source.fetch_add(1) % g_sources.size()];
      sock.bind(tcp::endpoint(src, 0), ec);
    }
    if (ec) return Fail("socket: " + ec.message());
    const Endpoint& to = g_target.nodes[static_cast<std::size_t>(node)];
    const tcp::endpoint ep(asio::ip::make_address(to.host), to.port);
    sock.async_connect(ep, [self](error_code ec) { self->OnConnect(ec); });
  }

  void Send(std::string frame) override {
    if (state_ != State::kOpen && state_ != State::kHello) return;
    wq_.push_back(std::move(frame));
    if (!writing_) DoWrite();
  }

  void Close() override {
    if (state_ != State::kOpen && state_ != State::kHello) return;
    // What was received is acknowledged before leaving, or the server
    // would send it again on the next connection.
    if (state_ == State::kOpen) FlushAck();
    state_ = State::kClosing;
    if (!writing_) DoClose();
  }

  void Abort() override {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    reported_ = true;
    Drop();
  }

  bool open() const override { return state_ == State::kOpen; }
  std::size_t queued() const override { return wq_.size(); }
  std::uint64_t highest_seq() const override { return watermark_; }
  std::vector<std::uint64_t> seen_above() const override {
    return std::vector<std::uint64_t>(above_.begin(), above_.end());
  }

  // Sends the ack for everything received up to the watermark, if it moved.
  // A gap open kGapTimeout without progress is passed (as the SDK does: an
  // event purged on its way is never sent, and the acks would stop for good).
  void FlushAck() {
    ack_listed_ = false;
    if (state_ != State::kOpen) return;
    if (!above_.empty() && Clock::now() - progress_at_ >= kGapTimeout) {
      for (std::uint64_t s = watermark_ + 1; s < *above_.begin() && skipped_.size() < 10'000; ++s) {
        skipped_.insert(s);
      }
      watermark_ = *above_.begin() - 1;
      Advance();
    }
    if (watermark_ > acked_) {
      acked_ = watermark_;
      Send(R"({"op":"ack","seq":")" + std::to_string(watermark_) + "\"}");
    }
    if (!above_.empty()) {  // looked at again at the next tick
      ack_listed_ = true;
      loop_.ack_due.push_back(shared_from_this());
    }
  }

 private:
  enum class State { kIdle, kConnecting, kHello, kOpen, kClosing, kClosed };

  void OnConnect(error_code ec) {
    if (state_ != State::kConnecting) return;
    if (ec) return Fail("connect: " + ec.message());
    ws_.next_layer().set_option(tcp::no_delay(true), ec);
    ws_.read_message_max(kMaxFrame);
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "parley-bench");
    }));
    const Endpoint& to = g_target.nodes[static_cast<std::size_t>(node)];
    const std::string host = g_target.ipv6 ? "[" + to.host + "]" : to.host;
    ws_.async_handshake(host + ":" + std::to_string(to.port), "/v1/ws",
                        [self = shared_from_this()](error_code ec) { self->OnUpgrade(ec); });
  }

  void OnUpgrade(error_code ec) {
    if (state_ != State::kConnecting) return;
    if (ec) return Fail("upgrade: " + ec.message());
    upgraded_at = Clock::now();
    ws_.text(true);
    state_ = State::kHello;
    std::string hello = R"({"op":"hello","rid":"hello","token":")" + token_ + '"';
    if (resume_after_ > 0) hello += R"(,"resume_after":")" + std::to_string(resume_after_) + '"';
    if (!g_target.own_copy) hello += R"(,"skip_own_copy":true)";
    Send(hello + "}");
    hello_at = Clock::now();
    DoRead();
  }

  void DoRead() {
    ws_.async_read(rbuf_,
                   [self = shared_from_this()](error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      // Our own close handshake ends the read; DoClose's handler reports it.
      if (ec == asio::error::operation_aborted && state_ == State::kClosing) return;
      if (ec == websocket::error::closed) {
        return Fail("closed " + std::to_string(ws_.reason().code));
      }
      return Fail("read: " + ec.message());
    }
    const auto data = rbuf_.cdata();
    const std::string_view text(static_cast<const char*>(data.data()), data.size());
    error_code pec;
    json::value v = json::parse(text, pec);
    rbuf_.consume(rbuf_.size());
    if (!pec && v.is_object()) Dispatch(v.as_object());
    if (state_ != State::kClosed) DoRead();
  }

  void Dispatch(const json::object& f) {
    const std::string_view op = StrOf(f, "op");
    if (op == "event") {
      const std::uint64_t seq = ToU64(StrOf(f, "seq"));
      if (!Received(seq)) return;  // had it (sent again after a reconnect)
      if (const auto* e = f.if_contains("event"); e != nullptr && e->is_object()) {
        listener_->OnEvent(*this, seq, e->as_object());
      }
      return;
    }
    if (op != "ok" && op != "error") return;  // pong, typing, presence, bye
    const std::string_view rid = StrOf(f, "rid");
    const bool ok = op == "ok";
    const std::string_view code = ok ? std::string_view() : StrOf(f, "code");
    if (state_ == State::kHello && rid == "hello") {
      if (!ok) return Fail(code.empty() ? "hello refused" : code);
      state_ = State::kOpen;
      ready_at = Clock::now();
      head_seq = ToU64(StrOf(f, "head_seq"));
      const auto* skip = f.if_contains("skip_own_copy");
      own_skipped_ = skip != nullptr && skip->is_bool() && skip->as_bool();
      timer_.cancel();
      reported_ = true;
      listener_->OnHello(*this, true, {});
      return;
    }
    if (ok && own_skipped_) {
      // A send's copy in this mailbox is not sent to this session: its seq
      // counts as received (and acknowledged like any event).
      const auto* dup = f.if_contains("duplicate");
      if (const std::uint64_t seq = ToU64(StrOf(f, "seq"));
          seq != 0 && !(dup != nullptr && dup->is_bool() && dup->as_bool())) {
        Received(seq);
      }
    }
    listener_->OnAnswer(*this, rid, f, ok, code);
  }

  // An event seq seen: acked with the others once contiguous (see
  // kAckEvery). False for one received before.
  bool Received(std::uint64_t seq) {
    if (!watermark_known_) {
      // The stream starts after the device's cursor, at most the head that
      // hello named (the first event is the backlog's first, or newer).
      watermark_ = std::min(head_seq, seq - 1);
      watermark_known_ = true;
    }
    if (skipped_.erase(seq) > 0) return true;  // a gap's event, late
    if (seq <= watermark_ || !above_.insert(seq).second) return false;
    if (above_.size() == 1 && seq != watermark_ + 1) progress_at_ = Clock::now();  // a gap opens
    Advance();
    if (watermark_ - acked_ >= kAckEvery) {
      FlushAck();
    } else if (!ack_listed_ && (watermark_ > acked_ || !above_.empty())) {
      ack_listed_ = true;
      loop_.ack_due.push_back(shared_from_this());
    }
    return true;
  }

  void Advance() {
    const std::uint64_t before = watermark_;
    while (!above_.empty() && *above_.begin() == watermark_ + 1) {
      watermark_ = *above_.begin();
      above_.erase(above_.begin());
    }
    if (watermark_ != before) progress_at_ = Clock::now();
  }

  void DoWrite() {
    writing_ = true;
    ws_.async_write(asio::buffer(wq_.front()),
                    [self = shared_from_this()](error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (self->state_ == State::kClosed) return;
                      self->wq_.pop_front();
                      if (ec) return self->Fail("write: " + ec.message());
                      if (!self->wq_.empty()) return self->DoWrite();
                      if (self->state_ == State::kClosing) self->DoClose();
                    });
  }

  void DoClose() {
    // Beast's closing handshake: the close frame goes out here; the pending
    // read then ends with error::closed once the server answers.
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](error_code ec) {
      if (ec) return self->Fail("close: " + ec.message());
      self->Fail("closed " + std::to_string(self->ws_.reason().code));
    });
  }

  void Fail(std::string_view why) {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    Drop();
    if (reported_ && ready_at != Clock::time_point{}) {
      listener_->OnClosed(*this, why);
    } else if (!reported_) {
      reported_ = true;
      listener_->OnHello(*this, false, why);
    }
  }

  void Drop() {
    error_code ec;
    timer_.cancel();
    ws_.next_layer().close(ec);
    wq_.clear();
  }

  Loop::Impl& loop_;
  websocket::stream<tcp::socket> ws_;
  asio::steady_timer timer_;
  beast::flat_buffer rbuf_;
  std::deque<std::string> wq_;
  std::string token_;
  SessionListener* listener_;
  State state_ = State::kIdle;
  bool writing_ = false;
  bool reported_ = false;  // OnHello was called
  bool ack_listed_ = false;
  std::uint64_t resume_after_ = 0;
  bool own_skipped_ = false;  // hello granted skip_own_copy
  bool watermark_known_ = false;
  std::uint64_t watermark_ = 0;
  std::set<std::uint64_t> above_;    // received above the watermark
  std::set<std::uint64_t> skipped_;  // passed as a gap, not received
  Clock::time_point progress_at_{};  // the watermark last moved, or a gap opened
  std::uint64_t acked_ = 0;
};

}  // namespace

void Loop::Impl::Tick() {
  tick.expires_after(kAckTick);
  tick.async_wait([this](error_code ec) {
    if (ec) return;
    auto due = std::move(ack_due);
    ack_due.clear();
    for (auto& s : due) s->FlushAck();
    Tick();
  });
}

Loop::Loop() : impl_(std::make_unique<Impl>()) {}

Loop::~Loop() {
  Stop();
  impl_->ack_due.clear();
}

void Loop::Start() {
  if (impl_->thread.joinable()) return;
  impl_->Tick();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

void Loop::Stop() {
  impl_->guard.reset();
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Loop::Post(std::function<void()> fn) { asio::post(impl_->ioc, std::move(fn)); }

bool Loop::Call(std::function<void()> fn, std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  asio::post(impl_->ioc, [fn = std::move(fn), done] {
    fn();
    done->set_value();
  });
  if (fut.wait_for(timeout) == std::future_status::ready) return true;
  // Callers hand in lambdas that refer to their locals; returning now would
  // let the loop run one after they are gone. A loop stalled this long means
  // the figures are worthless anyway: end the process.
  std::fprintf(stderr, "parley-bench: an I/O loop did not respond in %lld ms; giving up\n",
               static_cast<long long>(timeout.count()));
  std::fflush(stderr);
  ::_exit(3);
}

struct Timer::Impl {
  explicit Impl(asio::io_context& ioc) : timer(ioc) {}
  asio::steady_timer timer;
  std::function<void()> fn;
  std::uint64_t generation = 0;
};

Timer::Timer(Loop& loop) : impl_(std::make_shared<Impl>(loop.impl().ioc)) {}

Timer::~Timer() { Cancel(); }

void Timer::At(Clock::time_point when, std::function<void()> fn) {
  impl_->fn = std::move(fn);
  const std::uint64_t gen = ++impl_->generation;
  impl_->timer.expires_at(when);
  impl_->timer.async_wait([impl = impl_, gen](error_code ec) {
    // A wait that was replaced may already have been queued as expired.
    if (ec || gen != impl->generation || !impl->fn) return;
    auto fn = std::move(impl->fn);
    impl->fn = nullptr;
    fn();
  });
}

void Timer::Cancel() {
  ++impl_->generation;
  impl_->fn = nullptr;
  impl_->timer.cancel();
}

std::shared_ptr<Session> Session::Create(Loop& loop, const Account& account, std::uint32_t id,
                                         SessionListener* listener, int node,
                                         std::uint64_t resume_after,
                                         std::vector<std::uint64_t> seen_above) {
  return std::make_shared<SessionImpl>(loop.impl(), account, id, listener, node, resume_after,
                                       std::move(seen_above));
}

}  // namespace parley::bench
