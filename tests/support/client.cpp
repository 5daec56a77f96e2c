// The HTTP and WebSocket halves of the test support library (client.hpp).
//
// Every call owns or drives a private io_context only while it runs, with a
// deadline: an operation that has not completed by then is abandoned (its
// completion state is shared, so a late completion touches nothing that is
// gone) and the connection is dropped.
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cctype>
#include <deque>
#include <functional>
#include <type_traits>
#include <utility>

#include "support/client.hpp"

namespace parley::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::uint64_t kMaxHttpBody = 200ull * 1024 * 1024;
constexpr std::size_t kMaxWsMessage = 64 * 1024 * 1024;
constexpr std::uint16_t kNoStatusClose = 1005;  // a close frame without a code
constexpr std::uint16_t kAbnormalClose = 1006;  // no close frame at all
constexpr auto kWriteTimeout = std::chrono::seconds(10);

// Runs `ioc` until done() holds or the deadline passes; returns done().
template <class Done>
bool RunUntil(asio::io_context& ioc, Done&& done, Clock::time_point deadline) {
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (ioc.stopped()) ioc.restart();
    if (ioc.run_one_for(deadline - now) == 0 && ioc.stopped()) {
      // Out of work: nothing can make done() true any more.
      return done();
    }
  }
  return true;
}

// The completion of one asynchronous operation, shared with its handler so
// that giving up on the operation leaves nothing dangling.
struct OpState {
  bool done = false;
  error_code ec;
};

