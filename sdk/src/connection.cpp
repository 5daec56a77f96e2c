// Client::Impl, the connection half: login over HTTP, the WebSocket state
// machine (connect, hello, close codes, backoff), token refresh, requests
// and their deadlines. The sync half (events, acks, outbox) is sync.cpp.
#include <boost/asio/post.hpp>
#include <charconv>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

using detail::Int;
using detail::Obj;
using detail::Seq;
using detail::Str;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 250ms;
constexpr auto kHelloTimeout = 10s;
constexpr auto kLockRetry = 200ms;
constexpr auto kRefreshRetry = 5s;
// Refresh before connecting when the access token has less than this left
// (the proactive refresh normally got there first).
constexpr std::int64_t kMinAccessLeftMs = 1000;

bool IsAuthRefusal(const std::string& code) {
  return code == "invalid_token" || code == "token_expired";
}

}  // namespace

std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Client::Impl::Impl(ClientOptions options, std::unique_ptr<Store> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      crypto_(options_.crypto ? std::move(options_.crypto) : MakeDefaultCrypto()),
      events_(options_.max_queued_events),
      work_(boost::asio::make_work_guard(io_)),
      tls_(detail::MakeTlsContext(options_.tls_verify, options_.ca_file)),
      reconnect_timer_(io_),
      refresh_timer_(io_),
      ack_timer_(io_),
      tick_timer_(io_),
      rng_(std::random_device{}()) {
  LoadAccount();
  thread_ = std::thread([this] { io_.run(); });
  Post([this] { ArmTick(); });
}

Client::Impl::~Impl() {
  Post([this] { Stop(); });
  // A connected client closes with a close handshake; give it a moment.
  WaitForState(ConnectionEvent::State::kStopped, 2s);
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void Client::Impl::Post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

// ---- Thread-safe state -----------------------------------------------------------

std::optional<Account> Client::Impl::AccountSnapshot() const {
  std::lock_guard lock(mu_);
  return account_;
}

ConnectionEvent::State Client::Impl::State() const {
  std::lock_guard lock(mu_);
  return state_;
}

void Client::Impl::MarkStarting() {
  // Only a stopped client starts: Start() or Reconnect() on a running one
  // changes nothing.
  std::lock_guard lock(mu_);
  if (state_ == ConnectionEvent::State::kStopped) state_ = ConnectionEvent::State::kConnecting;
}

bool Client::Impl::WaitForState(ConnectionEvent::State want, std::chrono::milliseconds timeout) {
  using S = ConnectionEvent::State;
  std::unique_lock lock(mu_);
  auto reached = [&] {
    return state_ == want || (want == S::kOnline && state_ == S::kSynced) || state_ == S::kStopped;
  };
  state_cv_.wait_for(lock, timeout, reached);
  return state_ == want || (want == S::kOnline && state_ == S::kSynced);
}

void Client::Impl::SetState(ConnectionEvent event) {
  {
    std::lock_guard lock(mu_);
    state_ = event.state;
  }
  state_cv_.notify_all();
  events_.Push(std::move(event));
}

// ---- Account --------------------------------------------------------------------

void Client::Impl::LoadAccount() {
  auto account = store_->GetAccount();
  auto tokens = store_->GetTokens();
  auto cursor = store_->GetCursor();
  {
    std::lock_guard lock(mu_);
    account_ = account ? *account : std::nullopt;
  }
  tokens_ = tokens ? *tokens : std::nullopt;
  if (cursor && *cursor > 0) {
    watermark_ = *cursor;
    watermark_known_ = true;
  }
  std::string server = options_.server_url;
  if (server.empty() && account && *account) server = (*account)->server_url;
  if (auto url = detail::Url::Parse(server); url) url_ = *url;
  if (account && *account) {
    (void)crypto_->Open({(*account)->user_id, (*account)->device_id}, *store_);
  }
}

void Client::Impl::RequestCode(const std::string& phone, std::function<void(Result<int>)> done) {
  if (!url_) return done(Fail("invalid", "no server URL (ClientOptions::server_url)"));
  detail::HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/v1/auth/otp";
  spec.body = json::serialize(json::object{{"phone", phone}});
  spec.timeout = options_.request_timeout;
  detail::HttpRequest(io_, *tls_, *url_, std::move(spec), [done](detail::HttpResponse r) {
    if (r.status == 0) return done(Fail("network", r.error));
    if (r.status != 202 && r.status != 200) {
      return done(std::unexpected(detail::ErrorFromHttp(r.status, r.body, r.headers)));
    }
    auto o = detail::ParseObject(r.body);
    done(o ? static_cast<int>(Int(*o, "expires_in_s", 300)) : 300);
  });
}

namespace {
std::optional<Tokens> ParseTokens(const json::object& o) {
  Tokens t;
  t.access_token = Str(o, "access_token");
  t.refresh_token = Str(o, "refresh_token");
  if (t.access_token.empty() || t.refresh_token.empty()) return std::nullopt;
  const std::int64_t now = WallMs();
  t.access_expires_ms = now + Int(o, "access_expires_in_s", 900) * 1000;
  t.refresh_expires_ms = now + Int(o, "refresh_expires_in_s", 2592000) * 1000;
  return t;
}
}  // namespace

void Client::Impl::Verify(const std::string& phone, const std::string& code,
                          std::function<void(Result<Account>)> done) {
  if (!url_) return done(Fail("invalid", "no server URL (ClientOptions::server_url)"));
  if (want_online_) return done(Fail("invalid", "Stop() the client before logging in again"));
  detail::HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/v1/auth/verify";
  spec.body = json::serialize(
      json::object{{"phone", phone},
                   {"code", code},
                   {"device", {{"name", options_.device_name}, {"platform", options_.platform}}}});
  spec.timeout = options_.request_timeout;
  detail::HttpRequest(
      io_, *tls_, *url_, std::move(spec), [this, phone, done](detail::HttpResponse r) {
        if (r.status == 0) return done(Fail("network", r.error));
        if (r.status != 200) {
          return done(std::unexpected(detail::ErrorFromHttp(r.status, r.body, r.headers)));
        }
        auto o = detail::ParseObject(r.body);
        auto tokens = o ? ParseTokens(*o) : std::nullopt;
        if (!tokens) return done(Fail("protocol", "verify answered no tokens"));
        Account a{url_->ToString(), phone, Str(*o, "user_id"), Str(*o, "device_id"),
                  detail::Bool(*o, "new_user")};
        if (auto s = store_->SaveLogin(a, *tokens); !s) return done(std::unexpected(s.error()));
        (void)store_->SetMeta("crypto", crypto_->Name());
        if (auto s = crypto_->Open({a.user_id, a.device_id}, *store_); !s) {
          return done(std::unexpected(s.error()));
        }
        ResetSync();
        {
          std::lock_guard lock(mu_);
          account_ = a;
        }
        tokens_ = *tokens;
        done(a);
      });
}

// ---- Connection -------------------------------------------------------------------

void Client::Impl::Start() {
  if (phase_ != Phase::kIdle && phase_ != Phase::kStopped) return;
  want_online_ = true;
  stop_error_.reset();
  if (!AccountSnapshot() || !tokens_) LoadAccount();  // maybe logged in by another process
  if (!AccountSnapshot()) {
    return StopWith(Error{"not_logged_in", "this profile has no account: log in first"});
  }
  if (!tokens_) return StopWith(Error{"logged_out", "the device's tokens are gone: log in again"});
  if (!url_) return StopWith(Error{"invalid", "no server URL"});
  attempt_ = 0;
  ScheduleRefresh();
  Connect();
}

void Client::Impl::Stop() {
  FlushAck();
  StopWith(std::nullopt);
}

void Client::Impl::Reconnect() {
  if (phase_ == Phase::kWaiting) {
    reconnect_timer_.cancel();
    attempt_ = 0;
    return Connect();
  }
  if (phase_ == Phase::kIdle || phase_ == Phase::kStopped) Start();
}

void Client::Impl::DropConnection() {
  if (ws_) ws_->Abort();
}

void Client::Impl::StopWith(std::optional<Error> error) {
  want_online_ = false;
  stop_error_ = error;
  reconnect_timer_.cancel();
  refresh_timer_.cancel();
  FailRequests(error.value_or(Error{"stopped", "the client was stopped"}), false);
  const Error why = error.value_or(Error{"stopped", "the client stopped before an answer"});
  for (auto& [id, w] : send_waiters_) w.promise->set_value(std::unexpected(why));
  send_waiters_.clear();
  if (ws_ && phase_ != Phase::kStopped) {
    // OnClosed finishes the stop once the close handshake is done.
    ws_->Close(1000, "bye");
    phase_ = Phase::kStopped;
    return;
  }
  phase_ = Phase::kStopped;
  ConnectionEvent e;
  e.state = ConnectionEvent::State::kStopped;
  e.error = error;
  SetState(std::move(e));
}

void Client::Impl::Connect(bool fresh_tokens) {
  if (!want_online_) return;
  // Another process sharing the profile may have refreshed the tokens.
  if (auto t = store_->GetTokens(); t && *t) {
    tokens_ = **t;
  } else if (t && !*t) {
    return StopWith(Error{"logged_out", "the device's tokens are gone: log in again"});
  }
  phase_ = Phase::kConnecting;
  SetState({.state = ConnectionEvent::State::kConnecting});
  if (!fresh_tokens && tokens_->access_expires_ms - WallMs() < kMinAccessLeftMs) {
    return Refresh([this](Status s) {
      if (!want_online_ || phase_ != Phase::kConnecting) return;
      if (!s) return ScheduleReconnect(1006, "token refresh failed: " + s.error().ToString());
      Connect(/*fresh_tokens=*/true);
    });
  }
  const std::uint64_t gen = ++gen_;
  bye_code_ = 0;
  bye_reason_.clear();
  detail::WsTransport::Settings settings;
  settings.connect_timeout = options_.connect_timeout;
  settings.idle_timeout = options_.idle_timeout;
  settings.user_agent = options_.client_name + "/" + options_.client_version;
  ws_ = detail::WsTransport::Create(
      io_, *tls_, *url_, settings,
      {.on_open = [this, gen](std::optional<std::string> e) { OnOpen(gen, std::move(e)); },
       .on_frame = [this, gen](std::string f) { OnFrame(gen, f); },
       .on_closed = [this, gen](int c, std::string r) { OnClosed(gen, c, std::move(r)); }});
  ws_->Connect();
}

void Client::Impl::OnOpen(std::uint64_t gen, std::optional<std::string> error) {
  if (gen != gen_) return;
  if (error) {
    ws_.reset();
    if (!want_online_) {
      return SetState({.state = ConnectionEvent::State::kStopped, .error = stop_error_});
    }
    return ScheduleReconnect(1006, *error);
  }
  if (!want_online_) return ws_->Close(1000, "bye");
  phase_ = Phase::kHello;
  hello_rid_ = "hello-" + std::to_string(gen);
  hello_sent_at_ = Clock::now();
  json::object hello{
      {"op", "hello"},
      {"rid", hello_rid_},
      {"token", tokens_->access_token},
      {"client", {{"name", options_.client_name}, {"version", options_.client_version}}}};
  // A device that never synced lets the server start at its cursor (the
  // mailbox head when the device was created).
  if (watermark_known_) hello["resume_after"] = std::to_string(watermark_);
  SendFrame(hello);
}

void Client::Impl::SendFrame(const json::object& frame) {
  if (ws_) ws_->Send(json::serialize(frame));
}

void Client::Impl::OnFrame(std::uint64_t gen, const std::string& text) {
  if (gen != gen_) return;
  auto frame = detail::ParseObject(text);
  if (!frame) return;
  const std::string op = Str(*frame, "op");
  if (op == "event") {
    if (const auto* event = Obj(*frame, "event")) OnEvent(Seq(*frame, "seq"), *event);
    return;
  }
  // A frame with a rid answers a request: "ok" or "error" (and "pong" for
  // a ping that carried a rid).
  if (const std::string rid = Str(*frame, "rid"); !rid.empty()) {
    if (rid == hello_rid_) return OnHelloAnswer(*frame);
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(rid.data(), rid.data() + rid.size(), n);
    if (ec != std::errc() || p != rid.data() + rid.size()) return;
    auto it = requests_.find(n);
    if (it == requests_.end()) return;  // timed out meanwhile
    Answer done = std::move(it->second.done);
    requests_.erase(it);
    if (op == "error") return done(std::unexpected(detail::ErrorFromFrame(*frame)));
    return done(std::move(*frame));
  }
  if (op == "typing") return OnTyping(*frame);
  if (op == "presence") {
    events_.Push(PresenceEvent{detail::ParsePresence(*frame)});
    return;
  }
  if (op == "bye") {
    bye_code_ = static_cast<int>(Int(*frame, "code"));
    bye_reason_ = Str(*frame, "reason");
  }
}

void Client::Impl::OnHelloAnswer(const json::object& frame) {
  if (Str(frame, "op") != "ok") {
    // The server closes next (4401 or 4403); OnClosed acts on the code.
    const std::string code = Str(frame, "code");
    if (IsAuthRefusal(code)) refresh_after_close_ = true;
    return;
  }
  phase_ = Phase::kOnline;
  attempt_ = 0;
  hello_head_ = Seq(frame, "head_seq");
  hello_at_ = Clock::now();
  progress_at_ = hello_at_;
  synced_ = false;
  SetState({.state = ConnectionEvent::State::kOnline, .head_seq = hello_head_});
  AfterOnline();
}

void Client::Impl::OnClosed(std::uint64_t gen, int code, std::string reason) {
  if (gen != gen_) return;
  ws_.reset();
  // A dropped socket after a bye still tells why.
  if ((code == 1005 || code == 1006) && bye_code_ != 0) {
    code = bye_code_;
    reason = bye_reason_;
  }
  in_flight_.clear();
  FailRequests(Error{"disconnected", "the connection dropped before an answer"}, true);
  if (!want_online_) {
    phase_ = Phase::kStopped;
    return SetState({.state = ConnectionEvent::State::kStopped, .error = stop_error_});
  }
  const bool refresh = code == 4401 || refresh_after_close_;
  refresh_after_close_ = false;
  if (code == 4403) {
    return StopWith(Error{"device_revoked", reason.empty() ? "this device was removed" : reason});
  }
  if (code == 4409) {
    return StopWith(
        Error{"replaced", reason.empty() ? "a newer connection of this device took over" : reason});
  }
  if (refresh) {
    phase_ = Phase::kWaiting;
    SetState({.state = ConnectionEvent::State::kOffline, .close_code = code, .reason = reason});
    const bool first = attempt_ == 0;
    ++attempt_;
    return Refresh([this, first, code, reason](Status s) {
      if (!want_online_ || phase_ != Phase::kWaiting) return;
      if (s && first) return Connect(/*fresh_tokens=*/true);
      ScheduleReconnect(code, s ? reason : s.error().ToString());
    });
  }
  ScheduleReconnect(code, reason);
}

void Client::Impl::ScheduleReconnect(int code, const std::string& reason) {
  phase_ = Phase::kWaiting;
  const auto initial = options_.backoff_initial.count();
  const auto max = options_.backoff_max.count();
  const int exponent = std::min(attempt_, 20);
  const std::int64_t base = std::min<std::int64_t>(max, initial << exponent);
  // "Equal jitter": half fixed, half random, so that a server restart does
  // not bring every client back in the same millisecond.
  std::uniform_int_distribution<std::int64_t> jitter(0, base / 2);
  const std::int64_t delay = base - base / 2 + jitter(rng_);
  ++attempt_;
  SetState({.state = ConnectionEvent::State::kOffline,
            .close_code = code,
            .reason = reason,
            .retry_in_ms = delay});
  reconnect_timer_.expires_after(std::chrono::milliseconds(delay));
  reconnect_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && want_online_ && phase_ == Phase::kWaiting) Connect();
  });
}