// Starts an operation through initiate(handler) and runs the io_context until
// it completes or the deadline passes (then: asio::error::timed_out).
template <class Initiate>
error_code Await(asio::io_context& ioc, Clock::time_point deadline, Initiate&& initiate) {
  auto st = std::make_shared<OpState>();
  initiate([st](error_code ec, auto&&...) {
    st->done = true;
    st->ec = ec;
  });
  if (!RunUntil(
          ioc, [&] { return st->done; }, deadline))
    return asio::error::timed_out;
  return st->ec;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The server name sent in TLS SNI: the host itself unless it is an address.
std::string SniName(const std::string& host) { return IsIpLiteral(host) ? "localhost" : host; }

std::string HostHeader(const Endpoint& ep) {
  const bool v6 = ep.host.find(':') != std::string::npos;
  return (v6 ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port);
}

// One client TLS context for every connection (an SSL_CTX may be shared).
ssl::context& ClientTlsContext() {
  static ssl::context* ctx = [] {
    auto* c = new ssl::context(ssl::context::tls_client);
    c->set_verify_mode(ssl::verify_none);
    return c;
  }();
  return *ctx;
}

// Resolves ep into endpoints (no resolver thread for address literals).
error_code Resolve(asio::io_context& ioc, const Endpoint& ep, Clock::time_point deadline,
                   std::vector<tcp::endpoint>* out) {
  error_code ec;
  auto addr = asio::ip::make_address(ep.host, ec);
  if (!ec) {
    out->emplace_back(addr, ep.port);
    return {};
  }
  struct State {
    bool done = false;
    error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };
  auto st = std::make_shared<State>();
  auto resolver = std::make_shared<tcp::resolver>(ioc);
  resolver->async_resolve(ep.host, std::to_string(ep.port),
                          [st, resolver](error_code e, tcp::resolver::results_type results) {
                            st->done = true;
                            st->ec = e;
                            for (const auto& r : results) st->endpoints.push_back(r.endpoint());
                          });
  if (!RunUntil(
          ioc, [&] { return st->done; }, deadline)) {
    resolver->cancel();
    return asio::error::timed_out;
  }
  *out = st->endpoints;
  return st->ec;
}

bool IsFrameWithOp(const json::object& frame, std::string_view op) {
  auto it = frame.find("op");
  return it != frame.end() && it->value().is_string() && it->value().get_string() == op;
}

std::optional<json::object> ParseObject(const std::string& text) {
  error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// ---------------------------------------------------------------- HTTP ----

template <class Stream>
HttpResult DoHttp(asio::io_context& ioc, Stream& stream, const Endpoint& ep,
                  const std::string& method, const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers, Clock::time_point deadline) {
  HttpResult result;
  auto fail = [&](const char* step, error_code ec) {
    result.status = 0;
    result.error = std::string(step) + ": " + ec.message();
    return result;
  };
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.expires_at(deadline);

  std::vector<tcp::endpoint> endpoints;
  if (auto ec = Resolve(ioc, ep, deadline, &endpoints)) return fail("resolve", ec);
  if (auto ec =
          Await(ioc, deadline, [&](auto h) { lowest.async_connect(endpoints, std::move(h)); })) {
    return fail("connect", ec);
  }
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    const std::string sni = SniName(ep.host);
    SSL_set_tlsext_host_name(stream.native_handle(), sni.c_str());
    if (auto ec = Await(ioc, deadline, [&](auto h) {
          stream.async_handshake(ssl::stream_base::client, std::move(h));
        })) {
      return fail("tls handshake", ec);
    }
  }

  // Shared with the handlers: an abandoned operation never refers to a
  // destroyed message, parser or buffer.
  struct Exchange {
    http::request<http::string_body> req;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
  };
  auto x = std::make_shared<Exchange>();
  auto& req = x->req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, HostHeader(ep));
  req.set(http::field::user_agent, "parley-test");
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    req.set(name, value);
    if (Lower(name) == "content-type") has_content_type = true;
  }
  if (!body.empty() && !has_content_type) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.keep_alive(false);
  req.prepare_payload();

  // Read while writing: a server may answer (413, 401...) before it has read
  // the whole body, and then close or stop reading.
  x->parser.body_limit(kMaxHttpBody);
  x->parser.skip(req.method() == http::verb::head);
  auto written = std::make_shared<OpState>();
  auto read = std::make_shared<OpState>();
  http::async_write(stream, req, [written, x](error_code ec, std::size_t) {
    written->done = true;
    written->ec = ec;
  });
  http::async_read(stream, x->buffer, x->parser, [read, x](error_code ec, std::size_t) {
    read->done = true;
    read->ec = ec;
  });
  if (!RunUntil(
          ioc, [&] { return read->done; }, deadline)) {
    return fail("read", asio::error::timed_out);
  }
  if (read->ec) {
    return fail(written->done && written->ec ? "write" : "read",
                written->done && written->ec ? written->ec : read->ec);
  }
  auto& res = x->parser.get();
  result.status = static_cast<int>(res.result_int());
  result.body = std::move(res.body());
  for (const auto& field : res.base()) {
    auto [it, inserted] =
        result.headers.try_emplace(Lower(field.name_string()), std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  error_code ignored;
  lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return result;
}

// Closes the connection and lets the operations still pending complete.
void Drain(asio::io_context& ioc, beast::tcp_stream& lowest) {
  lowest.close();
  RunUntil(
      ioc, [] { return false; }, Clock::now() + std::chrono::seconds(1));
}

// ----------------------------------------------------------- WebSocket ----

// A received frame, parsed (once) when some caller looks for a JSON op.
struct Frame {
  std::string text;
  bool parsed = false;
  std::optional<json::object> object;

  std::optional<json::object>& Object() {
    if (!parsed) {
      object = ParseObject(text);
      parsed = true;
    }
    return object;
  }
};

// One WebSocket connection; the concrete type depends on TLS.
class Conn {
 public:
  virtual ~Conn() = default;

  virtual bool Open(const Endpoint& ep, const std::string& target,
                    const std::map<std::string, std::string>& headers, std::string* error,
                    int* status, Clock::time_point deadline) = 0;
  virtual bool Write(const std::string& data, bool binary, Clock::time_point deadline) = 0;
  // Sends a normal close and waits (until the deadline) for the server's.
  virtual void CloseNormal(Clock::time_point deadline) = 0;
  // Drops the TCP connection.
  virtual void Abort() = 0;

  template <class Done>
  bool Pump(Done&& done, Clock::time_point deadline) {
    return RunUntil(ioc_, std::forward<Done>(done), deadline);
  }
  // Runs the handlers that are ready, without waiting.
  void Poll() {
    if (ioc_.stopped()) ioc_.restart();
    ioc_.poll();
  }

  std::deque<Frame>& frames() { return frames_; }
  bool closed() const { return closed_; }
  std::optional<std::uint16_t> close_code() const { return close_code_; }
  std::uint64_t NextRid() { return ++rid_; }

 protected:
  // Declared first: it outlives the stream of the derived class.
  asio::io_context ioc_;
  std::deque<Frame> frames_;
  bool closed_ = false;   // the read loop has ended
  bool reading_ = false;  // a read is in progress
  std::optional<std::uint16_t> close_code_;
  std::uint64_t rid_ = 0;
};

template <bool kTls>
class WsConn final : public Conn {
  using Next = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  WsConn() : ws_(MakeWs()) {}

  ~WsConn() override {
    if (!closed_ || reading_) Abort();
  }

  bool Open(const Endpoint& ep, const std::string& target,
            const std::map<std::string, std::string>& headers, std::string* error, int* status,
            Clock::time_point deadline) override {
    auto fail = [&](const char* step, error_code ec) {
      if (error != nullptr) *error = std::string(step) + ": " + ec.message();
      Abort();
      return false;
    };
    auto& lowest = beast::get_lowest_layer(ws_);
    lowest.expires_at(deadline);
    std::vector<tcp::endpoint> endpoints;
    if (auto ec = Resolve(ioc_, ep, deadline, &endpoints)) return fail("resolve", ec);
    if (auto ec =
            Await(ioc_, deadline, [&](auto h) { lowest.async_connect(endpoints, std::move(h)); })) {
      return fail("connect", ec);
    }
    if constexpr (kTls) {
      const std::string sni = SniName(ep.host);
      SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), sni.c_str());
      if (auto ec = Await(ioc_, deadline, [&](auto h) {
            ws_.next_layer().async_handshake(ssl::stream_base::client, std::move(h));
          })) {
        return fail("tls handshake", ec);
      }
    }
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      req.set(http::field::user_agent, "parley-test");
      for (const auto& [name, value] : headers) req.set(name, value);
    }));
    ws_.read_message_max(kMaxWsMessage);
    websocket::response_type res;
    const std::string host = HostHeader(ep);
    auto ec = Await(ioc_, deadline,
                    [&](auto h) { ws_.async_handshake(res, host, target, std::move(h)); });
    if (status != nullptr && res.result_int() != 0) *status = static_cast<int>(res.result_int());
    if (ec) return fail("websocket handshake", ec);

    // From here on the WebSocket's own timeouts apply (to the closing
    // handshake); reads wait for as long as the caller pumps.
    lowest.expires_never();
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(5);
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.text(true);
    StartRead();
    return true;
  }

  bool Write(const std::string& data, bool binary, Clock::time_point deadline) override {
    if (closed_ || broken_) return false;
    auto payload = std::make_shared<std::string>(data);
    ws_.binary(binary);
    auto ec = Await(ioc_, deadline, [&](auto h) {
      ws_.async_write(
          asio::buffer(*payload),
          [payload, h = std::move(h)](error_code e, std::size_t n) mutable { h(e, n); });
    });
    if (ec == asio::error::timed_out) {
      broken_ = true;  // a write may still be pending: no further ones
      Abort();
      return false;
    }
    return !ec;
  }

  void CloseNormal(Clock::time_point deadline) override {
    if (closed_) return;
    if (!broken_) {
      broken_ = true;
      auto st = std::make_shared<OpState>();
      ws_.async_close(websocket::close_code::normal, [st](error_code ec) {
        st->done = true;
        st->ec = ec;
      });
      Pump([&] { return closed_ || (st->done && st->ec); }, deadline);
    }
    if (!closed_) Abort();
  }

  void Abort() override {
    broken_ = true;
    error_code ignored;
    auto& lowest = beast::get_lowest_layer(ws_);
    if (lowest.socket().is_open()) {
      lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest.close();
    }
    // Let the pending read complete, so that no handler outlives us.
    Pump([this] { return !reading_; }, Clock::now() + std::chrono::seconds(2));
    closed_ = true;
    if (!close_code_) close_code_ = kAbnormalClose;
  }

 private:
  websocket::stream<Next> MakeWs() {
    if constexpr (kTls) {
      return websocket::stream<Next>(ioc_, ClientTlsContext());
    } else {
      return websocket::stream<Next>(ioc_);
    }
  }

  void StartRead() {
    reading_ = true;
    ws_.async_read(buffer_, [this](error_code ec, std::size_t) {
      reading_ = false;
      if (ec) {
        closed_ = true;
        if (!close_code_) {
          // The code of the close frame, if one came (even when answering it
          // failed because the server dropped the connection right after).
          const std::uint16_t received = ws_.reason().code;
          if (received != websocket::close_code::none) {
            close_code_ = received;
          } else {
            close_code_ = ec == websocket::error::closed ? kNoStatusClose : kAbnormalClose;
          }
        }
        return;
      }
      frames_.push_back(Frame{.text = beast::buffers_to_string(buffer_.cdata())});
      buffer_.consume(buffer_.size());
      StartRead();
    });
  }

  websocket::stream<Next> ws_;
  beast::flat_buffer buffer_;
  bool broken_ = false;  // no more writes: closing, aborted or a write timed out
};

// The first kept frame (scanning from the oldest) that `match` accepts,
// removed from the queue; waits for new frames until the deadline.
template <class Match>
std::optional<json::object> TakeFrame(Conn& conn, Match&& match, Clock::time_point deadline) {
  std::size_t scanned = 0;
  for (;;) {
    auto& frames = conn.frames();
    for (; scanned < frames.size(); ++scanned) {
      auto& frame = frames[scanned].Object();
      if (frame && match(*frame)) {
        auto found = std::move(frame);
        frames.erase(frames.begin() + static_cast<std::ptrdiff_t>(scanned));
        return found;
      }
    }
    if (conn.closed()) return std::nullopt;
    const std::size_t seen = frames.size();
    if (!conn.Pump([&] { return conn.frames().size() > seen || conn.closed(); }, deadline)) {
      return std::nullopt;
    }
  }
}

}  // namespace

// ---------------------------------------------------------- HttpResult ----

json::value HttpResult::Json() const {
  error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return json::object();
  return v;
}

std::string HttpResult::ErrorCode() const {
  json::value v = Json();
  if (!v.is_object()) return "";
  const auto* err = v.as_object().if_contains("error");
  if (err == nullptr || !err->is_object()) return "";
  const auto* code = err->as_object().if_contains("code");
  if (code == nullptr || !code->is_string()) return "";
  return std::string(code->get_string());
}