// ---- Requests -----------------------------------------------------------------------

void Client::Impl::Call(json::object frame, bool retry, Answer done) {
  if (phase_ == Phase::kStopped) {
    return done(std::unexpected(stop_error_.value_or(Error{"stopped", "the client is stopped"})));
  }
  const std::uint64_t n = next_rid_++;
  frame["rid"] = std::to_string(n);
  Request r{std::move(frame), std::move(done), Clock::now() + options_.request_timeout, retry};
  if (phase_ == Phase::kOnline) {
    SendFrame(r.frame);
    r.sent = true;
  }
  requests_.emplace(n, std::move(r));
}

void Client::Impl::FlushRequests() {
  for (auto& [n, r] : requests_) {
    if (r.sent) continue;
    SendFrame(r.frame);
    r.sent = true;
  }
}

void Client::Impl::FailRequests(const Error& error, bool keep_retryable) {
  std::vector<Answer> failed;
  for (auto it = requests_.begin(); it != requests_.end();) {
    // Not yet sent, or safe to send again: it waits for the next connection.
    if (keep_retryable && (!it->second.sent || it->second.retry)) {
      it->second.sent = false;
      ++it;
      continue;
    }
    failed.push_back(std::move(it->second.done));
    it = requests_.erase(it);
  }
  for (auto& done : failed) done(std::unexpected(error));
}

// ---- Token refresh ---------------------------------------------------------------------

void Client::Impl::Refresh(std::function<void(Status)> done) {
  refresh_waiters_.push_back(std::move(done));
  if (refreshing_) return;
  refreshing_ = true;
  TryRefresh();
}

void Client::Impl::TryRefresh() {
  auto lock = RefreshLock::TryAcquire(store_->path());
  if (!lock) {
    // Another process is refreshing this device's tokens: wait for it.
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, kLockRetry);
    timer->async_wait([this, timer](boost::system::error_code ec) {
      if (!ec) TryRefresh();
    });
    return;
  }
  auto held = std::make_shared<RefreshLock>(std::move(*lock));
  // Under the lock, the store has the newest tokens: another process may
  // have rotated them, and then ours are spent.
  if (auto stored = store_->GetTokens(); stored && *stored) {
    const bool rotated = !tokens_ || (*stored)->refresh_token != tokens_->refresh_token;
    tokens_ = **stored;
    if (rotated && tokens_->access_expires_ms - WallMs() > kMinAccessLeftMs) {
      ScheduleRefresh();
      return FinishRefresh({});
    }
  } else if (stored) {
    tokens_.reset();
  }
  if (!tokens_) {
    StopWith(Error{"logged_out", "the device's tokens are gone: log in again"});
    return FinishRefresh(Fail("logged_out", "no refresh token"));
  }
  detail::HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/v1/auth/refresh";
  spec.body = json::serialize(json::object{{"refresh_token", tokens_->refresh_token}});
  spec.timeout = options_.request_timeout;
  detail::HttpRequest(io_, *tls_, *url_, std::move(spec), [this, held](detail::HttpResponse r) {
    if (r.status == 0) return FinishRefresh(Fail("network", r.error));
    if (r.status == 200) {
      auto o = detail::ParseObject(r.body);
      auto t = o ? ParseTokens(*o) : std::nullopt;
      if (!t) return FinishRefresh(Fail("protocol", "refresh answered no tokens"));
      // Durable before anything else: the old refresh token is dead now.
      if (auto s = store_->SaveTokens(*t); !s) return FinishRefresh(s);
      tokens_ = *t;
      ScheduleRefresh();
      return FinishRefresh({});
    }
    Error e = detail::ErrorFromHttp(r.status, r.body, r.headers);
    if (e.code == "device_revoked") {
      (void)store_->ClearTokens();
      tokens_.reset();
      StopWith(Error{"device_revoked", "this device was removed"});
    } else if (IsAuthRefusal(e.code)) {
      (void)store_->ClearTokens();
      tokens_.reset();
      StopWith(Error{"logged_out",
                     "the server refused the refresh token (" + e.code + "): log in again"});
    }
    FinishRefresh(std::unexpected(e));
  });
}