HttpResult Http(const Endpoint& ep, const std::string& method, const std::string& target,
                const std::string& body, const std::map<std::string, std::string>& headers,
                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  asio::io_context ioc;  // declared before the streams: outlives them
  if (ep.tls) {
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ClientTlsContext());
    auto result = DoHttp(ioc, stream, ep, method, target, body, headers, deadline);
    Drain(ioc, beast::get_lowest_layer(stream));
    return result;
  }
  beast::tcp_stream stream(ioc);
  auto result = DoHttp(ioc, stream, ep, method, target, body, headers, deadline);
  Drain(ioc, stream);
  return result;
}

// ------------------------------------------------------------ WsClient ----

struct WsClient::Impl {
  std::unique_ptr<Conn> conn;
};

WsClient::WsClient() : impl_(std::make_unique<Impl>()) {}
WsClient::~WsClient() = default;

std::unique_ptr<WsClient> WsClient::Connect(const Endpoint& ep, const std::string& target,
                                            const std::map<std::string, std::string>& headers,
                                            std::string* error, int* status) {
  constexpr auto kConnectTimeout = std::chrono::seconds(10);
  std::unique_ptr<WsClient> client(new WsClient());
  if (ep.tls) {
    client->impl_->conn = std::make_unique<WsConn<true>>();
  } else {
    client->impl_->conn = std::make_unique<WsConn<false>>();
  }
  if (!client->impl_->conn->Open(ep, target, headers, error, status,
                                 Clock::now() + kConnectTimeout)) {
    return nullptr;
  }
  return client;
}

bool WsClient::SendText(const std::string& text, bool binary) {
  return impl_->conn->Write(text, binary, Clock::now() + kWriteTimeout);
}

bool WsClient::SendJson(const json::object& frame) { return SendText(json::serialize(frame)); }

std::optional<std::string> WsClient::Receive(std::chrono::milliseconds timeout) {
  Conn& conn = *impl_->conn;
  conn.Pump([&] { return !conn.frames().empty() || conn.closed(); }, Clock::now() + timeout);
  if (conn.frames().empty()) return std::nullopt;
  std::string frame = std::move(conn.frames().front().text);
  conn.frames().pop_front();
  return frame;
}

std::optional<json::object> WsClient::ReceiveJson(std::chrono::milliseconds timeout) {
  auto text = Receive(timeout);
  if (!text) return std::nullopt;
  return ParseObject(*text);
}

std::optional<json::object> WsClient::ReceiveOp(const std::string& op,
                                                std::chrono::milliseconds timeout) {
  return TakeFrame(
      *impl_->conn, [&](const json::object& f) { return IsFrameWithOp(f, op); },
      Clock::now() + timeout);
}

std::optional<json::object> WsClient::Request(json::object frame,
                                              std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Conn& conn = *impl_->conn;
  json::value rid;
  if (const auto* given = frame.if_contains("rid")) {
    rid = *given;
  } else {
    rid = std::to_string(conn.NextRid());
    frame["rid"] = rid;
  }
  // The timeout is for the answer: the frame itself gets the usual write time.
  if (!conn.Write(json::serialize(frame), false, Clock::now() + kWriteTimeout)) {
    return std::nullopt;
  }
  return TakeFrame(
      conn,
      [&](const json::object& f) {
        const auto* r = f.if_contains("rid");
        return r != nullptr && *r == rid && (IsFrameWithOp(f, "ok") || IsFrameWithOp(f, "error"));
      },
      deadline);
}

std::optional<std::uint16_t> WsClient::WaitClosed(std::chrono::milliseconds timeout) {
  Conn& conn = *impl_->conn;
  if (!conn.Pump([&] { return conn.closed(); }, Clock::now() + timeout)) return std::nullopt;
  return conn.close_code();
}

bool WsClient::closed() const {
  impl_->conn->Poll();
  return impl_->conn->closed();
}

void WsClient::Close() {
  constexpr auto kCloseTimeout = std::chrono::seconds(2);
  impl_->conn->CloseNormal(Clock::now() + kCloseTimeout);
}

void WsClient::Abort() { impl_->conn->Abort(); }

}  // namespace parley::test