void Client::Impl::FinishRefresh(Status status) {
  refreshing_ = false;
  auto waiters = std::move(refresh_waiters_);
  refresh_waiters_.clear();
  for (auto& w : waiters) w(status);
}

void Client::Impl::ScheduleRefresh() {
  if (!tokens_ || !want_online_) return;
  const std::int64_t left = tokens_->access_expires_ms - WallMs();
  const std::int64_t margin =
      std::min<std::int64_t>(options_.refresh_margin.count() * 1000, left / 4);
  RefreshSoon(std::chrono::milliseconds(std::max<std::int64_t>(0, left - margin)));
}

void Client::Impl::RefreshSoon(std::chrono::milliseconds delay) {
  refresh_timer_.expires_after(delay);
  refresh_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !want_online_) return;
    Refresh([this](Status s) {
      if (!s && want_online_) RefreshSoon(kRefreshRetry);
    });
  });
}

// ---- Housekeeping ----------------------------------------------------------------------

void Client::Impl::ArmTick() {
  tick_timer_.expires_after(kTick);
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    Tick();
    ArmTick();
  });
}

void Client::Impl::Tick() {
  const auto now = Clock::now();
  std::vector<Answer> expired;
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second.done));
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& done : expired) done(Fail("timeout", "no answer in time"));
  if (phase_ == Phase::kHello && now - hello_sent_at_ > kHelloTimeout && ws_) ws_->Abort();
  ExpireSendWaiters();
  ExpireTyping();
  CheckGap();
  CheckSync();
}

}  // namespace parley::sdk
